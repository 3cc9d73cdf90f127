/**
 * What a {@linkcode WebRTCListener} is given and what it hands out: its
 * options (with the check of their limits), the MCP server it needs, and the
 * agents and sessions it reports.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { InviteRecord } from "./_listener_invites.ts";
import type { SignalingHub } from "./signaling/signaling.ts";
import type { SignalingRoomOptions } from "./signaling/signaling_room.ts";
import type { Ticket } from "./ticket.ts";
import {
  DEFAULT_MAX_AGENTS,
  DEFAULT_MAX_AGENTS_PER_INVITE,
  DEFAULT_MAX_SESSIONS_PER_AGENT,
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT,
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_DESKTOP,
  DEFAULT_MAX_UNFINISHED_BYTES,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  DEFAULT_SESSION_STARTS_PER_SECOND,
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
} from "./constants.ts";
import type { AuditRecord } from "./policy_transport.ts";
import type { WebRTCConnection } from "./webrtc_connection.ts";
import type { WebRTCTransportOptions } from "./webrtc_transport.ts";

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
   * The most agents (peer connections) one named invite may hold at once;
   * one more of that invite is refused, saying so, until one leaves, while
   * other invites' agents still connect. The one shared guest ticket is
   * bounded by `maxAgents` only (the desktop cannot tell its holders apart).
   *
   * @default {4} (`DEFAULT_MAX_AGENTS_PER_INVITE`)
   */
  maxAgentsPerInvite?: number;
  /**
   * Whether an agent's sessions outlive its lost peer connection (see
   * `WebRTCConnectionOptions.resume`): the listener holds the lost
   * connection's sessions, their servers untouched, for `resumeGrace`, and
   * binds them to the agent's redial (a new connection whose claim names the
   * lost one) without a second `initialize`; after the grace period they end
   * as without it. A held connection is not an agent (`agents`), and counts
   * against a bound of its own: at most `maxAgents` are held; past it a lost
   * connection's sessions end at once. An agent that does not speak it gets
   * plain sessions.
   *
   * @default {true}
   */
  resume?: boolean;
  /**
   * Milliseconds a lost agent's sessions are held for its redial.
   *
   * @default {120000}
   */
  resumeGrace?: number;
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
   * The most bytes that one agent's sessions together keep until the agent
   * acknowledges them, to send them again should its path change (each
   * session within `DEFAULT_MAX_UNACKNOWLEDGED_BYTES` of its own). The agent
   * decides when it acknowledges: a message that does not fit ends its
   * session with an error naming this budget, and the agent's other sessions
   * go on. Kept only with `resume` (the default). An agent is a peer
   * connection, as for `maxUnfinishedBytesPerAgent`, within
   * `maxUnacknowledgedBytes`.
   *
   * @default {268435456}
   */
  maxUnacknowledgedBytesPerAgent?: number;
  /**
   * The most bytes that the sessions of all agents together keep until
   * acknowledged: what resends can make this process keep. A message that
   * does not fit ends its session as with `maxUnacknowledgedBytesPerAgent`,
   * naming this budget.
   *
   * @default {536870912}
   */
  maxUnacknowledgedBytes?: number;
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
  room?: Omit<
    SignalingRoomOptions,
    "role" | "key" | "guestVerifier" | "hostVerifier" | "invitesOnly"
  >;
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
   * is opened with the verifier of a key nobody holds. A room reopened with
   * `hostTicket` and `invites` follows them: records kept from
   * `listener.invites` hold `"guest"` unless it was revoked, and a revoked
   * guest ticket stays revoked (an empty list included).
   *
   * @default {true}; with `hostTicket` and `invites`, whether one is named `"guest"`
   */
  guestTicket?: boolean;
}

/**
 * Throws unless every limit of the options (given or its default) is a
 * positive integer.
 */
export function checkListenerLimits(options: WebRTCListenerOptions): void {
  for (
    const [name, value] of [
      ["maxAgents", options.maxAgents ?? DEFAULT_MAX_AGENTS],
      ["maxAgentsPerInvite", options.maxAgentsPerInvite ?? DEFAULT_MAX_AGENTS_PER_INVITE],
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
        "maxUnacknowledgedBytesPerAgent",
        options.maxUnacknowledgedBytesPerAgent ?? DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT,
      ],
      [
        "maxUnacknowledgedBytes",
        options.maxUnacknowledgedBytes ?? DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_DESKTOP,
      ],
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
}
