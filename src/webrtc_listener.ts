/**
 * The desktop's side of a room of agents: {@linkcode WebRTCListener} accepts
 * each agent that arrives as one {@linkcode WebRTCConnection} and serves each
 * MCP session it opens with a fresh server.
 *
 * Its parts live beside it: the options and the types it reports in
 * `_listener_options.ts`, the invites (their checks, records and the book of
 * them) in `_listener_invites.ts`, the admission of agents and sessions in
 * `_listener_sessions.ts`. It is over 400 lines because what remains is one
 * lifecycle that reads best whole (listen, invite and revoke, accept an
 * agent, serve its sessions, close), and a quarter of it is the doc
 * comments and runnable examples of the public methods.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { clockOf } from "./_clock.ts";
import {
  checkInviteOptions,
  clipName,
  type Invite,
  InviteBook,
  inviteNameOf,
  type InviteOptions,
  type InviteRecord,
  readInviteRecord,
  type RevokeResult,
  unusableVerifier,
} from "./_listener_invites.ts";
import {
  type Agent,
  type AgentSession,
  checkListenerLimits,
  type ConnectableServer,
  type ListenOptions,
  type WebRTCListenerOptions,
} from "./_listener_options.ts";
import {
  agentRefusal,
  assertToolNames,
  hubIceServers,
  refuseAgent,
  SessionGate,
} from "./_listener_sessions.ts";
import { AuthenticatedSignaling, type PreparedHello } from "./signaling/authenticated_signaling.ts";
import type { Signaling, SignalingHub } from "./signaling/signaling.ts";
import type { ConnectionPath } from "./peer.ts";
import { GUEST_INVITE, roomUrl } from "./signaling/room_protocol.ts";
import { SignalingRoom } from "./signaling/signaling_room.ts";
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
  DEFAULT_MAX_QUEUED_BYTES_PER_AGENT,
  DEFAULT_MAX_QUEUED_BYTES_PER_DESKTOP,
  DEFAULT_MAX_SESSIONS_PER_AGENT,
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT,
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_DESKTOP,
  DEFAULT_MAX_UNFINISHED_BYTES,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  DEFAULT_RESUME_GRACE,
  DEFAULT_SESSION_STARTS_PER_SECOND,
} from "./constants.ts";
import { ConnectError, WebRTCTransportError } from "./errors.ts";
import { MemoryBudget } from "./framing.ts";
import { combineTools, PolicyTransport } from "./policy_transport.ts";
import {
  type ClaimScope,
  heldSessions,
  shareClaims,
  WebRTCConnection,
  type WebRTCSessionTransport,
} from "./webrtc_connection.ts";
import { ClaimBook } from "./_resume_claim.ts";

export type { Invite, InviteOptions, InviteRecord, RevokeResult };
export type { Agent, AgentSession, ConnectableServer, ListenOptions, WebRTCListenerOptions };

/** A sealed hello this end left in the room, with the key it was sealed with. */
interface LeftHello {
  hello: PreparedHello;
  key: CryptoKey;
}

/** Hubs that `listen()` opened: each agent's hello opens with a key of the desktop's. */
const keyedHubs = new WeakSet<SignalingHub>();

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
 * @example Serve an agent: its MCP session gets a server of its own
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { MemorySignaling, type SignalingHub, WebRTCClientTransport, WebRTCListener } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * // Peers on one machine: no STUN, loopback only.
 * const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
 * // A hub with one agent present, in memory; a SignalingRoom is the hub across networks.
 * const [agentEnd, desktopEnd] = MemorySignaling.createPair();
 * const hub: SignalingHub = { peers: ["agent"], signaling: () => desktopEnd, close: async () => {} };
 * const listener = new WebRTCListener({
 *   hub,
 *   createServer: () => new McpServer({ name: "desktop", version: "1.0.0" }),
 *   ...local,
 * });
 * const client = new Client({ name: "agent", version: "1.0.0" });
 * await client.connect(new WebRTCClientTransport({ signaling: agentEnd, ...local }));
 * assert.equal(client.getServerVersion()?.name, "desktop");
 * await client.close();
 * await listener.close();
 * ```
 *
 * @example Serve agents through a signalling room, with a ticket to hand them
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
  readonly #invites = new InviteBook();
  /** The host ticket, when made by `listen()`: what new invites are tickets to. */
  #host?: Ticket;
  /** Lost agents' connections, held with their sessions for the agents' redials. */
  readonly #held = new Map<WebRTCConnection, Agent>();
  /** The lost agent whose sessions a connection took over, until its resume is reported. */
  readonly #resumedFrom = new Map<WebRTCConnection, Agent>();
  /**
   * Whether every agent must open its hello with a key of this desktop's (an
   * invite's, or the guest ticket's): set by `listen()`, a `signalingKey`, or
   * the first invite. A peer the room names no keyed invite for is refused.
   */
  #keyed: boolean;
  /** Each connection's session gate: a connection that takes over another's sessions takes its gate. */
  readonly #gates = new Map<WebRTCConnection, SessionGate>();
  /** The grants of every agent's connection, and how a redial takes over a held one. */
  readonly #claims: ClaimScope = {
    book: new ClaimBook(),
    adopt: (from, to) => this.#adopt(from, to),
    // Sessions a redial opened before its claim count with those it claims.
    mayAdopt: (from, to) => {
      const was = this.#agentOf(from)?.name;
      const now = this.#agentOf(to)?.name;
      if (was !== now) {
        return `its sessions were opened with the invite "${
          was ?? GUEST_INVITE
        }", and this connection came with the invite "${
          now ?? GUEST_INVITE
        }": an agent resumes its sessions with the ticket it opened them with`;
      }
      const held = this.#gates.get(from);
      const own = this.#gates.get(to);
      return held && own ? held.overWith(own) : undefined;
    },
    emptied: (connection) => this.#expire(connection),
    hold: (connection, channel) => this.#gates.get(connection)?.hold(channel),
    // The channel took the session's start as it arrived.
    admit: (connection, session) => this.#gates.get(connection)?.admit(session, false),
  };
  /** What all agents' unfinished messages hold. */
  readonly #budget: MemoryBudget;
  /** What all agents' sessions keep until acknowledged. */
  readonly #unacknowledged: MemoryBudget;
  /** What all agents' waiting messages hold. */
  readonly #queued = new MemoryBudget(
    "DEFAULT_MAX_QUEUED_BYTES_PER_DESKTOP",
    DEFAULT_MAX_QUEUED_BYTES_PER_DESKTOP,
  );
  #closing?: Promise<void>;
  /** The sealed hellos waiting in the room for the next agent of each invite, by invite. */
  #hellos = new Map<string, LeftHello>();

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
  /**
   * Called when an agent's peer connection was lost and its sessions are held
   * for its redial (`resume`), for `resumeGrace`; `onagentleave` follows if
   * it does not come back in time.
   */
  onagentlost?: (agent: Agent, error?: Error) => void;
  /**
   * Called when a lost agent came back: its redial's claim was accepted, and
   * its held sessions continue on the new connection (`agent`, which
   * `onagent` reported as it arrived). `was` is the lost one; `resumed` says
   * the new path and the milliseconds since the loss.
   *
   * @example Say when an agent's sessions move to a new connection
   * ```ts ignore
   * listener.onagentlost = (agent) => console.log(`agent ${agent.peer} lost; holding its sessions`);
   * listener.onagentresume = (agent, was, { path, ms }) =>
   *   console.log(`agent ${was.peer} is back as ${agent.peer} via ${path?.localCandidateType} after ${ms} ms`);
   * ```
   */
  onagentresume?: (
    agent: Agent,
    was: Agent,
    resumed: { path?: ConnectionPath; ms: number },
  ) => void;
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
    checkListenerLimits(options);
    assertToolNames(options.tools, "Cannot create listener");
    this.#options = options;
    this.#keyed = Boolean(options.signalingKey) || keyedHubs.has(options.hub);
    if (options.signalingKey) {
      this.#invites.set({
        name: GUEST_INVITE,
        signalingKey: options.signalingKey,
        expiresAt: options.expiresAt,
      });
    }
    this.#budget = new MemoryBudget(
      "maxUnfinishedBytes",
      options.maxUnfinishedBytes ?? DEFAULT_MAX_UNFINISHED_BYTES,
    );
    this.#unacknowledged = new MemoryBudget(
      "maxUnacknowledgedBytes",
      options.maxUnacknowledgedBytes ?? DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_DESKTOP,
    );
    options.hub.onpeerjoin = (peer) => void this.#accept(peer);
    for (const peer of options.hub.peers) void this.#accept(peer);
    void this.#leaveHello();
  }

  /**
   * Leaves a sealed hello of an invite's key (the ticket's own by default)
   * with a room that keeps them: the invite's next agent gets it with its
   * welcome and sends its offer at once.
   */
  async #leaveHello(name: string = GUEST_INVITE): Promise<void> {
    const hub = this.#options.hub as Partial<Pick<SignalingRoom, "leaveHello">>;
    const key = this.#invites.get(name)?.signalingKey;
    if (this.#closing || this.#hellos.has(name) || typeof hub.leaveHello !== "function" || !key) {
      return;
    }
    try {
      const hello = await AuthenticatedSignaling.prepareHello({ key, role: "host" });
      // Revoked or replaced meanwhile: that key's agents are gone.
      if (
        this.#closing || this.#hellos.has(name) || this.#invites.get(name)?.signalingKey !== key
      ) {
        return;
      }
      if (hub.leaveHello(hello.message, name)) this.#hellos.set(name, { hello, key });
    } catch (error) {
      this.onerror?.(error as Error);
    }
  }

  /**
   * The hello the room was given for the invite's next agent, if this agent
   * took it (with the key it was sealed with): it waits no longer.
   */
  #takeHello(
    peer: string,
    name: string,
  ): LeftHello | undefined {
    const hub = this.#options.hub as Partial<Pick<SignalingRoom, "tookHello">>;
    const waiting = this.#hellos.get(name);
    if (!waiting || hub.tookHello?.(peer) !== true) return undefined;
    this.#hellos.delete(name);
    return waiting;
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
      // A room reopened with its kept records: they hold "guest" unless it
      // was revoked, and then it stays revoked (an empty list included).
      guestTicket = hostTicket === undefined || options.invites === undefined ||
        invites.some((record) => record?.name === GUEST_INVITE),
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
    // A version 2 ticket's room id binds its guest verifier, so its host
    // always shows it, and says with each join whether it serves that guest.
    const paired = host.hostVerifier !== undefined;
    // A kept invite named "guest" is registered below, in place of the ticket's.
    const keptGuest = records.some((record) => record.name === GUEST_INVITE);
    const hub = await SignalingRoom.join(roomUrl(host), {
      ...roomOptions,
      role: "host",
      key: keys.hostKey!,
      // Without the guest ticket, in a version 1 room, the verifier of a key nobody holds.
      guestVerifier: guestTicket || paired ? keys.guestVerifier : await unusableVerifier(),
      ...paired && !guestTicket && !keptGuest && { invitesOnly: true },
    });
    // Every agent of this room opens its hello with a key of the desktop's.
    keyedHubs.add(hub);
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
      listener.#invites.set({
        ...listener.#invites.get(GUEST_INVITE)!,
        ticket: listener.ticket,
      });
    }
    try {
      for (const record of records) {
        if (record.name === GUEST_INVITE && guestTicket) continue;
        await listener.#invites.register(record, hub);
        void listener.#leaveHello(record.name);
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
    await this.#invites.register(await readInviteRecord(record, host), this.#options.hub);
    void this.#leaveHello(name);
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
      const known = this.#invites.names();
      throw new WebRTCTransportError(
        `Cannot revoke invite "${clipName(name)}" as there is no invite of that name: ${
          known.length > 0 ? `the invites are ${known.join(", ")}` : "there are no invites"
        }`,
      );
    }
    const roomDone = this.#invites.revoke(name, this.#options.hub);
    this.#hellos.delete(name);
    // Those held for their return too: they will not be back.
    const agents = [...this.#agents.values(), ...this.#held.values()].filter((agent) =>
      agent.name === name
    );
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
    return this.#invites.list(this.#agents.values());
  }

  /** Ends one agent: its sessions' servers, then its connection. */
  async #closeAgent(agent: Agent): Promise<void> {
    this.#held.delete(agent.connection);
    this.#gates.delete(agent.connection);
    this.#claims.book.forget(agent.connection);
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
        [...this.#agents.values(), ...this.#held.values()].map((agent) => agent.connection.close()),
      );
      await this.#options.hub.close();
    })();
    return this.#closing;
  }

  async #accept(peer: string): Promise<void> {
    if (this.#closing || this.#agents.has(peer)) return;
    // The hello the room handed this agent is taken before anything waits:
    // whatever becomes of the agent, its invite gets a new one.
    const invite = inviteNameOf(this.#options.hub, peer) ?? GUEST_INVITE;
    const taken = this.#takeHello(peer, invite);
    // The next is made once this end has answered the agent (its ICE and DTLS
    // then run natively, and its seal delays nothing of this connect), or once
    // the agent settled otherwise. Each join takes at most one, within the
    // room's limits.
    let left = false;
    const leaveNext = () => {
      if (left) return;
      left = true;
      void this.#leaveHello(invite);
    };
    try {
      await this.#admit(peer, taken, leaveNext);
    } finally {
      leaveNext();
    }
  }

  /**
   * Connects one agent that joined the room, on the hello it took if any;
   * calls `answered` once its first dial's answer is sent.
   */
  async #admit(
    peer: string,
    taken: LeftHello | undefined,
    answered: () => void,
  ): Promise<void> {
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
    if (name === undefined && !invite?.signalingKey && this.#keyed) {
      const refusal =
        `the room names no invite for it, and this desktop serves no guest ticket (revoked, or listen({ guestTicket: false })): it holds no key to open the agent's hello with`;
      this.onerror?.(new WebRTCTransportError(`Refused agent ${peer}: ${refusal}`));
      await refuseAgent(signaling, refusal);
      return;
    }
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
      const hello = taken?.key === invite.signalingKey ? taken.hello : undefined;
      signaling = new AuthenticatedSignaling(signaling, {
        key: invite.signalingKey,
        role: "host",
        ...hello && { hello },
      });
    }
    const ofInvite = [...this.#agents.values()].filter((agent) => agent.name === name).length;
    const refusal = agentRefusal(
      this.#options,
      invite,
      this.#agents.size,
      clockOf(this).now(),
      name === undefined ? 0 : ofInvite,
    );
    if (refusal) {
      this.onerror?.(new WebRTCTransportError(`Refused agent ${peer}: ${refusal}`));
      await refuseAgent(signaling, refusal);
      return;
    }
    const {
      hub: _hub,
      createServer: _create,
      signalingKey: _key,
      expiresAt: _expires,
      maxAgents: _max,
      maxAgentsPerInvite: _perInvite,
      maxSessionsPerAgent = DEFAULT_MAX_SESSIONS_PER_AGENT,
      sessionStartsPerSecond = DEFAULT_SESSION_STARTS_PER_SECOND,
      maxUnfinishedBytesPerAgent = DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
      maxUnfinishedBytes: _desktop,
      maxUnacknowledgedBytesPerAgent = DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT,
      maxUnacknowledgedBytes: _desktopUnacknowledged,
      tools: _tools,
      onaudit: _onaudit,
      resume = true,
      ...rest
    } = options;
    const connection = new WebRTCConnection({
      ...rest,
      resume,
      unfinishedBudget: new MemoryBudget(
        "maxUnfinishedBytesPerAgent",
        maxUnfinishedBytesPerAgent,
        this.#budget,
      ),
      unacknowledgedBudget: new MemoryBudget(
        "maxUnacknowledgedBytesPerAgent",
        maxUnacknowledgedBytesPerAgent,
        this.#unacknowledged,
      ),
      queuedBudget: new MemoryBudget(
        "DEFAULT_MAX_QUEUED_BYTES_PER_AGENT",
        DEFAULT_MAX_QUEUED_BYTES_PER_AGENT,
        this.#queued,
      ),
      iceServers,
      signaling,
      initiator: rest.initiator ?? false,
    });
    connection.onconnectstep = (step) => {
      if (step === "answer") answered();
    };
    const agent: Agent = Object.freeze({
      peer,
      ...(name === undefined ? {} : { name }),
      ...(invite?.tools ? { tools: invite.tools } : {}),
      connection,
    });
    if (resume) shareClaims(connection, this.#claims);
    this.#agents.set(peer, agent);
    let sessions = 0;
    const clock = clockOf(this);
    const gate = new SessionGate({
      peer,
      maxSessions: maxSessionsPerAgent,
      startsPerSecond: sessionStartsPerSecond,
      clock,
      onerror: (error) => this.onerror?.(error),
    });
    this.#gates.set(connection, gate);
    connection.onerror = (error) => this.onerror?.(error);
    connection.onresume = (resumed) => {
      const was = this.#resumedFrom.get(connection);
      this.#resumedFrom.delete(connection);
      if (was) this.onagentresume?.(agent, was, resumed);
    };
    connection.ontransport = (transport) => {
      // With resume, the session's channel took its slot as it arrived.
      if (!resume) {
        const release = gate.admit(transport);
        if (!release) return;
        void transport.closed.then(release);
      }
      void this.#serve(Object.freeze({ agent, peer, session: ++sessions, transport }), transport);
    };
    const left = (error?: Error) => {
      if (this.#agents.get(peer) !== agent) return;
      this.#agents.delete(peer);
      this.onagentleave?.(agent, error);
    };
    connection.ondisconnect = (error) => {
      if (this.#agents.get(peer) === agent && !this.#closing && heldSessions(connection) > 0) {
        const bound = options.maxAgents ?? DEFAULT_MAX_AGENTS;
        if (this.#held.size < bound) {
          // Held for the agent's redial; its sessions' servers go on.
          this.#agents.delete(peer);
          this.#held.set(connection, agent);
          this.onagentlost?.(agent, error);
          return;
        }
        this.onerror?.(
          new WebRTCTransportError(
            `Cannot hold agent ${peer}'s sessions for its return as ${bound} lost agents are held already (maxAgents): its sessions end now`,
          ),
        );
      }
      left(error);
      this.#gates.delete(connection);
      this.#resumedFrom.delete(connection);
      this.#claims.book.forget(connection);
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

  /** The agent of a connection, live or held for its return. */
  #agentOf(connection: WebRTCConnection): Agent | undefined {
    return this.#held.get(connection) ??
      [...this.#agents.values()].find((agent) => agent.connection === connection);
  }

  /** An agent's redial took over the sessions `from` held: `from` is let go. */
  #adopt(from: WebRTCConnection, to: WebRTCConnection): void {
    const was = this.#held.get(from);
    this.#held.delete(from);
    const gate = this.#gates.get(from);
    this.#gates.delete(from);
    if (gate) {
      // The sessions `to` opened before its claim count with those it took over.
      const own = this.#gates.get(to);
      if (own && own !== gate) gate.absorb(own);
      this.#gates.set(to, gate);
    }
    if (was) this.#resumedFrom.set(to, was);
    void from.close();
  }

  /** A held connection's sessions ended (the grace period passed): the agent is gone. */
  #expire(connection: WebRTCConnection): void {
    const agent = this.#held.get(connection);
    if (!agent) return;
    this.#held.delete(connection);
    this.#gates.delete(connection);
    this.#claims.book.forget(connection);
    const grace = this.#options.resumeGrace ?? DEFAULT_RESUME_GRACE;
    this.onagentleave?.(
      agent,
      new WebRTCTransportError(
        `its connection was lost and not back within ${grace} ms (resumeGrace)`,
      ),
    );
    void connection.close();
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
}
