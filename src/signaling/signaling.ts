/**
 * The signalling seam: how two peers exchange the small JSON objects that set
 * up a WebRTC connection (offer, answer, ICE candidates, bye).
 *
 * @module
 */

/**
 * One signalling message: a small JSON object with a string `type`.
 *
 * The peers of this module send `offer`, `answer`, `candidate` and `bye`
 * messages; wrappers (such as authenticated signalling) may carry their own
 * types. A {@linkcode Signaling} implementation treats messages as opaque: it
 * must deliver them whole, in order, and only between the two peers.
 */
export interface SignalingMessage {
  /** What kind of message this is, e.g. `"offer"`. */
  readonly type: string;
  /** Any further JSON-serialisable fields. */
  readonly [field: string]: unknown;
}

/** What a {@linkcode Signaling} learns when it is started. */
export interface SignalingStartOptions {
  /** Whether this peer sends the offer (and so speaks first). */
  readonly initiator: boolean;
}

/**
 * A channel that carries {@linkcode SignalingMessage}s between exactly two
 * peers: the in-memory pair, a signalling room on the edge, or any channel the
 * two parties already share (an A2A conversation, a chat, copy and paste).
 *
 * The shape follows the MCP SDK's `Transport`. The transport that consumes a
 * `Signaling` installs `onmessage`, `onclose` and `onerror` first and then
 * calls `start()`; an implementation should keep messages that arrive before
 * `start()` and deliver them afterwards, or they may be lost.
 *
 * A signalling that learns that the other peer refused a message this peer
 * really sent (so the connect cannot complete) reports a `PeerRefusalError`
 * to `onerror`: the transport then fails its connect at once with that cause
 * instead of waiting for its timeout. `AuthenticatedSignaling` does, from the
 * sealed notice the refusing end sends.
 *
 * @example A dozen-line signalling over any shared message bus
 * ```ts no-assert
 * import type { Signaling, SignalingMessage } from "@mcp/webrtc";
 *
 * class BusSignaling implements Signaling {
 *   onmessage?: (message: SignalingMessage) => void;
 *   onclose?: () => void;
 *   constructor(private readonly bus: BroadcastChannel, private readonly me: string) {
 *     bus.onmessage = (event) => {
 *       if (event.data.from !== this.me) this.onmessage?.(event.data.message);
 *     };
 *   }
 *   async send(message: SignalingMessage) {
 *     this.bus.postMessage({ from: this.me, message });
 *   }
 *   async close() {
 *     this.bus.close();
 *     this.onclose?.();
 *   }
 * }
 * ```
 */
export interface Signaling {
  /**
   * Starts delivering messages. Called once, after the callbacks are
   * installed; optional for implementations that deliver from the start.
   * `options.initiator` says whether this peer sends the offer, for carriers
   * whose set-up depends on who speaks first (aiortc's TCP signalling).
   */
  start?(options?: SignalingStartOptions): Promise<void>;
  /**
   * Sends one message to the other peer. Rejects if the channel is closed or
   * the message cannot be delivered. Messages must arrive in the order of the
   * calls, also when a call comes before the previous one's promise settled:
   * peers of this module hand each message over without waiting for the
   * delivery of the one before.
   */
  send(message: SignalingMessage): Promise<void>;
  /** Closes the channel. Idempotent; `onclose` fires once. */
  close(): Promise<void>;
  /** Called for every message from the other peer, in order. */
  onmessage?: (message: SignalingMessage) => void;
  /** Called once when the channel can carry no more messages. */
  onclose?: () => void;
  /** Called for a problem that does not close the channel. */
  onerror?: (error: Error) => void;
  /**
   * What both peers must share to meet through this channel, as advice names
   * it: an error that no answer came completes "check that it is running and
   * uses …" with it. A signalling room says "the same signalling room or
   * ticket"; an A2A carrier might say "the same agent". Wrappers pass it on.
   * When absent, "the same signalling channel".
   */
  readonly meetingPoint?: string;
}

/**
 * A multi-party signalling channel on which one side is the host: it hands
 * out a two-party {@linkcode Signaling} per peer present. A `SignalingRoom`
 * joined as host is one; `WebRTCListener` serves the agents that arrive on it.
 *
 * @example A hub over a fixed set of in-memory pairs
 * ```ts no-assert
 * import type { Signaling, SignalingHub } from "@mcp/webrtc";
 *
 * class FixedHub implements SignalingHub {
 *   onpeerjoin?: (peer: string) => void;
 *   onpeerleave?: (peer: string) => void;
 *   onclose?: (error?: Error) => void;
 *   constructor(private readonly channels: Map<string, Signaling>) {}
 *   get peers() {
 *     return [...this.channels.keys()];
 *   }
 *   signaling(peer: string) {
 *     return this.channels.get(peer)!;
 *   }
 *   async close() {
 *     for (const channel of this.channels.values()) await channel.close();
 *     this.onclose?.();
 *   }
 * }
 * ```
 */
export interface SignalingHub {
  /** The peers present now. */
  readonly peers: string[];
  /** The two-party signalling to one present peer. */
  signaling(peer: string): Signaling;
  /** Leaves for good; `onclose` fires once. */
  close(): Promise<void>;
  /**
   * The name of the invite a present peer was admitted with, if the hub
   * knows it: a signalling room names the invite of each guest's key to its
   * host (`"guest"` for the key of the host's own ticket). Optional: a hub
   * without invites leaves it out, or returns `undefined`.
   */
  inviteOf?(peer: string): string | undefined;
  /** Called when a peer arrives. */
  onpeerjoin?: (peer: string) => void;
  /** Called when a peer leaves. */
  onpeerleave?: (peer: string) => void;
  /** Called for a problem that does not close the hub (e.g. a drop that will be retried). */
  onerror?: (error: Error) => void;
  /**
   * Called once when the hub closed for good, with the reason unless
   * `close()` was called. (Declared as a method so that a hub may pass a
   * narrower error, as `SignalingRoom` passes a `SignalingRoomError`.)
   */
  onclose?(error?: Error): void;
}
