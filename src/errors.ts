/**
 * The errors callers may want to catch: every one extends
 * {@linkcode WebRTCTransportError}.
 *
 * @module
 */

/**
 * The base class of every error this module raises on purpose.
 *
 * @example Catch any error of this module
 * ```ts
 * import { ConnectError, WebRTCTransportError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectError("ice", "No network path between the peers");
 * assert.ok(error instanceof WebRTCTransportError);
 * ```
 */
export class WebRTCTransportError extends Error {
  /**
   * @param message What went wrong and what to do about it.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebRTCTransportError";
  }
}

/**
 * The stage of connection setup that did not complete:
 * - `signaling`: the other peer's offer or answer never arrived;
 * - `ice`: no network path was found between the peers;
 * - `dtls`: a path was found but the encrypted session was not established;
 * - `channel`: the connection is up but the `mcp` data channel did not open.
 */
export type ConnectStage = "signaling" | "ice" | "dtls" | "channel";

/**
 * A connection could not be established, or was lost while being set up.
 *
 * @example Branch on the stage that failed
 * ```ts
 * import { ConnectError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectError("ice", "No network path between the peers");
 * assert.equal(error.stage, "ice");
 * assert.equal(error.name, "ConnectError");
 * ```
 */
export class ConnectError extends WebRTCTransportError {
  /** The stage that did not complete. */
  readonly stage: ConnectStage;

  /**
   * @param stage The stage that did not complete.
   * @param message What went wrong and what to do about it.
   * @param options The underlying cause, if any.
   */
  constructor(stage: ConnectStage, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectError";
    this.stage = stage;
  }
}

/**
 * A message was larger than a limit: an incoming one over the receive cap
 * (dropped), or an outgoing one over what a peer that takes no chunks takes
 * in one message (not sent). The session goes on.
 *
 * @example Inspect the sizes
 * ```ts
 * import { MessageSizeError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new MessageSizeError(100, 10);
 * assert.equal(error.limit, 10);
 * assert.match(error.message, /maxReceiveSize/);
 * ```
 */
export class MessageSizeError extends WebRTCTransportError {
  /** How many bytes had arrived when the message was refused, or the outgoing message's size. */
  readonly size: number;
  /** The receive cap, or the most the peer takes in one message, in bytes. */
  readonly limit: number;

  /**
   * @param size How many bytes had arrived when the message was refused, or
   * the outgoing message's size.
   * @param limit The receive cap, or the most the peer takes, in bytes.
   * @param message What happened, if not an incoming message over the cap
   * (an outgoing one over what the peer takes).
   */
  constructor(size: number, limit: number, message?: string) {
    super(
      message ??
        `Dropped an incoming message as it exceeds the receive cap: at least ${size} bytes, cap ${limit} bytes; raise the maxReceiveSize option if such messages are expected`,
    );
    this.name = "MessageSizeError";
    this.size = size;
    this.limit = limit;
  }
}

/**
 * An incoming frame was malformed (not JSON, not a JSON-RPC message, or an
 * unknown binary frame); it was dropped and the session goes on.
 *
 * @example Wrap a parse failure
 * ```ts
 * import { FrameError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new FrameError("Dropped an incoming frame as it is not JSON");
 * assert.equal(error.name, "FrameError");
 * ```
 */
export class FrameError extends WebRTCTransportError {
  /**
   * @param message What was wrong with the frame.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FrameError";
  }
}

/**
 * The peer went away: it closed, its process died or the network dropped.
 *
 * @example Recognise a lost peer
 * ```ts
 * import { PeerLostError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new PeerLostError("The peer stopped responding").name, "PeerLostError");
 * ```
 */
export class PeerLostError extends WebRTCTransportError {
  /**
   * @param message Why the peer is considered gone.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PeerLostError";
  }
}

/**
 * A signalling message from the other peer was refused (malformed, unexpected
 * or over a limit) and not applied; the connection goes on. A connect timeout
 * that follows names the first refusal as its cause.
 *
 * @example Tell a refused message from a failed connection
 * ```ts
 * import { SignalRefusedError, WebRTCTransportError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new SignalRefusedError("Refused a signalling message of unknown type \"x\"");
 * assert.ok(error instanceof WebRTCTransportError);
 * assert.equal(error.name, "SignalRefusedError");
 * ```
 */
export class SignalRefusedError extends WebRTCTransportError {
  /**
   * @param message What was refused and why.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SignalRefusedError";
  }
}

/**
 * The relay path through the signalling room failed or was refused: its
 * signalling is not authenticated, the room does not relay or refused a frame,
 * or a relayed frame was altered, dropped, replayed or reordered (the frames
 * are sealed end to end, so the relay can do none of these unnoticed). The
 * message says which, and what to do.
 *
 * @example Tell a tampering relay from other failures
 * ```ts
 * import { RelayError, WebRTCTransportError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new RelayError("Refused relayed frame 3 as it is not the peer's frame 3");
 * assert.ok(error instanceof WebRTCTransportError);
 * assert.equal(error.name, "RelayError");
 * ```
 */
export class RelayError extends WebRTCTransportError {
  /**
   * @param message What failed, and what to do.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RelayError";
  }
}

/**
 * The other peer refused a signalling message that this peer really sent,
 * and said so in a message only it could have sent (sealed with the key both
 * hold): the message was lost on the way (altered, say), so the connect cannot
 * complete. A `Signaling` that learns this reports it through its
 * `onerror`; a transport then fails its connect at once, with this cause.
 *
 * `AuthenticatedSignaling` tells the other end whenever it refuses an
 * envelope that claims to come from that end and fails its seal; the other
 * end raises this error only for an envelope it sent itself (the same
 * sequence number and seal), so a forgery refused on the way is no
 * accusation.
 *
 * @example Recognise the other peer's refusal
 * ```ts
 * import { PeerRefusalError, WebRTCTransportError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new PeerRefusalError("The other peer refused this peer's offer");
 * assert.ok(error instanceof WebRTCTransportError);
 * assert.equal(error.name, "PeerRefusalError");
 * ```
 */
export class PeerRefusalError extends WebRTCTransportError {
  /**
   * @param message What the other peer refused, and the check that failed there.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PeerRefusalError";
  }
}

/**
 * Why a room connection failed or ended; see {@linkcode SignalingRoomError}.
 *
 * @example Stop on a final refusal
 * ```ts
 * import type { SignalingRoomErrorCode } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const final: SignalingRoomErrorCode[] = ["key_refused", "room_not_found", "room_full"];
 * assert.ok(final.includes("key_refused"));
 * ```
 */
export type SignalingRoomErrorCode =
  | "key_refused"
  | "room_not_found"
  | "room_full"
  | "host_replaced"
  | "rate_limited"
  | "unreachable"
  | "timeout"
  | "connection_lost"
  | "disconnected"
  | "protocol_error"
  | "host_absent"
  | "frame_refused"
  | "revoked";

/**
 * A signalling room refused us, or the connection to it failed. The codes
 * `key_refused`, `room_not_found`, `room_full`, `host_replaced` and `revoked`
 * (the host revoked the invite of a guest's key) are final: the room stops
 * reconnecting after them.
 *
 * @example Tell a refused key from a network failure
 * ```ts
 * import { SignalingRoomError, WebRTCTransportError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new SignalingRoomError("key_refused", "Cannot join room as the key was refused");
 * assert.equal(error.code, "key_refused");
 * assert.equal(error.name, "SignalingRoomError");
 * assert.ok(error instanceof WebRTCTransportError);
 * ```
 */
export class SignalingRoomError extends WebRTCTransportError {
  /** What happened, for callers that branch on it. */
  readonly code: SignalingRoomErrorCode;

  /**
   * @param code What happened.
   * @param message What was wrong and what to do.
   * @param options The underlying cause, if any.
   */
  constructor(code: SignalingRoomErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SignalingRoomError";
    this.code = code;
  }
}

/**
 * A signalling message was refused: it was not sealed, was altered, forged,
 * replayed, reordered or reflected. The message was dropped; the message of
 * the error says which check failed and what it likely means.
 *
 * @example Recognise a refused message
 * ```ts
 * import { AuthenticationError, WebRTCTransportError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const error = new AuthenticationError("Refused signalling message as it is not sealed");
 * assert.equal(error.name, "AuthenticationError");
 * assert.ok(error instanceof WebRTCTransportError);
 * ```
 */
export class AuthenticationError extends WebRTCTransportError {
  /**
   * Creates the authentication error.
   *
   * @param message Which check failed and what it means.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthenticationError";
  }
}

/**
 * A ticket string (or object) is malformed, or a ticket cannot be used (it
 * expired, or its parts do not belong together).
 *
 * @example Recognise a bad ticket
 * ```ts
 * import { parseTicket, TicketError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseTicket("hello"), TicketError);
 * ```
 */
export class TicketError extends WebRTCTransportError {
  /**
   * Creates the ticket error.
   *
   * @param message What is wrong with the ticket.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TicketError";
  }
}

/**
 * A command line that cannot be run as given: an unknown flag, a missing or
 * malformed value. The CLI prints it with the subcommand's usage and exits 2.
 *
 * @example Recognise a usage error
 * ```ts
 * import { UsageError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new UsageError("Missing ticket").name, "UsageError");
 * ```
 */
export class UsageError extends WebRTCTransportError {
  /**
   * @param message What is wrong with the command line.
   * @param options The underlying cause, if any.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}
