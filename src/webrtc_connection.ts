/**
 * One peer connection that carries any number of MCP sessions, each on a data
 * channel of its own labelled `mcp`: {@linkcode WebRTCConnection} owns the
 * peer connection, its liveness (`_liveness.ts`) and its sessions
 * (`_channel_session.ts`).
 *
 * Longer than 400 lines because the connection's lifecycle is one state
 * machine (dial or answer, hand channels to sessions, linger, lose the peer,
 * claim its sessions on a new one, dial again, close) whose steps read each
 * other's state; a third of it is the documentation of its options and
 * callbacks. The claim's messages and keys live in `_resume_claim.ts`.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { type Clock, clockOf, SYSTEM_CLOCK } from "./_clock.ts";
import {
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  DEFAULT_CONNECT_TIMEOUT,
  DEFAULT_CONNECTION_LINGER,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_MAX_QUEUED_BYTES_PER_AGENT,
  DEFAULT_MAX_RECEIVE_SIZE,
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES,
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
  FALLBACK_MAX_MESSAGE_SIZE,
  INCOMING_CHANNEL_OPEN_TIMEOUT,
} from "./constants.ts";
import type { DataChannelLike, DataChannelTransportOptions } from "./data_channel_transport.ts";
import { WebRTCTransportError } from "./errors.ts";
import { MemoryBudget } from "./framing.ts";
import {
  type ConnectionPath,
  type ConnectStep,
  type IceServer,
  type PeerConnectionConstructor,
  readMaxMessageSize,
} from "./peer.ts";
import { PathPeer } from "./peer.ts";
import { PathWatch } from "./_path_watch.ts";
import { Liveness } from "./_liveness.ts";
import { SendScheduler } from "./_send_scheduler.ts";
import { type ChannelOrigin, ChannelSession, type SessionHost } from "./_channel_session.ts";
import type { Signaling } from "./signaling/signaling.ts";
import { ResumableSession } from "./_resumable_session.ts";
import {
  DEFAULT_RESUME_GRACE,
  RESUME_BACKOFF_FIRST,
  RESUME_BACKOFF_MAX,
  RESUME_DIAL_TIMEOUT,
  RESUME_IDLE_TIMEOUT,
} from "./constants.ts";
import {
  askOnChannel,
  CLAIM_LABEL,
  ClaimBook,
  claimProbes,
  type Grant,
  makeClaim,
  readControl,
  readGrant,
  sealKeyOf,
  sealSalt,
} from "./_resume_claim.ts";

/** Reads a connection's suspended sessions (set by the class's static block). */
let suspendedOf: (connection: WebRTCConnection) => number;

/**
 * An MCP session on a {@linkcode WebRTCConnection}: a `Transport` on a data
 * channel of its own. Closing it closes its channel only.
 */
export interface WebRTCSessionTransport extends Transport {
  /** The connection that carries this session. */
  readonly connection: WebRTCConnection;
  /**
   * Resolves once the session has closed, however it ended: closed by either
   * side, its channel closed before it opened, or its connection lost. Unlike
   * `onclose`, it tells a late listener too.
   */
  readonly closed: Promise<void>;
}

/** Options of `WebRTCClientTransport` and `WebRTCServerTransport`. */
export interface WebRTCTransportOptions {
  /** How offer, answer and candidates reach the other peer; the transport owns it. */
  signaling: Signaling;
  /**
   * STUN and TURN servers. Pass `[]` for peers on one host or LAN. When not
   * given: the servers the signalling hands out (a room whose worker mints
   * TURN credentials, asked as the connection starts), else one public STUN
   * server.
   *
   * @default {[{ urls: "stun:stun.cloudflare.com:3478" }]}
   */
  iceServers?: IceServer[];
  /**
   * More `RTCConfiguration` fields, passed to the `RTCPeerConnection` as they
   * are: `iceTransportPolicy: "relay"`, or node-datachannel's own such as
   * `bindAddress`, `portRangeBegin`/`portRangeEnd` and `mtu` (the largest
   * packet sent; 4000 when `bindAddress` is a loopback address, where it is
   * about twice as fast, else libdatachannel's 1280, which fits every path).
   *
   * @default {{}}
   */
  rtcConfiguration?: Record<string, unknown>;
  /**
   * The `RTCPeerConnection` implementation. By default the runtime's own
   * (browsers), else node-datachannel's W3C polyfill (Deno, Node).
   *
   * @default {globalThis.RTCPeerConnection}
   */
  RTCPeerConnection?: PeerConnectionConstructor;
  /**
   * Milliseconds to establish the connection before failing with a
   * `ConnectError` naming the stage that did not complete. It counts from
   * when signalling has started (waiting for the other peer to be in its room
   * is bounded by the signalling, e.g. its `hostTimeout`), and for an
   * answering server from its client's first message, so a server can wait
   * for its client indefinitely.
   *
   * @default {15000}
   */
  connectTimeout?: number;
  /**
   * The largest message accepted from the peer, in bytes; a larger one is
   * dropped with a `MessageSizeError` and the session goes on.
   *
   * @default {67108864}
   */
  maxReceiveSize?: number;
  /**
   * Whether this side creates the data channel and the offer. By default the
   * client does; set it on the server (and unset it on the client) to talk to
   * peers where the server offers, as in the reference implementations.
   *
   * @default {true for the client, false for the server}
   */
  initiator?: boolean;
  /**
   * When the connection moves to the relay through the signalling room (see
   * the relay path in docs/API.md): the milliseconds the dialling side waits after
   * the answer came for ICE to find a path; `0` relays at once, `false` never. The
   * relay needs authenticated signalling through a room (a ticket's); a
   * runtime without `RTCPeerConnection` always relays.
   *
   * @default {3000}
   */
  relayAfter?: number | false;
  /**
   * Milliseconds between keepalives; `0` turns keepalives off.
   *
   * @default {1000}
   */
  keepaliveInterval?: number;
  /**
   * Milliseconds of silence from the peer after which it is taken as gone.
   *
   * @default {8000, or 3000 on a WebRTCConnection with `resume` on}
   */
  idleTimeout?: number;
}

/** Options of {@linkcode WebRTCConnection}. */
export interface WebRTCConnectionOptions extends Omit<WebRTCTransportOptions, "signaling"> {
  /**
   * How offer, answer and candidates reach the other peer. A function is
   * called for each dial, so a connection that dropped can be dialled again
   * when the next session opens; a `Signaling` object serves one dial only.
   */
  signaling: Signaling | (() => Signaling | Promise<Signaling>);
  /**
   * Milliseconds the connection stays up after its last session closed, so
   * that the next session opens at once; `0` closes it with the last session.
   * Only the side that opens sessions lingers; the serving side leaves the
   * connection to it.
   *
   * @default {30000}
   */
  linger?: number;
  /**
   * The budget that the other peer's unfinished chunked messages, on all
   * sessions of this connection, reserve their bytes from before they are
   * kept; it may sit inside a larger one (a {@linkcode WebRTCListener} gives
   * each agent a budget inside the desktop's). A message that does not fit
   * is dropped, and the request it carried gets a JSON-RPC error naming the
   * budget; the session goes on.
   *
   * @default {new MemoryBudget("unfinishedBudget", DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT)} (128 MiB)
   */
  unfinishedBudget?: MemoryBudget;
  /**
   * The budget that what this connection's resumable sessions keep until the
   * other peer acknowledges it (to send again after a network change)
   * reserves its bytes from, each session within a budget of its own of
   * `DEFAULT_MAX_UNACKNOWLEDGED_BYTES`; it may sit inside a larger one (a
   * {@linkcode WebRTCListener} gives each agent a budget inside the
   * desktop's). The other peer decides when it acknowledges: a message that
   * does not fit ends its session with an error naming the budget.
   *
   * @default {new MemoryBudget("unacknowledgedBudget", DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT)} (256 MiB)
   */
  unacknowledgedBudget?: MemoryBudget;
  /**
   * The budget that its sessions' messages reserve their size from while
   * they wait to be written behind others (each session within
   * `DEFAULT_MAX_QUEUED_BYTES`); it may sit inside a larger one (a
   * {@linkcode WebRTCListener} gives each agent one inside the desktop's).
   * Apart from `unacknowledgedBudget`, which keeps the same messages of a
   * resumable session. A send that does not fit, and every one after it, is
   * refused naming the budget, and its session ends.
   *
   * @default {new MemoryBudget("queuedBudget", DEFAULT_MAX_QUEUED_BYTES_PER_AGENT)} (256 MiB)
   */
  queuedBudget?: MemoryBudget;
  /**
   * Milliseconds a chunked message from the other peer may go without a new
   * chunk before it is dropped and its session closed (see
   * `DataChannelTransportOptions.unfinishedMessageTimeout`).
   *
   * @default {10000}
   */
  unfinishedMessageTimeout?: number;
  /**
   * Whether sessions outlive a lost peer connection: the dialling side dials
   * again (with backoff) and each session continues on a new channel, its
   * messages in flight sent again; the serving side keeps them, and answers
   * again, for `resumeGrace`. On by default where `signaling` is a function
   * (a new signalling per dial, so the connection can dial or answer again);
   * a single `Signaling` serves one dial, so its sessions end with the peer
   * connection. A peer that does not speak it (the reference
   * implementations, browsers running other code) gets plain sessions. A
   * redial claims the lost connection's sessions with a secret the serving
   * side gave inside the lost connection, bound to the new connection's
   * certificate fingerprints; a refused claim ends the sessions with an
   * error that says why.
   *
   * @default {true when `signaling` is a function, else false}
   */
  resume?: boolean;
  /**
   * Milliseconds a lost connection's sessions are kept for a resume.
   *
   * @default {120000}
   */
  resumeGrace?: number;
}

/**
 * One WebRTC peer connection carrying many MCP sessions: one data channel
 * (label `mcp`) per session, and one session's failure (a closed server, a
 * malformed frame, a message over the receive cap) stays its own. The
 * sessions share the connection's SCTP association, which sends first in,
 * first out: while more than one session is open, their large messages keep
 * at most `SHARED_HIGH_WATER_MARK` (256 KiB) buffered in it together, taking
 * turns one 64 KiB chunk each (a lone session fills it to 4 MiB, as a lone
 * channel does); and while another session sent or received a message in the
 * last 100 ms, a session's large messages keep at most `FAIR_WINDOW` (128 KiB)
 * handed and not yet reported read by the other peer, so a small message of
 * one session waits behind at most that much of the others' (with a peer of
 * another version, which does not report, behind what the SCTP stack buffers
 * too, about 1 MiB). Keepalives, the idle timeout and the network path belong
 * to the connection.
 *
 * The side that opens sessions (an agent) calls
 * {@linkcode WebRTCConnection.openTransport} for each; the first one dials,
 * later ones open a channel on the connection at once (no ICE, no DTLS). A
 * connection that dropped is dialled again when the next session starts. The
 * side that serves sessions (a desktop) sets
 * {@linkcode WebRTCConnection.ontransport} before connecting and gets a
 * transport per session the other side opens; {@linkcode WebRTCListener} does
 * that for a room of agents. Either side may make the offer (`initiator`): the
 * channel negotiated with the connection is the first session's.
 *
 * A peer that knows only one session (the reference implementations) sees
 * exactly one `mcp` channel, as with {@linkcode WebRTCClientTransport}.
 *
 * @example Two sessions on one connection
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { MemorySignaling, WebRTCConnection } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * // Peers on one machine: no STUN, loopback only.
 * const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
 * const [a, b] = MemorySignaling.createPair();
 * const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...local });
 * desktop.ontransport = (transport) =>
 *   void new McpServer({ name: "desktop", version: "1.0.0" }).connect(transport);
 * void desktop.connect();
 * const agent = new WebRTCConnection({ signaling: a, linger: 0, ...local });
 * const one = new Client({ name: "one", version: "1.0.0" });
 * const two = new Client({ name: "two", version: "1.0.0" });
 * await one.connect(agent.openTransport());
 * await two.connect(agent.openTransport());
 * assert.equal(agent.sessions, 2);
 * await one.close();
 * await two.close();
 * await agent.close();
 * await desktop.close();
 * ```
 */
export class WebRTCConnection {
  readonly #options: WebRTCConnectionOptions;
  readonly #initiator: boolean;
  readonly #resume: boolean;
  readonly #linger: number;
  readonly #budget: MemoryBudget;
  /** The peer connections whose claim channel came: one is answered per dial. */
  readonly #claimAsked = new WeakSet<PathPeer>();
  /** What this connection's resumable sessions keep until acknowledged: their budgets' scope. */
  readonly #unacknowledged: MemoryBudget;
  /**
   * What its sessions' messages hold while they wait to be written: apart
   * from the above, as a resumable session's waiting message is also kept.
   */
  readonly #queued: MemoryBudget;
  readonly #sessions = new Set<ChannelSession<WebRTCConnection>>();
  /** What the sessions reach of this connection. */
  readonly #host: SessionHost<WebRTCConnection>;
  #peer?: PathPeer;
  #dialing?: Promise<PathPeer>;
  /** The peer of the dial under way, so that closing can abort it. */
  #connecting?: PathPeer;
  /** The channel negotiated with the connection, not yet given to a session. */
  #spare?: { channel: DataChannelLike; origin: ChannelOrigin };
  #dials = 0;
  #lingerTimer?: { clock: Clock; id: unknown };
  #liveness?: Liveness;
  #pathWatch?: PathWatch;
  #closed = false;
  #closing?: Promise<void>;
  /** Resumable sessions, by id, and those waiting for a new channel. */
  readonly #resumable = new Map<string, ResumableSession>();
  readonly #suspended = new Set<ResumableSession>();
  /** The serving side's grants, when no listener shares its own. */
  #book?: ClaimBook<WebRTCConnection>;
  #graceTimer?: unknown;
  #redialing = false;
  #answering = false;
  /** The wait before the next redial, which closing ends. */
  #backoff?: { id: unknown; resolve: () => void };
  /** When the peer connection was last lost, and why (for a resume's events). */
  #lostAt = 0;
  #lossError?: Error;
  /** The dialling side: the grant its next claim is made with. */
  #grant?: Grant;
  /** The dialling side: how the claim (or hello) of the peer of now went. */
  #claimOutcome?: Promise<ClaimOutcome>;
  /** The serving side: the peer whose claim was accepted, on which held sessions resume. */
  #claimed?: PathPeer;
  /**
   * The peer being let go (its sessions closed, its goodbye handed to
   * signalling, its connection released), until it is: closing waits for it.
   */
  #releasing?: Promise<void>;

  /**
   * Makes this the serving side: called for each session the other side
   * opens. Set it before `connect()`.
   */
  ontransport?: (transport: WebRTCSessionTransport) => void;
  /** Called once per step of each dial (`signaling`, `offer`, … `channel`). */
  onconnectstep?: (step: ConnectStep) => void;
  /** Called for a refused signalling message or a failed dial; the connection goes on. */
  onerror?: (error: Error) => void;
  /**
   * Called when the peer connection drops or is closed (its sessions close
   * first). The dialling side dials again for the next session; the
   * connection object stays usable until `close()`.
   */
  ondisconnect?: (error?: Error) => void;
  /** Called once, when `close()` has closed the connection for good. */
  onclose?: () => void;
  /**
   * Called when the peer connection was lost and its sessions are held for a
   * resume (`resume`): the dialling side dials again, the serving side waits
   * for that, each for `resumeGrace`.
   *
   * @example Say what happens to the sessions of a lost connection
   * ```ts no-assert
   * import { MemorySignaling, WebRTCConnection } from "@mcp/webrtc";
   *
   * const connection = new WebRTCConnection({
   *   signaling: () => MemorySignaling.createPair()[0],
   * });
   * connection.onpathlost = (error) => console.log(`path lost (${error.message}), resuming`);
   * connection.onresumeattempt = (attempt) => console.log(`dialling again (attempt ${attempt})`);
   * connection.onresume = ({ path, ms }) =>
   *   console.log(`resumed via ${path?.localCandidateType} after ${ms} ms`);
   * connection.onresumefail = (error) => console.log(`sessions ended: ${error.message}`);
   * await connection.close();
   * ```
   */
  onpathlost?: (error: Error) => void;
  /**
   * The dialling side: called before each redial of a resume, with its number
   * from 1 and why the redial before it failed (none before the first).
   */
  onresumeattempt?: (attempt: number, previous?: Error) => void;
  /**
   * Called once the held sessions continue on a new peer connection: its
   * path (as {@linkcode getConnectionPath} gives it) and the milliseconds
   * since the loss.
   */
  onresume?: (resumed: { path?: ConnectionPath; ms: number }) => void;
  /**
   * Called when the held sessions cannot resume (the other side refused the
   * claim, or `resumeGrace` passed); they end with this error.
   */
  onresumefail?: (error: Error) => void;
  /**
   * Called with the network path (as {@linkcode getConnectionPath} gives it)
   * once it is known after each dial, and again each time ICE moves to
   * another candidate pair: libjuice may leave a TURN pair for a direct one a
   * few hundred ms after the channel opened. Read every `PATH_CHECK_INTERVAL`
   * (500 ms) while set and the connection is up.
   *
   * @example Say which path the connection takes, and each move
   * ```ts no-assert
   * import { MemorySignaling, WebRTCConnection } from "@mcp/webrtc";
   *
   * const [signaling] = MemorySignaling.createPair();
   * const connection = new WebRTCConnection({ signaling });
   * connection.onpathchange = (path) =>
   *   console.log(`now via ${path.localCandidateType} to ${path.remoteCandidateType}`);
   * await connection.close();
   * ```
   */
  onpathchange?: (path: ConnectionPath) => void;

  /**
   * @param options Signalling (or a function making one per dial), ICE servers and limits.
   * @throws {TypeError} If `options.signaling` is neither a Signaling nor a function, or
   * `unfinishedBudget` is not a `MemoryBudget`.
   * @throws {RangeError} If `linger`, `connectTimeout`, `unfinishedMessageTimeout`,
   * `keepaliveInterval`, `idleTimeout` or `resumeGrace` is out of range.
   */
  constructor(options: WebRTCConnectionOptions) {
    const signaling = options?.signaling;
    if (
      typeof signaling !== "function" &&
      typeof (signaling as Signaling | undefined)?.send !== "function"
    ) {
      throw new TypeError(
        "Cannot create WebRTC connection as 'options.signaling' is not a Signaling or a function returning one: pass { signaling: () => new TicketSignaling(ticket) }",
      );
    }
    const linger = options.linger ?? DEFAULT_CONNECTION_LINGER;
    if (!Number.isSafeInteger(linger) || linger < 0) {
      throw new RangeError(
        `Cannot create WebRTC connection as 'linger' must be a non-negative integer: received ${linger}`,
      );
    }
    const timeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    if (!Number.isSafeInteger(timeout) || timeout < 1) {
      throw new RangeError(
        `Cannot create WebRTC connection as 'connectTimeout' must be a positive integer: received ${timeout}`,
      );
    }
    const stall = options.unfinishedMessageTimeout ?? DEFAULT_UNFINISHED_MESSAGE_TIMEOUT;
    if (!Number.isSafeInteger(stall) || stall < 1) {
      throw new RangeError(
        `Cannot create WebRTC connection as 'unfinishedMessageTimeout' must be a positive integer of milliseconds: received ${stall}`,
      );
    }
    for (
      const [name, value, min] of [
        ["keepaliveInterval", options.keepaliveInterval ?? DEFAULT_KEEPALIVE_INTERVAL, 0],
        ["idleTimeout", options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT, 1],
        ["resumeGrace", options.resumeGrace ?? DEFAULT_RESUME_GRACE, 1],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value < min) {
        throw new RangeError(
          `Cannot create WebRTC connection as '${name}' must be an integer of at least ${min} (milliseconds): received ${value}`,
        );
      }
    }
    const budget = options.unfinishedBudget;
    for (const name of ["unfinishedBudget", "unacknowledgedBudget", "queuedBudget"] as const) {
      const given = options[name];
      if (given !== undefined && !(given instanceof MemoryBudget)) {
        throw new TypeError(
          `Cannot create WebRTC connection as '${name}' is not a MemoryBudget: pass new MemoryBudget(name, bytes) from @mcp/webrtc/framing, or leave it out for the default`,
        );
      }
    }
    this.#options = options;
    this.#initiator = options.initiator ?? true;
    // Resuming needs a way to dial (or answer) again: a signalling per dial.
    this.#resume = options.resume ?? typeof signaling === "function";
    this.#linger = linger;
    this.#budget = budget ??
      new MemoryBudget("unfinishedBudget", DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT);
    this.#unacknowledged = options.unacknowledgedBudget ??
      new MemoryBudget("unacknowledgedBudget", DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT);
    this.#queued = options.queuedBudget ??
      new MemoryBudget("queuedBudget", DEFAULT_MAX_QUEUED_BYTES_PER_AGENT);
    this.#host = {
      connection: this,
      attach: (session) => this.#attach(session),
      detach: (session) => this.#detach(session),
      channelOptions: (origin) => this.#channelOptions(origin),
      clock: () => clockOf(this),
      scheduler: new SendScheduler(() => clockOf(this).now()),
    };
  }

  /** Whether the peer connection is up now. */
  get connected(): boolean {
    return this.#peer !== undefined && !this.#closed;
  }

  /** The sessions open now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** How many times the connection was dialled (or answered). */
  get dials(): number {
    return this.#dials;
  }

  /**
   * Establishes the peer connection if it is not up (sessions do this
   * themselves; call it to connect ahead of the first session, or, on the
   * answering side, to start waiting for the other peer).
   *
   * @throws {ConnectError} If the connection cannot be established; it says which stage failed.
   * @throws {WebRTCTransportError} If the connection is closed, or cannot be dialled again.
   */
  async connect(): Promise<void> {
    await this.#connect();
  }

  /**
   * A new MCP session on this connection: a not yet started `Transport`
   * (`Client.connect()` starts it). Its `start()` dials the connection if it
   * is not up, then opens a channel of its own.
   *
   * @returns The session's transport.
   * @throws {WebRTCTransportError} If the connection is closed.
   */
  openTransport(): WebRTCSessionTransport {
    if (this.#closed) {
      throw new WebRTCTransportError(
        "Cannot open a session as the WebRTC connection is closed: create a new one",
      );
    }
    if (this.#resume) return this.#resumableSession();
    return new ChannelSession(this.#host, () => this.#openChannel());
  }

  /**
   * The network path the connection uses, once connected: `host`, `srflx`,
   * `prflx` or `relay` (TURN) at each end (the path is through TURN when
   * either end is `relay`), or `relay-ws` at both ends when the connection
   * runs over the relay through the signalling room. See
   * {@linkcode onpathchange} for its changes.
   *
   * @example Tell how the connection runs
   * ```ts ignore
   * const path = await connection.getConnectionPath();
   * console.log(`connected via ${path?.localCandidateType} to ${path?.remoteCandidateType}`);
   * ```
   */
  async getConnectionPath(): Promise<ConnectionPath | undefined> {
    if (this.#closed) return undefined;
    // The dial's peer from its `channel` step on, before the dial returns.
    return await (this.#peer ?? this.#connecting)?.path();
  }

  /**
   * Closes every session and the peer connection, and tells the other peer.
   * Idempotent; `onclose` fires once.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= Promise.resolve().then(async () => {
      try {
        this.#stopLinger();
        this.#stopGrace();
        if (this.#backoff) {
          clockOf(this).clearTimeout(this.#backoff.id);
          this.#backoff.resolve();
        }
        await Promise.allSettled([...this.#resumable.values()].map((session) => session.close()));
        await this.#disconnect("closed");
        // A peer lost just before (the other peer's goodbye, say) may still be
        // saying its own goodbye: whoever closes the signalling next waits for it.
        await this.#releasing;
      } finally {
        this.onclose?.();
      }
    });
    return this.#closing;
  }

  #connect(): Promise<PathPeer> {
    if (this.#closed) {
      return Promise.reject(
        new WebRTCTransportError("Cannot connect as the WebRTC connection is closed"),
      );
    }
    if (this.#peer) return Promise.resolve(this.#peer);
    this.#dialing ??= this.#dial().finally(() => (this.#dialing = undefined));
    return this.#dialing;
  }

  async #dial(): Promise<PathPeer> {
    const options = this.#options;
    let signaling: Signaling;
    if (typeof options.signaling === "function") signaling = await options.signaling();
    else if (this.#dials === 0) signaling = options.signaling;
    else {
      throw new WebRTCTransportError(
        "Cannot dial the peer again as the connection was given one Signaling, which serves one dial: pass a function that makes a new Signaling for each dial",
      );
    }
    this.#dials++;
    const liveness = new Liveness({
      interval: options.keepaliveInterval ?? DEFAULT_KEEPALIVE_INTERVAL,
      // With resume on, a false alarm costs only a redial.
      idleTimeout: options.idleTimeout ??
        (options.resume ? RESUME_IDLE_TIMEOUT : DEFAULT_IDLE_TIMEOUT),
      speaks: false,
      channels: () => this.#channels(),
      lost: (error) => void this.#lost(peer, error),
      clock: clockOf(this),
    });
    const peer: PathPeer = new PathPeer({
      signaling,
      relayAfter: options.relayAfter,
      initiator: this.#initiator,
      iceServers: options.iceServers,
      rtcConfiguration: options.rtcConfiguration ?? {},
      RTCPeerConnection: options.RTCPeerConnection,
      connectTimeout: this.#redialing
        ? Math.min(options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT, RESUME_DIAL_TIMEOUT)
        : options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
      waitForPeer: this.ontransport !== undefined,
      onstep: (step) => this.onconnectstep?.(step),
      // The negotiated channel, whichever side made it: the serving side
      // takes it at once (before any frame can arrive), the other side keeps
      // it for its first session.
      onchannel: (channel, speaks) => {
        liveness.watch(channel, speaks);
        const origin = { incoming: !this.#initiator, speaks };
        if (this.ontransport) this.#accept(channel, origin);
        else this.#spare = { channel, origin };
      },
    });
    peer.onerror = (error) => this.onerror?.(error);
    peer.ondatachannel = (channel) => {
      if (channel.label === CLAIM_LABEL) return void this.#answerClaim(peer, signaling, channel);
      const speaks = (channel as { protocol?: string }).protocol === CHANNEL_PROTOCOL;
      liveness.watch(channel, speaks);
      if (this.ontransport) this.#accept(channel, { incoming: true, speaks });
      else channel.close();
    };
    peer.onclose = (error) =>
      void this.#lost(
        peer,
        error ?? new WebRTCTransportError("The connection to the peer was lost: the peer left"),
      );
    try {
      this.#connecting = peer;
      await peer.connect();
    } catch (error) {
      this.#spare = undefined;
      // A view's own start() reports its failed dial.
      if (!this.#closed && !owners.has(this)) this.onerror?.(error as Error);
      throw error;
    } finally {
      this.#connecting = undefined;
    }
    if (this.#closed) {
      await peer.close();
      throw new WebRTCTransportError("Cannot connect as the WebRTC connection was closed");
    }
    this.#peer = peer;
    this.#liveness = liveness;
    liveness.start();
    this.#pathWatch = new PathWatch(
      () => peer.path(),
      () => this.onpathchange,
      (error) => this.onerror?.(error),
    );
    this.#pathWatch.start();
    this.#claimOutcome = this.#resume && !this.ontransport && peer.ours
      ? this.#claim(peer, signaling)
      : undefined;
    return peer;
  }

  /**
   * The dialling side, once a peer is up: opens the control channel and sends
   * a claim (when sessions wait to resume and a grant is held) or a hello;
   * keeps the grant the answer brings. Never rejects.
   */
  async #claim(peer: PathPeer, signaling: Signaling): Promise<ClaimOutcome> {
    const withheld = claimProbes.get(this)?.withhold === true;
    const grant = this.#suspended.size > 0 && !withheld ? this.#grant : undefined;
    const refused = (reason: string) =>
      new WebRTCTransportError(
        `Cannot resume the session as the other peer refused the claim of its connection (${
          JSON.stringify(reason.slice(0, 200))
        }): open a new session`,
      );
    const ends = peer.ends();
    if (!ends) return grant ? refused("this connection's ends are unknown") : "none";
    let message: Record<string, unknown> = { t: "hello" };
    if (grant) {
      const probe = claimProbes.get(this);
      let claim = await makeClaim(
        grant,
        { dialling: ends.local, serving: ends.remote },
        await sealSalt(sealKeyOf(signaling)),
      );
      probe?.claims.push(claim);
      if (probe?.forge) claim = await probe.forge(claim, grant);
      message = { t: "claim", ...claim };
    }
    let answer: Record<string, unknown> | undefined;
    try {
      answer = await askOnChannel(
        peer.createChannel(CLAIM_LABEL),
        message,
        clockOf(this),
        this.#options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
      );
    } catch {
      answer = undefined;
    }
    const granted = answer && (answer.t === "grant" || answer.t === "accepted")
      ? readGrant(answer)
      : undefined;
    if (granted) {
      this.#grant = granted;
      const probe = claimProbes.get(this);
      probe?.grants.push(granted);
      probe?.ongrant?.();
    }
    if (!grant) return "none";
    if (answer?.t === "accepted" && granted) return "accepted";
    if (answer?.t === "refused") {
      this.#grant = undefined;
      return refused(typeof answer.reason === "string" ? answer.reason : "no reason given");
    }
    // No answer: the path may have gone again; the next dial claims again.
    return "unanswered";
  }

  /** The serving side: answers a hello with a grant, a claim with its verdict. */
  #answerClaim(peer: PathPeer, signaling: Signaling, channel: DataChannelLike): void {
    if (!this.#resume || !this.ontransport) return void channel.close();
    // A dial asks once: another channel of the same peer connection is not
    // answered (each refused claim costs a key derivation and a check).
    if (this.#claimAsked.has(peer)) return void channel.close();
    this.#claimAsked.add(peer);
    const clock = clockOf(this);
    const silent = clock.setTimeout(() => channel.close(), INCOMING_CHANNEL_OPEN_TIMEOUT);
    channel.addEventListener("close", () => clock.clearTimeout(silent));
    const scope = claimScopes.get(this);
    const book = scope?.book ?? (this.#book ??= new ClaimBook());
    const reply = (answer: Record<string, unknown>) => {
      try {
        channel.send(JSON.stringify(answer));
      } catch {
        // The channel closed: the other side asks again on its next dial.
      }
    };
    let asked = false;
    channel.addEventListener("message", (event) => {
      clock.clearTimeout(silent);
      if (asked) return void channel.close();
      asked = true;
      void (async () => {
        const message = readControl((event as MessageEvent).data);
        const current = () => peer === (this.#peer ?? this.#connecting) && !this.#closed;
        if (message?.t === "hello") {
          if (current()) reply({ t: "grant", ...book.grant(this) });
          return;
        }
        if (message?.t !== "claim") return void channel.close();
        const ends = peer.ends();
        const verdict = ends
          ? await book.redeem(
            message,
            { dialling: ends.remote, serving: ends.local },
            await sealSalt(sealKeyOf(signaling)),
          )
          : { refused: "this connection's ends are unknown" };
        if ("refused" in verdict) {
          this.onerror?.(
            new WebRTCTransportError(`Refused a claim to resume sessions: ${verdict.refused}`),
          );
          return reply({ t: "refused", reason: verdict.refused });
        }
        if (!current()) return;
        const lostAt = verdict.holder.#lostAt;
        const over = verdict.holder === this ? undefined : scope?.mayAdopt?.(verdict.holder, this);
        if (over) {
          this.onerror?.(new WebRTCTransportError(`Refused a claim to resume sessions: ${over}`));
          // The agent ends the sessions of a refused claim: they end here too.
          void verdict.holder.close();
          return reply({ t: "refused", reason: over });
        }
        if (verdict.holder !== this) {
          this.#adoptFrom(verdict.holder);
          scope?.adopt?.(verdict.holder, this);
        }
        this.#claimed = peer;
        reply({ t: "accepted", ...book.grant(this) });
        const ms = clockOf(this).now() - lostAt;
        this.onresume?.({ path: await peer.path().catch(() => undefined), ms });
      })();
    });
  }

  /** The dialling side's channel for a new session: the negotiated one, or a new one. */
  async #openChannel(): Promise<{ channel: DataChannelLike; origin: ChannelOrigin }> {
    this.#stopLinger();
    const peer = await this.#connect();
    const spare = this.#spare;
    this.#spare = undefined;
    const state = spare?.channel.readyState;
    if (spare && state !== "closing" && state !== "closed") return spare;
    const channel = peer.createChannel(CHANNEL_LABEL);
    // Ours: its sub-protocol is the one we announce, and says nothing of the other peer.
    this.#liveness?.watch(channel, false);
    return { channel, origin: { incoming: false, speaks: false } };
  }

  /** The answering side: a session for a channel the other side opened. */
  #accept(channel: DataChannelLike, origin: ChannelOrigin): void {
    const session = new ChannelSession(this.#host);
    // Listen at once: frames may arrive before the owner starts the transport.
    session.bind(channel, origin);
    if (this.#resume) {
      // Held as it arrives, in a bound of its own: the first message, which
      // says whether it starts or resumes a session, may never come.
      const hold = claimScopes.get(this)?.hold;
      const release = hold ? hold(this, session) : () => {};
      if (!release) return;
      session.start().catch((error) => {
        // A plain session's server would have said so as it failed to start.
        if (!this.#closed && String(error?.message).includes("(INCOMING_CHANNEL_OPEN_TIMEOUT)")) {
          this.onerror?.(error);
        }
      });
      return void this.#acceptResumable(session, channel, release);
    }
    try {
      if (this.ontransport) this.ontransport(session);
      else void session.close();
    } catch (error) {
      this.onerror?.(error as Error);
      void session.close();
    }
  }

  /** Registers a session once it has its channel. */
  #attach(session: ChannelSession<WebRTCConnection>): void {
    this.#sessions.add(session);
    this.#stopLinger();
  }

  /** A session closed: with the last one gone, the dialling side lingers, then closes. */
  #detach(session: ChannelSession<WebRTCConnection>): void {
    if (!this.#sessions.delete(session) || this.#sessions.size > 0) return;
    // The serving side keeps the connection for the other side to close.
    if (this.ontransport || this.#closed || !this.#peer) return;
    const peer = this.#peer;
    const end = () => {
      if (this.#sessions.size === 0 && this.#peer === peer) void this.#disconnect("no sessions");
    };
    if (this.#linger === 0) end();
    else {
      const clock = clockOf(this);
      const id = clock.setTimeout(end, this.#linger);
      this.#lingerTimer = { clock, id };
      // A lingering connection must not keep a process alive by itself.
      if (clock === SYSTEM_CLOCK) {
        const deno = (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno;
        if (deno) deno.unrefTimer(id as number);
        else (id as { unref?: () => void }).unref?.();
      }
    }
  }

  #stopLinger(): void {
    if (this.#lingerTimer) this.#lingerTimer.clock.clearTimeout(this.#lingerTimer.id);
    this.#lingerTimer = undefined;
  }

  /** Every channel of the connection: its sessions', and the negotiated one not yet taken. */
  #channels(): DataChannelLike[] {
    const channels: DataChannelLike[] = [];
    for (const session of this.#sessions) if (session.channel) channels.push(session.channel);
    if (this.#spare) channels.push(this.#spare.channel);
    return channels;
  }

  /** The framing options of a session on a channel of this origin, on the peer of now. */
  #channelOptions(origin: ChannelOrigin): DataChannelTransportOptions {
    const options = this.#options;
    const peer = this.#peer ?? this.#connecting;
    return {
      maxMessageSize: () => {
        const pc = peer?.connection;
        // The relay's frames take the same 64 KiB.
        return pc ? readMaxMessageSize(pc) : FALLBACK_MAX_MESSAGE_SIZE;
      },
      // Read once the channel is open: the offerer learns it from the answer.
      chunks: () => origin.speaks || peer?.ours === true,
      maxReceiveSize: options.maxReceiveSize ?? DEFAULT_MAX_RECEIVE_SIZE,
      budget: this.#budget,
      queueBudget: new MemoryBudget("maxQueuedBytes", DEFAULT_MAX_QUEUED_BYTES, this.#queued),
      unfinishedMessageTimeout: options.unfinishedMessageTimeout ??
        DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
      // Liveness is the connection's: the session's channel carries no keepalives of its own.
      keepaliveInterval: 0,
    };
  }

  /** The opening side's resumable session: its channel is a session of the connection of now. */
  #resumableSession(): WebRTCSessionTransport {
    const open = async () => {
      const inner = new ChannelSession(this.#host, () => this.#openChannel());
      await inner.start();
      return inner;
    };
    const session = new ResumableSession(undefined, {
      open,
      clock: clockOf(this),
      budget: this.#sessionBudget(),
    });
    this.#track(session, open);
    return Object.assign(session, { connection: this });
  }

  /**
   * The serving side: a channel's first message says which session it
   * carries. `release` lets the channel's hold go once it has said; a
   * session it starts then takes a slot of its own (`ClaimScope.admit`).
   */
  async #acceptResumable(
    inner: ChannelSession<WebRTCConnection>,
    channel: DataChannelLike,
    release: () => void,
  ): Promise<void> {
    const peer = this.#peer ?? this.#connecting;
    // Its opener says at once what the channel carries (MCP, or a session to
    // start or resume); one that says nothing gives its slot back.
    const clock = clockOf(this);
    const silent = clock.setTimeout(() => {
      if (this.#closed) return;
      this.onerror?.(
        new WebRTCTransportError(
          `Closed a channel the other peer opened as nothing came on it within ${INCOMING_CHANNEL_OPEN_TIMEOUT} ms (INCOMING_CHANNEL_OPEN_TIMEOUT): the other peer closed it, or does not use it; it may open a new session`,
        ),
      );
      void inner.close();
    }, INCOMING_CHANNEL_OPEN_TIMEOUT);
    void inner.closed.then(() => clock.clearTimeout(silent));
    let heard = false;
    // A frame is enough: a first message in chunks takes as long as it takes
    // (its own bounds are the unfinished-message budget and timeout).
    const framed = () => {
      heard = true;
      clock.clearTimeout(silent);
      channel.removeEventListener("message", framed);
    };
    channel.addEventListener("message", framed);
    const accepting = ResumableSession.accept(
      inner,
      (id) => {
        const held = this.#resumable.get(id);
        if (!held) return undefined;
        // A held session resumes only on a connection whose claim was accepted.
        return peer !== undefined && this.#claimed === peer
          ? held
          : "no accepted claim binds this connection to the session's";
      },
      { clock: clockOf(this), budget: this.#sessionBudget() },
    );
    const accepted = await accepting;
    release();
    channel.removeEventListener("message", framed);
    clock.clearTimeout(silent);
    if (!accepted && !heard && !this.#closed && this.#peer === peer && peer) {
      // As a plain session's server would say it ended: its place is free again.
      this.onerror?.(
        new WebRTCTransportError(
          "Let go of a channel the other peer opened and closed before anything came on it",
        ),
      );
    }
    if (!accepted) return void inner.close();
    this.#suspended.delete(accepted.session);
    if (this.#suspended.size === 0) this.#stopGrace();
    if (!accepted.created) return;
    // A new session takes a slot, kept until it ends (suspended or not).
    const admit = claimScopes.get(this)?.admit;
    const slot = admit ? admit(this, accepted.session) : () => {};
    if (!slot) return;
    void accepted.session.closed.then(slot);
    this.#track(accepted.session);
    try {
      if (this.ontransport) {
        this.ontransport(Object.assign(accepted.session, { connection: this }));
      } else void accepted.session.close();
    } catch (error) {
      this.onerror?.(error as Error);
      void accepted.session.close();
    }
  }

  /** A resumable session's budget for what it keeps until acknowledged, inside the connection's. */
  #sessionBudget(): MemoryBudget {
    return new MemoryBudget(
      "maxUnacknowledgedBytesPerSession",
      DEFAULT_MAX_UNACKNOWLEDGED_BYTES,
      this.#unacknowledged,
    );
  }

  /** Takes over what `other` holds (its claim named it): its sessions resume here. */
  #adoptFrom(other: WebRTCConnection): void {
    const sessions = [...other.#resumable.values()];
    const suspended = new Set(other.#suspended);
    other.#resumable.clear();
    other.#suspended.clear();
    other.#stopGrace();
    for (const session of sessions) {
      this.#track(session);
      Object.assign(session, { connection: this });
      if (suspended.has(session)) this.#suspended.add(session);
    }
    if (this.#suspended.size > 0) this.#startGrace();
  }

  static {
    suspendedOf = (connection) => connection.#suspended.size;
  }

  /** Keeps a resumable session while it lives; a lost channel suspends it. */
  #track(session: ResumableSession, open?: () => Promise<ChannelSession<WebRTCConnection>>): void {
    this.#resumable.set(session.id, session);
    void session.closed.then(() => {
      if (this.#resumable.get(session.id) !== session) return;
      this.#resumable.delete(session.id);
      this.#suspended.delete(session);
      // A connection that lost its peer and holds nothing more is done with.
      if (this.#resumable.size === 0 && !this.#peer && !this.#connecting) {
        claimScopes.get(this)?.emptied?.(this);
      }
    });
    session.onsuspend = () => {
      if (this.#closed) return void session.close();
      this.#suspended.add(session);
      this.#startGrace();
      if (open) void this.#redial(open);
      else if (this.ontransport && typeof this.#options.signaling === "function") {
        void this.#answerRedials();
      }
    };
  }

  /**
   * The serving side: answers the other side's redials, one after another
   * (it gives up one that finds no path for the next), until one connects.
   */
  async #answerRedials(): Promise<void> {
    if (this.#answering) return;
    this.#answering = true;
    try {
      while (this.#suspended.size > 0 && !this.#closed) {
        try {
          await this.#connect();
          return;
        } catch {
          // That redial failed: wait a moment, so that a failing signalling is not asked in a loop.
          const clock = clockOf(this);
          await new Promise<void>((resolve) => clock.setTimeout(resolve, RESUME_BACKOFF_FIRST));
        }
      }
    } finally {
      this.#answering = false;
    }
  }

  /** The dialling side: dials again with backoff and binds each suspended session anew. */
  async #redial(open: () => Promise<ChannelSession<WebRTCConnection>>): Promise<void> {
    if (this.#redialing) return;
    this.#redialing = true;
    const clock = clockOf(this);
    let wait = RESUME_BACKOFF_FIRST;
    let attempts = 0;
    let resumed = 0;
    let failure: Error | undefined;
    try {
      while (this.#suspended.size > 0 && !this.#closed) {
        await new Promise<void>((resolve) => {
          this.#backoff = { id: clock.setTimeout(resolve, wait), resolve };
        });
        this.#backoff = undefined;
        wait = Math.min(wait * 2, RESUME_BACKOFF_MAX);
        if (this.#suspended.size === 0 || this.#closed) break;
        this.onresumeattempt?.(++attempts, failure);
        failure = undefined;
        try {
          await this.#connect();
        } catch (error) {
          failure = error as Error;
          continue;
        }
        const outcome = await this.#claimOutcome;
        if (outcome instanceof Error) {
          this.onresumefail?.(outcome);
          this.#end([...this.#suspended], outcome);
          break;
        }
        if (outcome === "unanswered") {
          failure = new WebRTCTransportError(
            "The redial connected, but the other peer did not answer its claim on the sessions in time",
          );
          await this.#disconnect("the claim was not answered");
          continue;
        }
        for (const session of [...this.#suspended]) {
          try {
            await session.bind(await open());
            this.#suspended.delete(session);
            resumed++;
          } catch (error) {
            // Refused (the session closed itself), or the new channel failed: try again.
            if (!this.#resumable.has(session.id)) this.#suspended.delete(session);
            else this.onerror?.(error as Error);
          }
        }
      }
    } finally {
      this.#redialing = false;
      if (this.#suspended.size === 0) this.#stopGrace();
    }
    if (resumed > 0 && this.#suspended.size === 0 && !this.#closed) {
      const ms = clock.now() - this.#lostAt;
      this.onresume?.({ path: await this.getConnectionPath().catch(() => undefined), ms });
    }
  }

  #startGrace(): void {
    if (this.#graceTimer !== undefined) return;
    const grace = this.#options.resumeGrace ?? DEFAULT_RESUME_GRACE;
    const clock = clockOf(this);
    this.#graceTimer = clock.setTimeout(() => {
      this.#graceTimer = undefined;
      const error = new WebRTCTransportError(
        `Cannot resume the session as its connection was not back within ${grace} ms (resumeGrace): open a new session`,
      );
      this.onresumefail?.(error);
      this.#end([...this.#suspended], error);
    }, grace);
    this.onpathlost?.(
      this.#peer || !this.#lossError
        ? new WebRTCTransportError("A session's channel closed without its end")
        : this.#lossError,
    );
  }

  /** Ends suspended sessions with `error`: they cannot resume. */
  #end(sessions: ResumableSession[], error: Error): void {
    for (const session of sessions) {
      this.#suspended.delete(session);
      session.onerror?.(error);
      void session.close();
    }
  }

  #stopGrace(): void {
    if (this.#graceTimer !== undefined) clockOf(this).clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  async #lost(peer: PathPeer, error: Error): Promise<void> {
    if (this.#peer !== peer) return;
    await this.#disconnect(error.message, error);
  }

  #disconnect(reason: string, error?: Error): Promise<void> {
    // A dial under way is aborted, not waited for: an answering side may wait
    // for its first offer indefinitely.
    const peer = this.#peer ?? this.#connecting;
    const released = this.#release(peer, reason, error);
    if (peer) {
      this.#releasing = released;
      const done = () => {
        if (this.#releasing === released) this.#releasing = undefined;
      };
      released.then(done, done);
    }
    return released;
  }

  async #release(peer: PathPeer | undefined, reason: string, error?: Error): Promise<void> {
    this.#peer = undefined;
    this.#claimed = undefined;
    this.#liveness?.stop();
    this.#liveness = undefined;
    this.#pathWatch?.stop();
    this.#pathWatch = undefined;
    this.#stopLinger();
    const spare = this.#spare?.channel;
    this.#spare = undefined;
    // Who owns the connection hears of its loss before its sessions close.
    if (error && peer) owners.get(this)?.lost(error);
    if (peer) {
      this.#lostAt = clockOf(this).now();
      this.#lossError = error ??
        new WebRTCTransportError(`The connection to the peer was lost: ${reason}`);
    }
    await Promise.allSettled([...this.#sessions].map((session) => session.close()));
    try {
      spare?.close();
    } catch {
      // Already closed.
    }
    if (peer) {
      await peer.close(reason);
      this.ondisconnect?.(error);
      // A session's channel may close (suspending it) before its peer is
      // released: the answer begun then found the old peer still up.
      if (
        this.#suspended.size > 0 && this.ontransport &&
        typeof this.#options.signaling === "function" && !this.#closed
      ) {
        void this.#answerRedials();
      }
    }
  }
}

/** The one who owns a connection and speaks for it (a one-session transport). */
export interface ConnectionOwner {
  /** The connection was lost (before its sessions close), e.g. the peer went silent. */
  lost(error: Error): void;
}

const owners = new WeakMap<WebRTCConnection, ConnectionOwner>();

/** How many sessions `connection` holds for a resume, their channel lost. */
export function heldSessions(connection: WebRTCConnection): number {
  return suspendedOf(connection);
}

/** How a claim went on the dialling side. */
type ClaimOutcome = "none" | "accepted" | "unanswered" | Error;

/** The grants of serving connections that share them (a listener's), and how one takes another's sessions. */
export interface ClaimScope {
  readonly book: ClaimBook<WebRTCConnection>;
  /** Moves what `from` held to `to`, whose peer's claim named `from`. */
  adopt?(from: WebRTCConnection, to: WebRTCConnection): void;
  /** Why `to` may not take over what `from` holds, if it may not (the claim is then refused). */
  mayAdopt?(from: WebRTCConnection, to: WebRTCConnection): string | undefined;
  /**
   * Holds a channel the other side opened until its first message says
   * whether it starts or resumes a session, and returns what lets it go;
   * `undefined` refuses it (the scope then answers and closes it).
   */
  hold?(connection: WebRTCConnection, channel: WebRTCSessionTransport): (() => void) | undefined;
  /**
   * Takes a session slot for a session the other side started, and returns
   * what gives it back (once the session ends: suspended sessions count);
   * `undefined` refuses it (the scope then answers and closes it). A channel
   * that resumes a session takes none: that session holds its own.
   */
  admit?(connection: WebRTCConnection, session: Transport): (() => void) | undefined;
  /** `connection` lost its peer and holds no session any more (the grace period passed). */
  emptied?(connection: WebRTCConnection): void;
}

const claimScopes = new WeakMap<WebRTCConnection, ClaimScope>();

/** Makes `connection` answer claims from `scope`'s book (a listener's, shared by its connections). */
export function shareClaims(connection: WebRTCConnection, scope: ClaimScope): void {
  claimScopes.set(connection, scope);
}

/**
 * Makes `owner` the one who speaks for `connection`: it hears of the
 * connection's loss first, and reports a failed dial itself (the connection's
 * `onerror` does not).
 */
export function ownConnection(connection: WebRTCConnection, owner: ConnectionOwner): void {
  owners.set(connection, owner);
}
