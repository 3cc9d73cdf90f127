import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
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
import { DEFAULT_CONNECT_TIMEOUT } from "./constants.ts";
import { ConnectError } from "./errors.ts";
import { WebRTCServerTransport } from "./webrtc_server_transport.ts";
import type { WebRTCTransportOptions } from "./webrtc_transport.ts";

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
}

/** How long a refused agent's signalling is kept to deliver the reason, in ms. */
const REFUSAL_TIMEOUT = 2_000;

/** Options of {@linkcode WebRTCListener}. */
export interface WebRTCListenerOptions extends Omit<WebRTCTransportOptions, "signaling"> {
  /** The signalling on which agents arrive, joined as host. */
  hub: SignalingHub;
  /**
   * Makes a fresh MCP server for each agent: MCP sessions are stateful, so
   * agents never share one.
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
   * The most agents served at once; one more is refused until one leaves.
   *
   * @default {8}
   */
  maxAgents?: number;
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

/** One agent being served. */
export interface AgentSession {
  /** Who it is. */
  readonly agent: AgentInfo;
  /** Its transport. */
  readonly transport: WebRTCServerTransport;
  /** Its MCP server. */
  readonly server: ConnectableServer;
}

/**
 * Accepts any number of agents on one signalling room (up to `maxAgents`):
 * for each agent that arrives, a fresh {@linkcode WebRTCServerTransport} and a
 * fresh MCP server from the caller's factory. Agents come and go
 * independently; closing the listener closes them all.
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
  readonly #sessions = new Map<string, AgentSession>();
  readonly #pending = new Set<string>();
  #closing?: Promise<void>;

  /** The guest ticket to hand to agents, when made by `listen()`. */
  ticket?: string;
  /** The host ticket, to reopen the same room later; keep it secret. */
  hostTicket?: string;

  /** Called when an agent arrives and its server is connected to its transport. */
  onsession?: (session: AgentSession) => void;
  /** Called when an agent's session ends. */
  onsessionclose?: (session: AgentSession) => void;
  /** Called for a refused agent or a failed session; the listener goes on. */
  onerror?: (error: Error) => void;

  /**
   * @param options The hub, the server factory and transport options.
   * @throws {TypeError} If the hub or the factory is missing.
   */
  constructor(options: WebRTCListenerOptions) {
    if (!options?.hub || typeof options.createServer !== "function") {
      throw new TypeError(
        "Cannot create listener as 'hub' and 'createServer' are required: pass a SignalingRoom joined as host and a function returning an MCP server",
      );
    }
    const maxAgents = options.maxAgents ?? 8;
    if (!Number.isSafeInteger(maxAgents) || maxAgents < 1) {
      throw new RangeError(
        `Cannot create listener as 'maxAgents' must be a positive integer: received ${maxAgents}`,
      );
    }
    this.#options = options;
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

  /** The agents being served now. */
  get sessions(): AgentSession[] {
    return [...this.#sessions.values()];
  }

  /**
   * Stops accepting agents, closes every session and leaves the room.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#options.hub.onpeerjoin = undefined;
      await Promise.allSettled(
        [...this.#sessions.values()].map((session) => session.server.close()),
      );
      await this.#options.hub.close();
    })();
    return this.#closing;
  }

  async #accept(peer: string): Promise<void> {
    if (this.#closing || this.#sessions.has(peer) || this.#pending.has(peer)) return;
    const options = this.#options;
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
    const { hub: _hub, createServer, signalingKey: _key, expiresAt: _e, maxAgents: _m, ...rest } =
      options;
    const transport = new WebRTCServerTransport({ ...rest, signaling });
    const agent: AgentInfo = Object.freeze({ peer });
    this.#pending.add(peer);
    let server: ConnectableServer;
    try {
      server = await createServer(agent);
    } catch (error) {
      this.#pending.delete(peer);
      this.onerror?.(
        new Error(`Cannot serve agent ${peer} as createServer() failed: ${String(error)}`, {
          cause: error,
        }),
      );
      await transport.close();
      return;
    }
    const session: AgentSession = Object.freeze({ agent, transport, server });
    let open = true;
    // The agent is here: unlike a lone server transport, which may wait for its
    // client forever, a session must connect in time or give its slot back.
    const timeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    const deadline = setTimeout(() => {
      if (!open || transport.connected) return;
      this.onerror?.(
        new ConnectError(
          "signaling",
          `Closed agent ${peer}'s session as it did not connect within ${timeout} ms: the agent left, holds a wrong ticket, or its network cannot reach this one`,
        ),
      );
      void transport.close();
    }, timeout);
    const ended = () => {
      clearTimeout(deadline);
      if (!open) return;
      open = false;
      this.#pending.delete(peer);
      if (this.#sessions.delete(peer)) this.onsessionclose?.(session);
    };
    try {
      await server.connect(transport);
    } catch (error) {
      ended();
      this.onerror?.(error as Error);
      await transport.close();
      return;
    }
    // Protocol.connect() installed its own callbacks; chain ours after them.
    const protocolClose = transport.onclose;
    transport.onclose = () => {
      protocolClose?.();
      ended();
    };
    const protocolError = transport.onerror;
    transport.onerror = (error) => {
      protocolError?.(error);
      this.onerror?.(error);
    };
    if (this.#closing) {
      await server.close();
      return;
    }
    this.#pending.delete(peer);
    this.#sessions.set(peer, session);
    this.onsession?.(session);
  }

  /**
   * Tells a refused agent why (sealed, when signalling is authenticated, so
   * the agent can trust the reason), then lets go of its signalling.
   */
  async #refuse(signaling: Signaling, reason: string): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await signaling.start?.();
      await Promise.race([
        signaling.send({ type: "bye", reason }),
        new Promise((resolve) => (timer = setTimeout(resolve, REFUSAL_TIMEOUT))),
      ]);
    } catch {
      // The agent is gone already.
    } finally {
      clearTimeout(timer);
      await signaling.close().catch(() => {});
    }
  }

  #refusal(): string | undefined {
    const { expiresAt, maxAgents = 8 } = this.#options;
    if (expiresAt && expiresAt.getTime() <= Date.now()) {
      return "the ticket expired; ask the desktop for a new one";
    }
    if (this.#sessions.size + this.#pending.size >= maxAgents) {
      return `the desktop serves its maximum of ${maxAgents} agents; try again later`;
    }
    return undefined;
  }
}
