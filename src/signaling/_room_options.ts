/**
 * What a {@linkcode SignalingRoom} is joined with: its role and key, its
 * WebSocket, pings, timeouts and how it reconnects.
 *
 * @module
 */
import type { WebSocketConstructor } from "../runtime.ts";

/**
 * How a {@linkcode SignalingRoom} reconnects after its socket dropped: the
 * n-th retry waits between half and all of `min(maxDelay, minDelay * 2^(n-1))`.
 *
 * @example Retry quickly, ten times at most
 * ```ts no-assert
 * import type { ReconnectOptions } from "@mcp/webrtc/signaling";
 *
 * const reconnect: ReconnectOptions = { minDelay: 100, maxDelay: 5_000, maxAttempts: 10 };
 * ```
 */
export interface ReconnectOptions {
  /**
   * The delay before the first retry, in ms; each next one doubles, with jitter.
   *
   * @default {500}
   */
  minDelay?: number;
  /**
   * The longest delay between retries, in ms.
   *
   * @default {30000}
   */
  maxDelay?: number;
  /**
   * Failed retries in a row before giving up.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
}

/**
 * Options of {@linkcode SignalingRoom.join}.
 *
 * @example The options of a host
 * ```ts no-assert
 * import { createRoomKey, keyVerifier, type SignalingRoomOptions } from "@mcp/webrtc/signaling";
 *
 * const guestKey = createRoomKey();
 * const options: SignalingRoomOptions = {
 *   role: "host",
 *   key: createRoomKey(),
 *   guestVerifier: await keyVerifier(guestKey),
 *   reconnect: { maxDelay: 10_000 },
 * };
 * ```
 */
export interface SignalingRoomOptions {
  /** `"host"` for the serving side (one per room), `"guest"` for a dialing side. */
  role: "host" | "guest";
  /** The room key: 16 to 128 base64url characters. Sent as a subprotocol, never in the URL. */
  key: string;
  /**
   * Hosts only: the {@linkcode keyVerifier} of the key guests will use.
   *
   * @default {undefined}
   */
  guestVerifier?: string;
  /**
   * Guests only: the host key's verifier, as a version 2 ticket holds it
   * (`Ticket.hostVerifier`). The room checks the ticket's guest against its
   * own id with it, so the guest is admitted while the host is away even
   * though the room stored nothing.
   *
   * @default {undefined}
   */
  hostVerifier?: string;
  /**
   * Hosts only: admit no guest with `guestVerifier` (the room drops the
   * invite named `"guest"`, and ends the sockets of guests that came with
   * it), only the invites the host adds. For a version 2 ticket's room, whose
   * id binds `guestVerifier`: the host must show it, and this says it serves
   * no agent with it.
   *
   * @default {false}
   */
  invitesOnly?: boolean;
  /**
   * The WebSocket constructor, for runtimes without a global one (Node 20).
   *
   * @default {globalThis.WebSocket}
   */
  WebSocket?: WebSocketConstructor;
  /**
   * Reconnect after the socket dropped, or `false` to close for good instead.
   * A refusal (wrong key, no such room, full, replaced) is never retried.
   *
   * @default {{}}
   */
  reconnect?: ReconnectOptions | false;
  /**
   * Milliseconds between keepalive pings; a ping with no pong by the next one
   * means the connection is dead.
   *
   * @default {20000}
   */
  pingInterval?: number;
  /**
   * Milliseconds to wait for the room's welcome on each connection attempt,
   * and for its answer to an `invite()` or `revoke()`.
   *
   * @default {10000} (`ROOM_TIMEOUT`)
   */
  timeout?: number;
  /**
   * Closes the room (and rejects a pending join) when aborted.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}
