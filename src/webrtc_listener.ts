/**
 * The desktop's side of a room of agents: {@linkcode WebRTCListener} accepts
 * each agent that arrives as one {@linkcode WebRTCConnection} and serves each
 * MCP session it opens with a fresh server.
 *
 * Longer than 400 lines because it is where every limit of a desktop is
 * enforced against an agent (the agent count, the ticket's expiry, sessions
 * per agent, their start rate, the budgets of unfinished messages, the
 * connect deadline), each with its documented option and refusal; the half
 * of it that is doc comments says what each does.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { settle } from "./_async.ts";
import { type Clock, clockOf } from "./_clock.ts";
import { AuthenticatedSignaling } from "./signaling/authenticated_signaling.ts";
import type { Signaling, SignalingHub } from "./signaling/signaling.ts";
import { roomUrl } from "./signaling/room_protocol.ts";
import { SignalingRoom, type SignalingRoomOptions } from "./signaling/signaling_room.ts";
import {
  assertTicketUsable,
  createGuestTicket,
  createTicket,
  deriveTicketKeys,
  formatTicket,
  parseTicket,
  type Ticket,
} from "./ticket.ts";
import {
  DEFAULT_CONNECT_TIMEOUT,
  DEFAULT_MAX_AGENTS,
  DEFAULT_MAX_SESSIONS_PER_AGENT,
  DEFAULT_MAX_UNFINISHED_BYTES,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  DEFAULT_SESSION_STARTS_PER_SECOND,
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
  REFUSAL_TIMEOUT,
  SESSION_LIMIT_REACHED,
} from "./constants.ts";
import { ConnectError } from "./errors.ts";
import { MemoryBudget } from "./framing.ts";
import { WebRTCConnection, type WebRTCSessionTransport } from "./webrtc_connection.ts";
import type { IceServer, WebRTCTransportOptions } from "./webrtc_transport.ts";

/** What the listener needs of an MCP server: `McpServer` and `Server` both fit. */
export interface ConnectableServer {
  /** Starts serving over the transport. */
  connect(transport: Transport): Promise<void>;
  /** Stops serving and closes the transport. */
  close(): Promise<void>;
}

/** Who an MCP server made by the listener is serving. */
export interface AgentInfo {
  /** The peer id the signalling gave the agent (unique while it is present). */
  readonly peer: string;
  /** The session's number among the agent's sessions on its connection, from 1. */
  readonly session: number;
}

/** An agent connected to the listener: one peer connection, any number of sessions. */
export interface ConnectedAgent {
  /** The peer id the signalling gave the agent. */
  readonly peer: string;
  /** Its connection, e.g. for `getConnectionPath()`. */
  readonly connection: WebRTCConnection;
}

/** Options of {@linkcode WebRTCListener}. */
export interface WebRTCListenerOptions extends Omit<WebRTCTransportOptions, "signaling"> {
  /** The signalling on which agents arrive, joined as host. */
  hub: SignalingHub;
  /**
   * Makes a fresh MCP server for each MCP session (an agent may open several
   * on its connection): MCP sessions are stateful, so they never share one.
   */
  createServer: (agent: AgentInfo) => ConnectableServer | Promise<ConnectableServer>;
  /**
   * The key that authenticates signalling end to end (a ticket's
   * `signalingKey`); without it, signalling is trusted as the hub delivers it.
   *
   * @default {undefined}
   */
  signalingKey?: CryptoKey;
  /**
   * Agents that arrive after this moment are refused (a ticket's expiry).
   *
   * @default {undefined}
   */
  expiresAt?: Date;
  /**
   * The most agents (peer connections) served at once; one more is refused
   * until one leaves.
   *
   * @default {8} (`DEFAULT_MAX_AGENTS`)
   */
  maxAgents?: number;
  /**
   * The most MCP sessions one agent may hold open at once. One more is
   * refused: its first request gets a JSON-RPC error saying so (code
   * `-32000`), and its channel closes; the agent's other sessions go on.
   *
   * @default {64}
   */
  maxSessionsPerAgent?: number;
  /**
   * The most MCP sessions one agent may start per second, after a burst of
   * `maxSessionsPerAgent`. One more is refused as one over
   * `maxSessionsPerAgent` is: its first request gets a JSON-RPC error naming
   * this limit (code `-32000`), and its channel closes.
   *
   * @default {10}
   */
  sessionStartsPerSecond?: number;
  /**
   * The most bytes that one agent's unfinished chunked messages, on all its
   * sessions, may hold. A message that does not fit is dropped: its request
   * gets a JSON-RPC error naming this budget (code `-32000`), and the
   * agent's sessions go on. An agent is a peer connection: a holder of the
   * ticket that opens several connections (up to `maxAgents`) has this budget
   * on each, within `maxUnfinishedBytes`.
   *
   * @default {134217728}
   */
  maxUnfinishedBytesPerAgent?: number;
  /**
   * The most bytes that the unfinished chunked messages of all agents
   * together may hold: what messages under way can make this process keep.
   * A message that does not fit is dropped as with
   * `maxUnfinishedBytesPerAgent`, naming this budget.
   *
   * @default {268435456}
   */
  maxUnfinishedBytes?: number;
  /**
   * Milliseconds an agent's chunked message may go without a new chunk before
   * it is dropped (its request gets a JSON-RPC error saying so) and its
   * session closed.
   *
   * @default {10000}
   */
  unfinishedMessageTimeout?: number;
}

/** Options of {@linkcode WebRTCListener.listen}. */
export interface ListenOptions extends Omit<WebRTCListenerOptions, "hub" | "signalingKey"> {
  /**
   * The signalling service, e.g. `wss://signal.example` (a new room is made),
   * or a host ticket from an earlier `listen()` to reopen its room.
   */
  url?: string | URL;
  /**
   * A host ticket (object or string) to reopen, instead of `url`.
   *
   * @default {undefined}
   */
  hostTicket?: Ticket | string;
  /** Options of the room connection (WebSocket constructor, reconnect, pings). */
  room?: Omit<SignalingRoomOptions, "role" | "key" | "guestVerifier">;
}

/** One MCP session being served. */
export interface AgentSession {
  /** Whose session it is. */
  readonly agent: AgentInfo;
  /** Its transport: a data channel of the agent's connection. */
  readonly transport: Transport;
  /** Its MCP server. */
  readonly server: ConnectableServer;
  /** The agent's connection, shared by its sessions. */
  readonly connection: WebRTCConnection;
}

/**
 * Accepts any number of agents on one signalling room (up to `maxAgents`):
 * each agent that arrives gets one {@linkcode WebRTCConnection}, and each MCP
 * session it opens on it (up to `maxSessionsPerAgent`) a fresh MCP server from
 * the caller's factory. Agents and sessions come and go independently;
 * closing the listener closes them all.
 *
 * {@linkcode WebRTCListener.listen} does it in one call from a signalling URL:
 * it makes a ticket, opens its room, and gives the ticket to hand to agents.
 *
 * @example Serve agents through a local signalling room
 * ```ts ignore
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { WebRTCListener } from "@mcp/webrtc";
 *
 * const listener = await WebRTCListener.listen({
 *   url: "wss://signal.example",
 *   createServer: () => new McpServer({ name: "desktop", version: "1.0.0" }),
 * });
 * console.log("Give this ticket to the agent:", listener.ticket);
 * ```
 */
export class WebRTCListener {
  readonly #options: WebRTCListenerOptions;
  readonly #agents = new Map<string, WebRTCConnection>();
  readonly #sessions = new Set<AgentSession>();
  /** What all agents' unfinished messages hold. */
  readonly #budget: MemoryBudget;
  #closing?: Promise<void>;

  /** The guest ticket to hand to agents, when made by `listen()`. */
  ticket?: string;
  /** The host ticket, to reopen the same room later; keep it secret. */
  hostTicket?: string;

  /** Called when an agent's connection is up (before its first session). */
  onagent?: (agent: ConnectedAgent) => void;
  /** Called when an agent's connection is gone, with all its sessions. */
  onagentleave?: (agent: ConnectedAgent, error?: Error) => void;
  /** Called when an agent opened a session and its server is connected to it. */
  onsession?: (session: AgentSession) => void;
  /** Called when a session ends. */
  onsessionclose?: (session: AgentSession) => void;
  /** Called for a refused agent or a failed session; the listener goes on. */
  onerror?: (error: Error) => void;

  /**
   * @param options The hub, the server factory and transport options.
   * @throws {TypeError} If the hub or the factory is missing.
   * @throws {RangeError} If a limit (`maxAgents`, `maxSessionsPerAgent`,
   * `sessionStartsPerSecond`, the budgets, `unfinishedMessageTimeout`) is not a positive integer.
   */
  constructor(options: WebRTCListenerOptions) {
    if (!options?.hub || typeof options.createServer !== "function") {
      throw new TypeError(
        "Cannot create listener as 'hub' and 'createServer' are required: pass a SignalingRoom joined as host and a function returning an MCP server",
      );
    }
    for (
      const [name, value] of [
        ["maxAgents", options.maxAgents ?? DEFAULT_MAX_AGENTS],
        ["maxSessionsPerAgent", options.maxSessionsPerAgent ?? DEFAULT_MAX_SESSIONS_PER_AGENT],
        [
          "sessionStartsPerSecond",
          options.sessionStartsPerSecond ?? DEFAULT_SESSION_STARTS_PER_SECOND,
        ],
        [
          "maxUnfinishedBytesPerAgent",
          options.maxUnfinishedBytesPerAgent ?? DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
        ],
        ["maxUnfinishedBytes", options.maxUnfinishedBytes ?? DEFAULT_MAX_UNFINISHED_BYTES],
        [
          "unfinishedMessageTimeout",
          options.unfinishedMessageTimeout ?? DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
        ],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Cannot create listener as '${name}' must be a positive integer: received ${value}`,
        );
      }
    }
    this.#options = options;
    this.#budget = new MemoryBudget(
      "maxUnfinishedBytes",
      options.maxUnfinishedBytes ?? DEFAULT_MAX_UNFINISHED_BYTES,
    );
    options.hub.onpeerjoin = (peer) => void this.#accept(peer);
    for (const peer of options.hub.peers) void this.#accept(peer);
  }

  /**
   * Makes a ticket, opens its room on the signalling service and listens:
   * the one call a desktop needs. Hand `listener.ticket` to the agent (through
   * A2A or any channel); only its holder can connect.
   *
   * @param options The signalling URL (or a host ticket to reopen), the server factory, and options.
   * @returns The listener, with `ticket` and `hostTicket` set.
   * @throws {TypeError} If neither `url` nor `hostTicket` is given.
   * @throws {TicketError} If the host ticket is malformed or expired.
   * @throws {SignalingRoomError} If the signalling service refused or could not be reached.
   *
   * @example Listen with a ticket that expires in an hour
   * ```ts ignore
   * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
   * import { WebRTCListener } from "@mcp/webrtc";
   *
   * const listener = await WebRTCListener.listen({
   *   url: "wss://signal.example",
   *   expiresAt: new Date(Date.now() + 3_600_000),
   *   createServer: () => new McpServer({ name: "desktop", version: "1.0.0" }),
   * });
   * console.log(listener.ticket);
   * ```
   */
  static async listen(options: ListenOptions): Promise<WebRTCListener> {
    const { url, hostTicket, room: roomOptions, ...rest } = options;
    let host: Ticket;
    if (hostTicket !== undefined) {
      host = typeof hostTicket === "string" ? parseTicket(hostTicket) : hostTicket;
    } else if (url !== undefined) {
      host = await createTicket({ url, expiresAt: options.expiresAt });
    } else {
      throw new TypeError(
        "Cannot listen as neither 'url' nor 'hostTicket' is given: pass the signalling service URL",
      );
    }
    assertTicketUsable(host);
    if (host.kind !== "host") {
      throw new TypeError(
        "Cannot listen with a guest ticket: it lets an agent connect, not open a room; pass the host ticket or a URL",
      );
    }
    const keys = await deriveTicketKeys(host);
    const hub = await SignalingRoom.join(roomUrl(host), {
      ...roomOptions,
      role: "host",
      key: keys.hostKey!,
      guestVerifier: keys.guestVerifier,
    });
    const listener = new WebRTCListener({
      ...rest,
      expiresAt: rest.expiresAt ?? host.expiresAt,
      hub,
      signalingKey: keys.signalingKey,
    });
    listener.hostTicket = formatTicket(host);
    listener.ticket = formatTicket(await createGuestTicket(host));
    return listener;
  }

  /**
   * Where agents arrive: the room joined by `listen()` (a `SignalingRoom`), or
   * the hub given to the constructor; e.g. to watch it with `onclose`.
   */
  get hub(): SignalingHub {
    return this.#options.hub;
  }

  /** The MCP sessions being served now, of every agent. */
  get sessions(): AgentSession[] {
    return [...this.#sessions];
  }

  /** The agents connected (or connecting) now: one peer connection each. */
  get agents(): ConnectedAgent[] {
    return [...this.#agents].map(([peer, connection]) => ({ peer, connection }));
  }

  /**
   * Stops accepting agents, closes every session and leaves the room.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#options.hub.onpeerjoin = undefined;
      await Promise.allSettled([...this.#sessions].map((session) => session.server.close()));
      await Promise.allSettled([...this.#agents.values()].map((agent) => agent.close()));
      await this.#options.hub.close();
    })();
    return this.#closing;
  }

  async #accept(peer: string): Promise<void> {
    if (this.#closing || this.#agents.has(peer)) return;
    const options = this.#options;
    // Unless given: the servers the room hands out (short-lived TURN credentials,
    // on request). Asked first, so that what follows runs without a pause.
    const iceServers = options.iceServers ?? await hubIceServers(options.hub);
    if (this.#closing || this.#agents.has(peer)) return;
    let signaling: Signaling;
    try {
      signaling = options.hub.signaling(peer);
    } catch (error) {
      this.onerror?.(error as Error);
      return;
    }
    if (options.signalingKey) {
      signaling = new AuthenticatedSignaling(signaling, {
        key: options.signalingKey,
        role: "host",
      });
    }
    const refusal = this.#refusal();
    if (refusal) {
      this.onerror?.(new Error(`Refused agent ${peer}: ${refusal}`));
      await this.#refuse(signaling, refusal);
      return;
    }
    const {
      hub: _hub,
      createServer: _create,
      signalingKey: _key,
      expiresAt: _expires,
      maxAgents: _max,
      maxSessionsPerAgent = DEFAULT_MAX_SESSIONS_PER_AGENT,
      sessionStartsPerSecond = DEFAULT_SESSION_STARTS_PER_SECOND,
      maxUnfinishedBytesPerAgent = DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
      maxUnfinishedBytes: _desktop,
      ...rest
    } = options;
    const connection = new WebRTCConnection({
      ...rest,
      unfinishedBudget: new MemoryBudget(
        "maxUnfinishedBytesPerAgent",
        maxUnfinishedBytesPerAgent,
        this.#budget,
      ),
      iceServers,
      signaling,
      initiator: rest.initiator ?? false,
    });
    const agent: ConnectedAgent = Object.freeze({ peer, connection });
    this.#agents.set(peer, connection);
    let sessions = 0;
    let open = 0;
    const clock = clockOf(this);
    const starts = new StartRate(sessionStartsPerSecond, maxSessionsPerAgent, clock);
    connection.onerror = (error) => this.onerror?.(error);
    connection.ontransport = (transport) => {
      if (open >= maxSessionsPerAgent) {
        this.onerror?.(
          new Error(
            `Refused a session of agent ${peer}: it has ${open} open, the most allowed (maxSessionsPerAgent)`,
          ),
        );
        refuseSession(
          transport,
          `Cannot open another MCP session as this agent has ${open} open, the most the desktop allows: close one and try again`,
          clock,
        );
        return;
      }
      if (!starts.take()) {
        this.onerror?.(
          new Error(
            `Refused a session of agent ${peer}: it starts sessions faster than ${sessionStartsPerSecond} a second (sessionStartsPerSecond)`,
          ),
        );
        refuseSession(
          transport,
          `Cannot open another MCP session as this agent starts sessions faster than the desktop allows (${sessionStartsPerSecond} a second, sessionStartsPerSecond): wait a second and try again, or keep sessions open instead of opening new ones`,
          clock,
        );
        return;
      }
      // The slot is taken now and given back the moment the channel closes,
      // whether it opened, started a server, or neither.
      open++;
      void transport.closed.then(() => open--);
      void this.#serve({ peer, session: ++sessions }, transport, connection);
    };
    const left = (error?: Error) => {
      if (this.#agents.get(peer) !== connection) return;
      this.#agents.delete(peer);
      this.onagentleave?.(agent, error);
    };
    connection.ondisconnect = (error) => {
      left(error);
      void connection.close();
    };
    // The agent is here: unlike a lone server transport, which may wait for its
    // client forever, an agent must connect in time or give its slot back.
    const timeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    const deadline = clock.setTimeout(() => {
      if (connection.connected) return;
      this.onerror?.(
        new ConnectError(
          "signaling",
          `Closed agent ${peer}'s connection as it did not connect within ${timeout} ms: the agent left, holds a wrong ticket, or its network cannot reach this one`,
        ),
      );
      left();
      void connection.close();
    }, timeout);
    try {
      await connection.connect();
    } catch (error) {
      left(error as Error);
      await connection.close();
      return;
    } finally {
      clock.clearTimeout(deadline);
    }
    if (this.#closing) return void (await connection.close());
    this.onagent?.(agent);
  }

  /** Serves one session of an agent with a fresh server. */
  async #serve(
    info: AgentInfo,
    transport: WebRTCSessionTransport,
    connection: WebRTCConnection,
  ): Promise<void> {
    const agent = Object.freeze(info);
    let server: ConnectableServer;
    try {
      server = await this.#options.createServer(agent);
    } catch (error) {
      this.onerror?.(
        new Error(
          `Cannot serve agent ${agent.peer}'s session ${agent.session} as createServer() failed: ${
            String(error)
          }`,
          { cause: error },
        ),
      );
      await transport.close();
      return;
    }
    const session: AgentSession = Object.freeze({ agent, transport, server, connection });
    let open = true;
    let connected = false;
    // However the session ends its end is reported; a session that ended
    // before its server was connected (whose `onclose` came before the
    // server's callbacks were in place) has its server closed here.
    void transport.closed.then(() => {
      open = false;
      if (!connected) void Promise.resolve(server.close()).catch(() => {});
      if (this.#sessions.delete(session)) this.onsessionclose?.(session);
    });
    try {
      await server.connect(transport);
      connected = true;
    } catch (error) {
      this.onerror?.(error as Error);
      await transport.close();
      return;
    }
    const protocolError = transport.onerror;
    transport.onerror = (error) => {
      protocolError?.(error);
      this.onerror?.(error);
    };
    if (this.#closing || !open) {
      await server.close();
      return;
    }
    this.#sessions.add(session);
    this.onsession?.(session);
  }

  /**
   * Tells a refused agent why (sealed, when signalling is authenticated, so
   * the agent can trust the reason), then lets go of its signalling.
   */
  async #refuse(signaling: Signaling, reason: string): Promise<void> {
    try {
      await signaling.start?.();
      await settle(signaling.send({ type: "bye", reason }), REFUSAL_TIMEOUT);
    } catch {
      // The agent is gone already.
    } finally {
      await signaling.close().catch(() => {});
    }
  }

  #refusal(): string | undefined {
    const { expiresAt, maxAgents = DEFAULT_MAX_AGENTS } = this.#options;
    if (expiresAt && expiresAt.getTime() <= clockOf(this).now()) {
      return "the ticket expired; ask the desktop for a new one";
    }
    if (this.#agents.size >= maxAgents) {
      return `the desktop serves its maximum of ${maxAgents} agents; try again later`;
    }
    return undefined;
  }
}

/**
 * Counts one agent's session starts against its rate: a token bucket that
 * holds `burst` starts and refills at `perSecond`.
 */
class StartRate {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(perSecond: number, burst: number, clock: Clock) {
    this.#rate = perSecond;
    this.#burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  /** Takes a start if the rate allows one now. */
  take(): boolean {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Refuses one session: its first request gets a JSON-RPC error with the
 * reason (the SDK's `connect()` rejects with it), then its channel closes.
 */
function refuseSession(transport: Transport, reason: string, clock: Clock): void {
  let done = false;
  const close = () => {
    if (done) return;
    done = true;
    clock.clearTimeout(timer);
    void transport.close();
  };
  transport.onmessage = (message) => {
    if (!("method" in message) || !("id" in message)) return;
    void transport.send({
      jsonrpc: "2.0",
      id: message.id,
      error: { code: SESSION_LIMIT_REACHED, message: reason },
    }).catch(() => {}).finally(close);
  };
  // An agent that sends nothing gets its channel closed after a while.
  const timer = clock.setTimeout(close, REFUSAL_TIMEOUT);
  transport.start().catch(close);
}

/**
 * The STUN/TURN servers a hub hands out: asked for where it can (a room mints
 * TURN credentials only on request), else as it holds them.
 */
function hubIceServers(hub: unknown): Promise<IceServer[] | undefined> {
  const source = hub as {
    iceServers?: IceServer[];
    requestIceServers?: () => Promise<IceServer[] | undefined>;
  };
  return typeof source.requestIceServers === "function"
    ? source.requestIceServers()
    : Promise.resolve(source.iceServers);
}
