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
import { GUEST_INVITE, INVITE_NAME, keyVerifier, roomUrl } from "./signaling/room_protocol.ts";
import { SignalingRoom, type SignalingRoomOptions } from "./signaling/signaling_room.ts";
import {
  assertTicketUsable,
  createGuestTicket,
  createInviteTicket,
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
  MAX_INVITE_TOOLS,
  MAX_INVITES,
  REFUSAL_TIMEOUT,
  SESSION_LIMIT_REACHED,
} from "./constants.ts";
import { ConnectError, WebRTCTransportError } from "./errors.ts";
import { MemoryBudget } from "./framing.ts";
import { type AuditRecord, combineTools, PolicyTransport } from "./policy_transport.ts";
import { WebRTCConnection, type WebRTCSessionTransport } from "./webrtc_connection.ts";
import type { IceServer, WebRTCTransportOptions } from "./webrtc_transport.ts";

/** What the listener needs of an MCP server: `McpServer` and `Server` both fit. */
export interface ConnectableServer {
  /** Starts serving over the transport. */
  connect(transport: Transport): Promise<void>;
  /** Stops serving and closes the transport. */
  close(): Promise<void>;
}

/**
 * An agent the listener serves: its peer connection, which carries any
 * number of {@linkcode AgentSession}s.
 */
export interface Agent {
  /** The peer id the signalling gave the agent (unique while it is present). */
  readonly peer: string;
  /**
   * The name of the invite the agent came with (see
   * {@linkcode WebRTCListener.invite}): `"guest"` for the ticket of
   * `listen()`; absent when the hub names no invites. The desktop checked it:
   * the agent's signalling opened only with that invite's key. It is in the
   * session's audit records.
   */
  readonly name?: string;
  /**
   * The only tools this agent may list and call (its invite's; `undefined`:
   * all), within the listener's own `tools`; enforced by a
   * {@linkcode PolicyTransport}.
   */
  readonly tools?: readonly string[];
  /** Its connection, e.g. for `getConnectionPath()`. */
  readonly connection: WebRTCConnection;
}

/**
 * One MCP session of an {@linkcode Agent}: what `createServer` makes a server
 * for, and what `onsession` and `onsessionclose` report.
 */
export interface AgentSession {
  /** Whose session it is. */
  readonly agent: Agent;
  /** The agent's peer id (`agent.peer`). */
  readonly peer: string;
  /** The session's number among the agent's sessions on its connection, from 1. */
  readonly session: number;
  /** Its transport: a data channel of the agent's connection. */
  readonly transport: Transport;
}

/** Options of {@linkcode WebRTCListener}. */
export interface WebRTCListenerOptions extends Omit<WebRTCTransportOptions, "signaling"> {
  /** The signalling on which agents arrive, joined as host. */
  hub: SignalingHub;
  /**
   * Makes a fresh MCP server for each MCP session (an agent may open several
   * on its connection): MCP sessions are stateful, so they never share one.
   */
  createServer: (session: AgentSession) => ConnectableServer | Promise<ConnectableServer>;
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
  /**
   * The only tools any agent may list and call: `tools/list` answers hold
   * these alone, and a `tools/call` of another tool is answered with a
   * JSON-RPC error naming this limit (code `-32602`) and never reaches the
   * server (see {@linkcode PolicyTransport}). An agent with `tools` of its
   * own gets the tools in both. Resources and prompts are not limited.
   *
   * @default {undefined}
   */
  tools?: readonly string[];
  /**
   * Called with an {@linkcode AuditRecord} for each request of every session
   * once it is answered, and for each notification of a client: which agent,
   * which session, which method and tool, when, how long, and how it ended.
   *
   * @default {undefined}
   */
  onaudit?: (record: AuditRecord) => void;
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
  /**
   * Invites made earlier (`listener.invites`, kept by the caller) to register
   * again in the room: each agent keeps its own ticket across restarts.
   *
   * @default {[]}
   */
  invites?: readonly InviteRecord[];
  /**
   * Whether the room admits the one guest ticket of the host ticket (named
   * `"guest"`, in `listener.ticket`). `false` admits only invites: the room
   * is opened with the verifier of a key nobody holds.
   *
   * @default {true}
   */
  guestTicket?: boolean;
}

/** Options of {@linkcode WebRTCListener.invite}. */
export interface InviteOptions {
  /**
   * The invite's name: 1 to 64 letters, digits, `.`, `_` or `-`; unique
   * among the listener's invites. It names the agent in every event.
   */
  name: string;
  /**
   * The only tools the agent may use (enforced where the server's transport
   * is wrapped to read `Agent.tools`); absent means every tool.
   *
   * @default {undefined}
   */
  tools?: readonly string[];
  /**
   * When the invite stops being valid: agents that arrive after it are
   * refused by the desktop.
   *
   * @default {undefined} never
   */
  expiresAt?: Date;
}

/** An invite as it can be kept and given back to `listen({ invites })`. */
export interface InviteRecord {
  /** Its name. */
  readonly name: string;
  /** Its guest ticket: the agent's credential (keep it secret). */
  readonly ticket: string;
  /** The tools it may use, if limited. */
  readonly tools?: readonly string[];
}

/** One invite of a listener, as {@linkcode WebRTCListener.invites} lists it. */
export interface Invite extends InviteRecord {
  /** When it expires, if it does (from its ticket). */
  readonly expiresAt?: Date;
  /** How many agents hold a connection with it now. */
  readonly agents: number;
  /** Whether an agent holds a connection with it now. */
  readonly connected: boolean;
}

/** What {@linkcode WebRTCListener.revoke} did. */
export interface RevokeResult {
  /** The invite revoked. */
  readonly name: string;
  /** How many of its agents' connections the desktop closed. */
  readonly closed: number;
}

/** What the listener keeps of one invite. */
interface InviteEntry {
  readonly name: string;
  readonly ticket?: string;
  readonly tools?: readonly string[];
  readonly expiresAt?: Date;
  readonly signalingKey?: CryptoKey;
}

/** What the listener needs of a hub to manage invites (a `SignalingRoom` joined as host). */
interface InviteHub {
  invite(name: string, verifier: string): Promise<unknown>;
  revoke(name: string): Promise<unknown>;
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
  readonly #agents = new Map<string, Agent>();
  /** The sessions being served, with their servers. */
  readonly #sessions = new Map<AgentSession, ConnectableServer>();
  /** The invites agents may come with, by name; each has its own signalling key. */
  readonly #invites = new Map<string, InviteEntry>();
  /** The host ticket, when made by `listen()`: what new invites are tickets to. */
  #host?: Ticket;
  /** What all agents' unfinished messages hold. */
  readonly #budget: MemoryBudget;
  #closing?: Promise<void>;

  /** The guest ticket to hand to agents, when made by `listen()`. */
  ticket?: string;
  /** The host ticket, to reopen the same room later; keep it secret. */
  hostTicket?: string;

  /** Called when an agent's connection is up (before its first session). */
  onagent?: (agent: Agent) => void;
  /** Called when an agent's connection is gone, with all its sessions. */
  onagentleave?: (agent: Agent, error?: Error) => void;
  /** Called when an agent opened a session and its server is connected to it. */
  onsession?: (session: AgentSession, server: ConnectableServer) => void;
  /** Called when a session ends. */
  onsessionclose?: (session: AgentSession, server: ConnectableServer) => void;
  /** Called for a refused agent or a failed session; the listener goes on. */
  onerror?: (error: Error) => void;

  /**
   * @param options The hub, the server factory and transport options.
   * @throws {TypeError} If the hub or the factory is missing, or `tools` is not an array of names.
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
    assertToolNames(options.tools, "Cannot create listener");
    this.#options = options;
    if (options.signalingKey) {
      this.#invites.set(GUEST_INVITE, {
        name: GUEST_INVITE,
        signalingKey: options.signalingKey,
        expiresAt: options.expiresAt,
      });
    }
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
    const {
      url,
      hostTicket,
      room: roomOptions,
      invites = [],
      guestTicket = true,
      ...rest
    } = options;
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
    // Checked before the room is opened: a wrong record fails the call, not an agent.
    const records = await Promise.all(invites.map((record) => readInviteRecord(record, host)));
    const hub = await SignalingRoom.join(roomUrl(host), {
      ...roomOptions,
      role: "host",
      key: keys.hostKey!,
      // Without the guest ticket, the verifier of a key nobody holds.
      guestVerifier: guestTicket ? keys.guestVerifier : await unusableVerifier(),
    });
    const listener = new WebRTCListener({
      ...rest,
      expiresAt: rest.expiresAt ?? host.expiresAt,
      hub,
      ...(guestTicket ? { signalingKey: keys.signalingKey } : {}),
    });
    listener.hostTicket = formatTicket(host);
    listener.#host = host;
    if (guestTicket) {
      listener.ticket = formatTicket(await createGuestTicket(host));
      listener.#invites.set(GUEST_INVITE, {
        ...listener.#invites.get(GUEST_INVITE)!,
        ticket: listener.ticket,
      });
    }
    try {
      for (const record of records) {
        if (record.name === GUEST_INVITE && guestTicket) continue;
        await listener.#register(record);
      }
    } catch (error) {
      await listener.close();
      throw error;
    }
    return listener;
  }

  /**
   * Makes an invite: a guest ticket of this listener's room with a secret of
   * its own (so its own room key and signalling key), a name, and optionally
   * an expiry and the tools it may use. Resolves once the room admits its
   * key: the agent can connect at once. The agent's name is then on its
   * `Agent`, checked by the desktop (its signalling
   * opens only with this invite's key, whatever the room claims).
   *
   * @param options The name, the tools it may use and its expiry.
   * @returns The invite's guest ticket, to hand to that agent only.
   * @throws {TypeError} If the name, the tools or the expiry are malformed,
   * the name is taken, or the listener was not made by `listen()` (it needs
   * the host ticket) on a room that stores invites.
   * @throws {RangeError} If the listener has `MAX_INVITES` invites already.
   * @throws {SignalingRoomError} If the room refused the invite or was lost.
   *
   * @example Give an agent its own ticket, limited to two tools
   * ```ts ignore
   * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
   * import { WebRTCListener } from "@mcp/webrtc";
   *
   * const listener = await WebRTCListener.listen({
   *   url: "wss://signal.example",
   *   guestTicket: false,
   *   createServer: () => new McpServer({ name: "desktop", version: "1.0.0" }),
   * });
   * const ticket = await listener.invite({ name: "ci", tools: ["read_file", "search"] });
   * console.log("Give this ticket to the CI agent:", ticket);
   * ```
   */
  async invite(options: InviteOptions): Promise<string> {
    const { name, tools, expiresAt } = checkInviteOptions(options);
    if (this.#closing) {
      throw new TypeError(`Cannot invite "${name}" as the listener is closed`);
    }
    const host = this.#host;
    if (!host) {
      throw new TypeError(
        `Cannot invite "${name}" as this listener has no host ticket: make it with WebRTCListener.listen()`,
      );
    }
    if (expiresAt && expiresAt.getTime() <= clockOf(this).now()) {
      throw new TypeError(
        `Cannot invite "${name}" as its expiry ${expiresAt.toISOString()} has passed: give a later one`,
      );
    }
    const ticket = await createInviteTicket(host, { expiresAt });
    const record: InviteRecord = {
      name,
      ticket: formatTicket(ticket),
      ...(tools ? { tools } : {}),
    };
    await this.#register(await readInviteRecord(record, host));
    return record.ticket;
  }

  /**
   * Revokes an invite: the room refuses its key from then on and closes its
   * agents' sockets, and the desktop closes their connections and sessions;
   * every other agent goes on. Resolves once those connections are closed.
   *
   * @param name The invite's name (`"guest"` for the ticket of `listen()`).
   * @returns The name and how many connections were closed.
   * @throws {Error} If no invite has that name (the message lists those that do).
   * @throws {SignalingRoomError} If the room could not be told (the desktop
   * refuses the invite anyway).
   *
   * @example Revoke an agent's invite
   * ```ts ignore
   * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
   * import { WebRTCListener } from "@mcp/webrtc";
   *
   * const listener = await WebRTCListener.listen({
   *   url: "wss://signal.example",
   *   createServer: () => new McpServer({ name: "desktop", version: "1.0.0" }),
   * });
   * await listener.invite({ name: "laptop" });
   * const { closed } = await listener.revoke("laptop");
   * console.log(`Closed ${closed} connection(s)`);
   * ```
   */
  async revoke(name: string): Promise<RevokeResult> {
    if (!this.#invites.has(name)) {
      const known = [...this.#invites.keys()];
      throw new WebRTCTransportError(
        `Cannot revoke invite "${clipName(name)}" as there is no invite of that name: ${
          known.length > 0 ? `the invites are ${known.join(", ")}` : "there are no invites"
        }`,
      );
    }
    // From now on its hello opens with no key here, whatever the room does.
    this.#invites.delete(name);
    const hub = inviteHub(this.#options.hub);
    // A room that no longer has it (made again since) admits it no more either.
    const roomDone = hub
      ? hub.revoke(name).catch((error: Error) => {
        if (!/invite_not_found/.test(String(error?.message))) throw error;
      })
      : Promise.resolve();
    roomDone.catch(() => {});
    const agents = [...this.#agents.values()].filter((agent) => agent.name === name);
    await Promise.allSettled(agents.map((agent) => this.#closeAgent(agent)));
    await roomDone;
    return { name, closed: agents.length };
  }

  /**
   * The invites agents may come with now (`"guest"` first, when `listen()`
   * made the one guest ticket), each with whether an agent is connected with
   * it. Keep the records (`name`, `ticket`, `tools`) to pass them to
   * `listen({ invites })` after a restart.
   */
  get invites(): Invite[] {
    const counts = new Map<string, number>();
    for (const agent of this.#agents.values()) {
      if (agent.name !== undefined) counts.set(agent.name, (counts.get(agent.name) ?? 0) + 1);
    }
    const list: Invite[] = [];
    for (const entry of this.#invites.values()) {
      if (entry.ticket === undefined) continue;
      const agents = counts.get(entry.name) ?? 0;
      list.push(Object.freeze({
        name: entry.name,
        ticket: entry.ticket,
        ...(entry.tools ? { tools: entry.tools } : {}),
        ...(entry.expiresAt ? { expiresAt: new Date(entry.expiresAt.getTime()) } : {}),
        agents,
        connected: agents > 0,
      }));
    }
    return list;
  }

  /** Registers a checked invite in the room, then here. */
  async #register(invite: CheckedInvite): Promise<void> {
    const { name } = invite;
    if (this.#invites.has(name)) {
      throw new TypeError(
        `Cannot invite "${name}" as an invite of that name exists: revoke it first, or pick another name`,
      );
    }
    // The room keeps a slot for "guest" whether or not this desktop serves it.
    const held = this.#invites.size + (this.#invites.has(GUEST_INVITE) ? 0 : 1);
    if (held >= MAX_INVITES) {
      throw new RangeError(
        `Cannot invite "${name}" as the room holds ${MAX_INVITES} invites ("guest" included), the most it keeps (MAX_INVITES): revoke one first`,
      );
    }
    const hub = inviteHub(this.#options.hub);
    if (!hub) {
      throw new TypeError(
        `Cannot invite "${name}" as the hub does not store invites: listen on a signalling room (WebRTCListener.listen())`,
      );
    }
    // Held here first, so a second call with the same name fails at once.
    this.#invites.set(name, invite);
    try {
      await hub.invite(name, invite.verifier);
    } catch (error) {
      if (this.#invites.get(name) === invite) this.#invites.delete(name);
      throw error;
    }
  }

  /** Ends one agent: its sessions' servers, then its connection. */
  async #closeAgent(agent: Agent): Promise<void> {
    if (this.#agents.get(agent.peer) === agent) {
      this.#agents.delete(agent.peer);
      this.onagentleave?.(
        agent,
        new WebRTCTransportError(`its invite "${agent.name}" was revoked`),
      );
    }
    const servers = [...this.#sessions].filter(([session]) => session.agent === agent);
    await Promise.allSettled(servers.map(([, server]) => server.close()));
    await agent.connection.close();
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
    return [...this.#sessions.keys()];
  }

  /** The agents connected (or connecting) now: one peer connection each. */
  get agents(): Agent[] {
    return [...this.#agents.values()];
  }

  /**
   * Stops accepting agents, closes every session and leaves the room.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#options.hub.onpeerjoin = undefined;
      await Promise.allSettled([...this.#sessions.values()].map((server) => server.close()));
      await Promise.allSettled(
        [...this.#agents.values()].map((agent) => agent.connection.close()),
      );
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
    // The room's claim only picks the key: an agent that holds another
    // invite's key (or none) fails to open its hello.
    const name = inviteNameOf(options.hub, peer);
    const invite = name === undefined ? this.#invites.get(GUEST_INVITE) : this.#invites.get(name);
    if (name !== undefined && !invite?.signalingKey) {
      this.onerror?.(
        new WebRTCTransportError(
          `Refused agent ${peer}: the room says it came with the invite "${
            clipName(name)
          }", which this desktop does not have (revoked, or never made here)`,
        ),
      );
      await signaling.close().catch(() => {});
      return;
    }
    if (invite?.signalingKey) {
      signaling = new AuthenticatedSignaling(signaling, {
        key: invite.signalingKey,
        role: "host",
      });
    }
    const refusal = this.#refusal(invite);
    if (refusal) {
      this.onerror?.(new WebRTCTransportError(`Refused agent ${peer}: ${refusal}`));
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
      tools: _tools,
      onaudit: _onaudit,
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
    const agent: Agent = Object.freeze({
      peer,
      ...(name === undefined ? {} : { name }),
      ...(invite?.tools ? { tools: invite.tools } : {}),
      connection,
    });
    this.#agents.set(peer, agent);
    let sessions = 0;
    let open = 0;
    const clock = clockOf(this);
    const starts = new StartRate(sessionStartsPerSecond, maxSessionsPerAgent, clock);
    connection.onerror = (error) => this.onerror?.(error);
    connection.ontransport = (transport) => {
      if (open >= maxSessionsPerAgent) {
        this.onerror?.(
          new WebRTCTransportError(
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
          new WebRTCTransportError(
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
      void this.#serve(Object.freeze({ agent, peer, session: ++sessions, transport }), transport);
    };
    const left = (error?: Error) => {
      if (this.#agents.get(peer) !== agent) return;
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
  async #serve(session: AgentSession, transport: WebRTCSessionTransport): Promise<void> {
    let server: ConnectableServer;
    try {
      server = await this.#options.createServer(session);
    } catch (error) {
      this.onerror?.(
        new WebRTCTransportError(
          `Cannot serve agent ${session.peer}'s session ${session.session} as createServer() failed: ${
            String(error)
          }`,
          { cause: error },
        ),
      );
      await transport.close();
      return;
    }
    let open = true;
    let connected = false;
    // However the session ends its end is reported; a session that ended
    // before its server was connected (whose `onclose` came before the
    // server's callbacks were in place) has its server closed here.
    void transport.closed.then(() => {
      open = false;
      if (!connected) void Promise.resolve(server.close()).catch(() => {});
      if (this.#sessions.delete(session)) this.onsessionclose?.(session, server);
    });
    try {
      await server.connect(this.#policy(session, transport));
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
    this.#sessions.set(session, server);
    this.onsession?.(session, server);
  }

  /**
   * The session's transport as its server sees it: wrapped in a
   * {@linkcode PolicyTransport} when tools are limited or audited.
   */
  #policy({ agent, session }: AgentSession, transport: Transport): Transport {
    const { tools, onaudit } = this.#options;
    if (tools === undefined && agent.tools === undefined && !onaudit) return transport;
    assertToolNames(agent.tools, `Cannot serve agent ${agent.peer}'s session`);
    return new PolicyTransport(transport, {
      tools: combineTools(tools, agent.tools),
      onaudit,
      agent: { name: agent.name, peer: agent.peer, session },
    });
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

  #refusal(invite: InviteEntry | undefined): string | undefined {
    const now = clockOf(this).now();
    const { expiresAt, maxAgents = DEFAULT_MAX_AGENTS } = this.#options;
    if (expiresAt && expiresAt.getTime() <= now) {
      return "the ticket expired; ask the desktop for a new one";
    }
    if (invite?.expiresAt && invite.expiresAt.getTime() <= now) {
      return `the invite "${invite.name}" expired; ask the desktop for a new one`;
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

/** Throws unless `tools` is undefined or an array of tool names. */
function assertToolNames(tools: unknown, action: string): void {
  if (tools === undefined) return;
  if (!Array.isArray(tools) || tools.some((tool) => typeof tool !== "string")) {
    throw new TypeError(
      `${action} as 'tools' must be an array of tool names: received ${JSON.stringify(tools)}`,
    );
  }
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

/** An invite record, checked and with its keys. */
interface CheckedInvite extends InviteEntry {
  readonly ticket: string;
  readonly verifier: string;
  readonly signalingKey: CryptoKey;
}

/** Checks the options of `invite()`; throws a TypeError that says what is wrong. */
function checkInviteOptions(options: InviteOptions): InviteOptions {
  const { name, tools, expiresAt } = options ?? {} as InviteOptions;
  checkInviteName(name);
  if (tools !== undefined) checkTools(name, tools);
  if (
    expiresAt !== undefined && (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime()))
  ) {
    throw new TypeError(`Cannot invite "${name}" as 'expiresAt' is not a valid Date`);
  }
  return {
    name,
    ...(tools ? { tools: Object.freeze([...tools]) } : {}),
    ...(expiresAt ? { expiresAt } : {}),
  };
}

function checkInviteName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !INVITE_NAME.test(name)) {
    throw new TypeError(
      `Cannot invite ${
        typeof name === "string" ? `"${clipName(name)}"` : "an agent"
      } as an invite's name must be 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
}

function checkTools(name: string, tools: unknown): void {
  if (!Array.isArray(tools)) {
    throw new TypeError(`Cannot invite "${name}" as 'tools' is not an array of tool names`);
  }
  if (tools.length > MAX_INVITE_TOOLS) {
    throw new RangeError(
      `Cannot invite "${name}" with ${tools.length} tools as an invite lists at most ${MAX_INVITE_TOOLS} (MAX_INVITE_TOOLS): leave 'tools' out to allow every tool`,
    );
  }
  for (const tool of tools) {
    if (typeof tool !== "string" || tool.length < 1 || tool.length > 128) {
      throw new TypeError(
        `Cannot invite "${name}" as a tool name must be a string of 1 to 128 characters: received ${
          JSON.stringify(tool)?.slice(0, 40)
        }`,
      );
    }
  }
}

/** Reads a kept invite record: a guest ticket of the host ticket's room, and its keys. */
async function readInviteRecord(record: InviteRecord, host: Ticket): Promise<CheckedInvite> {
  const { name, tools } = record ?? {} as InviteRecord;
  checkInviteName(name);
  if (tools !== undefined) checkTools(name, tools);
  const ticket = parseTicket(record.ticket);
  if (ticket.kind !== "guest" || ticket.room !== host.room || ticket.url !== host.url) {
    throw new TypeError(
      `Cannot restore invite "${name}" as its ticket is not a guest ticket of this room: keep the invites with their host ticket`,
    );
  }
  const keys = await deriveTicketKeys(ticket);
  return {
    name,
    ticket: formatTicket(ticket),
    ...(tools ? { tools: Object.freeze([...tools]) } : {}),
    ...(ticket.expiresAt ? { expiresAt: ticket.expiresAt } : {}),
    verifier: keys.guestVerifier,
    signalingKey: keys.signalingKey,
  };
}

/** The hub's invite operations, if it stores invites (a `SignalingRoom` joined as host). */
function inviteHub(hub: SignalingHub): InviteHub | undefined {
  const source = hub as Partial<InviteHub>;
  return typeof source.invite === "function" && typeof source.revoke === "function"
    ? source as InviteHub
    : undefined;
}

/** The invite a hub says a peer came with, if it names invites. */
function inviteNameOf(hub: SignalingHub, peer: string): string | undefined {
  const source = hub as { inviteOf?: (peer: string) => string | undefined };
  return typeof source.inviteOf === "function" ? source.inviteOf(peer) : undefined;
}

/** The verifier of a fresh random key that is thrown away: it admits nobody. */
function unusableVerifier(): Promise<string> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return keyVerifier(Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(""));
}

/** Shortens a name from elsewhere for an error message. */
function clipName(name: string): string {
  return name.length > 64 ? `${name.slice(0, 64)}…` : name;
}
