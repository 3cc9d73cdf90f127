/**
 * The room's relay frames: the wire format shared by the worker and the room
 * client, and the limits the room announces. Plain TypeScript with no
 * imports, so the worker bundles it too.
 *
 * A relay frame is one binary WebSocket message. Its first byte is
 * {@linkcode RELAY_FRAME}; on the host's socket the guest's 8-byte id follows
 * (its 16 hex digits as bytes), naming the guest the frame goes to or comes
 * from; a guest's frames always go to and come from the host, so they carry
 * no id. The rest is the payload, opaque to the room (the peers seal it end to
 * end):
 *
 * ```text
 * guest → room, room → guest:  0x52 | payload
 * host → room,  room → host:   0x52 | guest id (8 bytes) | payload
 * ```
 *
 * The room announces its relay in its welcome frame: `"relay": { "maxFrameBytes": n,
 * "bytesPerSecond": n }`, or `"relay": null` where the operator turned it off.
 * It answers a frame it does not relay with an error frame that names the
 * guest concerned in `peer` (see {@linkcode RELAY_ERRORS}).
 *
 * @module
 */

/** The first byte of every relay frame (`R`). */
export const RELAY_FRAME = 0x52;
/** Bytes of a guest id in a host's frame. */
export const RELAY_PEER_BYTES = 8;

/** What the room relays, as it announces in its welcome frame. */
export interface RelayLimits {
  /** The largest relay frame it forwards, header included, in bytes. */
  readonly maxFrameBytes: number;
  /** Bytes per second it relays for the whole room, both ways together. */
  readonly bytesPerSecond: number;
}

/**
 * The defaults of the relay's `vars`: `RELAY` (`"on"` or `"off"`),
 * `RELAY_BYTES_PER_SECOND` and `RELAY_MAX_FRAME_BYTES`.
 */
export const RELAY_DEFAULTS = {
  /** Whether rooms relay (`RELAY`). */
  RELAY: "on",
  /**
   * Bytes per second a room relays, both directions and all guests together
   * (`RELAY_BYTES_PER_SECOND`): 8 MiB/s, so a 16 MiB tool result crosses in
   * about two seconds while one room cannot take a worker's bandwidth.
   */
  RELAY_BYTES_PER_SECOND: 8 * 1024 * 1024,
  /**
   * The largest relay frame (`RELAY_MAX_FRAME_BYTES`): 128 KiB, room for the
   * peers' 64 KiB chunks with their header and tag, well under workerd's
   * limit of about 31 MiB per message.
   */
  RELAY_MAX_FRAME_BYTES: 128 * 1024,
} as const;

/**
 * The smallest `maxFrameBytes` the peers can use: a 64 KiB chunk (what a data
 * channel carries at most without negotiation), its 5-byte channel header, the
 * 16-byte tag and the room's header. A room that announces less cannot relay.
 */
export const MIN_RELAY_FRAME_BYTES = 65_536 + 5 + 16 + 1 + RELAY_PEER_BYTES;

/** The error frames of the relay, with what was wrong and what to do. */
export const RELAY_ERRORS = {
  relay_disabled:
    "This signalling room does not relay: its operator turned RELAY off; allow UDP between the peers, or configure a TURN server",
  relay_frame_too_large:
    "A relay frame was larger than the room relays (maxFrameBytes in its welcome): send smaller frames",
  relay_rate_limited:
    "The room relayed more bytes per second than its operator allows (bytesPerSecond in its welcome): the relayed connection must slow down",
  relay_bad_frame:
    "A relay frame must start with 0x52 and, from the host, the 8-byte id of a guest",
} as const;

/** The code of a relay error frame. */
export type RelayErrorCode = keyof typeof RELAY_ERRORS;

/**
 * Builds a relay frame.
 *
 * @param payload The opaque payload.
 * @param peer On the host's side, the guest's id (16 hex digits); else nothing.
 * @returns The frame, ready to send as a binary message.
 * @throws {TypeError} If `peer` is not 16 lowercase hex digits.
 *
 * @example A host's frame names its guest
 * ```ts
 * import { encodeRelayFrame, readRelayFrame } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = encodeRelayFrame(new Uint8Array([1, 2]), "0123456789abcdef");
 * assert.equal(frame.byteLength, 11);
 * assert.deepEqual(readRelayFrame(frame, true), {
 *   peer: "0123456789abcdef",
 *   payload: new Uint8Array([1, 2]),
 * });
 * ```
 */
export function encodeRelayFrame(payload: Uint8Array, peer?: string): Uint8Array<ArrayBuffer> {
  const header = peer === undefined ? 1 : 1 + RELAY_PEER_BYTES;
  const frame = new Uint8Array(header + payload.byteLength);
  frame[0] = RELAY_FRAME;
  if (peer !== undefined) {
    if (!/^[0-9a-f]{16}$/.test(peer)) {
      throw new TypeError(
        `Cannot build a relay frame as the guest id must be 16 lowercase hex digits: received ${
          JSON.stringify(peer).slice(0, 40)
        }`,
      );
    }
    for (let i = 0; i < RELAY_PEER_BYTES; i++) {
      frame[1 + i] = parseInt(peer.slice(2 * i, 2 * i + 2), 16);
    }
  }
  frame.set(payload, header);
  return frame;
}

/**
 * Reads a relay frame.
 *
 * @param frame The binary message as received.
 * @param withPeer Whether the frame carries a guest id (frames to and from the host).
 * @returns The guest id (if any) and the payload (a view into `frame`), or
 * `undefined` if the frame is not a relay frame.
 *
 * @example A guest's frame has no id
 * ```ts
 * import { encodeRelayFrame, readRelayFrame } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = encodeRelayFrame(new Uint8Array([7]));
 * assert.deepEqual(readRelayFrame(frame, false), { payload: new Uint8Array([7]) });
 * assert.equal(readRelayFrame(new Uint8Array([0]), false), undefined);
 * ```
 */
export function readRelayFrame(
  frame: ArrayBuffer | Uint8Array,
  withPeer: boolean,
): { peer?: string; payload: Uint8Array } | undefined {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  const header = withPeer ? 1 + RELAY_PEER_BYTES : 1;
  if (bytes.byteLength < header || bytes[0] !== RELAY_FRAME) return undefined;
  const payload = bytes.subarray(header);
  if (!withPeer) return { payload };
  let peer = "";
  for (let i = 1; i < header; i++) peer += bytes[i]!.toString(16).padStart(2, "0");
  return { peer, payload };
}

/**
 * Reads the relay limits of a welcome frame.
 *
 * @returns The limits, or `undefined` if the room does not relay (or announces nothing usable).
 *
 * @example A room that relays
 * ```ts
 * import { readRelayLimits } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const welcome = { relay: { maxFrameBytes: 131072, bytesPerSecond: 8388608 } };
 * assert.deepEqual(readRelayLimits(welcome), welcome.relay);
 * assert.equal(readRelayLimits({ relay: null }), undefined);
 * ```
 */
export function readRelayLimits(welcome: Record<string, unknown>): RelayLimits | undefined {
  const relay = welcome.relay as Record<string, unknown> | null | undefined;
  if (typeof relay !== "object" || relay === null) return undefined;
  const { maxFrameBytes, bytesPerSecond } = relay;
  if (
    typeof maxFrameBytes !== "number" || !Number.isSafeInteger(maxFrameBytes) ||
    maxFrameBytes < MIN_RELAY_FRAME_BYTES ||
    typeof bytesPerSecond !== "number" || !(bytesPerSecond > 0)
  ) return undefined;
  return { maxFrameBytes, bytesPerSecond };
}

/**
 * A binary pipe to one peer through the signalling service, as the room
 * client hands it out: frames are opaque and unprotected here (the relay
 * path seals them end to end), delivered whole and in order.
 */
export interface RelayPipe {
  /** What the room relays. */
  readonly limits: RelayLimits;
  /**
   * Sends one payload; resolves once it is handed to the socket, paced to the
   * room's rate. Rejects once the pipe is closed.
   */
  send(payload: Uint8Array): Promise<void>;
  /**
   * Starts delivering: payloads that arrived before are delivered first.
   * `error` gets the room's refusals of this pipe's frames; `close` fires
   * once, when the peer or the room connection is gone.
   */
  listen(handlers: {
    message(payload: Uint8Array): void;
    error(error: Error): void;
    close(): void;
  }): void;
  /** Stops delivering and drops what waits; the signalling goes on. */
  close(): void;
}

/**
 * What a {@linkcode Signaling} may offer beyond messages: a relay pipe to the
 * same peer (the room client's views do), and whether its messages are
 * authenticated end to end (`AuthenticatedSignaling`, and `TicketSignaling`
 * through it). Wrappers pass both on.
 */
export interface RelayCarrier {
  /**
   * The relay pipe to the other peer.
   *
   * @throws {Error} If the service does not relay (its operator turned it off).
   */
  relayPipe?(): RelayPipe;
  /** Whether every message is sealed end to end with a key both peers hold. */
  readonly authenticated?: boolean;
}
