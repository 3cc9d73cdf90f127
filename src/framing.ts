/**
 * The wire format on the data channel.
 *
 * - A **text** frame holds exactly one whole JSON-RPC message, as the reference
 *   implementations send it, so small messages interoperate with them.
 * - A message larger than one frame travels as **binary** chunk frames: a
 *   one-byte header ({@linkcode FRAME_MORE} or {@linkcode FRAME_LAST}) then a
 *   slice of the message's UTF-8 bytes, reassembled in order on the ordered,
 *   reliable channel.
 * - A binary frame holding only {@linkcode FRAME_KEEPALIVE} proves the peer is
 *   alive and carries nothing.
 *
 * @module
 */

import { FrameError, MessageSizeError } from "./errors.ts";

/** Header byte of a chunk frame after which more chunks of the message follow. */
export const FRAME_MORE = 0x00;
/** Header byte of the chunk frame that ends a message. */
export const FRAME_LAST = 0x01;
/** The one byte of a keepalive frame. */
export const FRAME_KEEPALIVE = 0x02;

const encoder = new TextEncoder();

/**
 * Splits one serialised message into the frames that carry it.
 *
 * @param text The message as JSON text.
 * @param maxFrameSize The largest frame the peer accepts, in bytes.
 * @returns The frames, in order: one string, or binary chunks.
 * @throws {RangeError} If `maxFrameSize` is smaller than 2 bytes.
 *
 * @example A small message is one text frame; a large one is chunked
 * ```ts
 * import { encodeFrames, FRAME_LAST, FRAME_MORE } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...encodeFrames('{"a":1}', 1024)], ['{"a":1}']);
 * const frames = [...encodeFrames("x".repeat(12), 6)] as Uint8Array[];
 * assert.deepEqual(frames.map((frame) => frame[0]), [FRAME_MORE, FRAME_MORE, FRAME_LAST]);
 * assert.ok(frames.every((frame) => frame.byteLength <= 6));
 * ```
 */
export function* encodeFrames(
  text: string,
  maxFrameSize: number,
): Generator<string | Uint8Array> {
  if (!Number.isInteger(maxFrameSize) || maxFrameSize < 2) {
    throw new RangeError(
      `Cannot frame message as 'maxFrameSize' must be an integer of at least 2: received ${maxFrameSize}`,
    );
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip encoding when it must fit.
  if (text.length * 3 <= maxFrameSize) {
    yield text;
    return;
  }
  const bytes = encoder.encode(text);
  if (bytes.byteLength <= maxFrameSize) {
    yield text;
    return;
  }
  const payload = maxFrameSize - 1;
  for (let offset = 0; offset < bytes.byteLength; offset += payload) {
    const end = Math.min(offset + payload, bytes.byteLength);
    const frame = new Uint8Array(1 + end - offset);
    frame[0] = end === bytes.byteLength ? FRAME_LAST : FRAME_MORE;
    frame.set(bytes.subarray(offset, end), 1);
    yield frame;
  }
}

/** What one incoming frame amounted to. */
export type DecodedFrame =
  | { readonly kind: "message"; readonly text: string }
  | { readonly kind: "partial" }
  | { readonly kind: "keepalive" }
  | { readonly kind: "error"; readonly error: FrameError | MessageSizeError };

/**
 * Reassembles incoming frames into whole messages, enforcing a size cap.
 *
 * A message over the cap is refused as soon as it grows past it: its remaining
 * chunks are discarded and one error is reported, so the session goes on.
 *
 * @example Reassemble a chunked message
 * ```ts
 * import { encodeFrames, FrameDecoder } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * const decoder = new FrameDecoder(1024);
 * const results = [...encodeFrames('"héllo wörld"', 4)].map((f) => decoder.push(f));
 * assert.deepEqual(results.at(-1), { kind: "message", text: '"héllo wörld"' });
 * ```
 */
export class FrameDecoder {
  readonly #maxSize: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  #parts: Uint8Array[] = [];
  #size = 0;
  #discarding = false;

  /**
   * @param maxSize The largest message accepted, in UTF-8 bytes.
   * @throws {RangeError} If `maxSize` is not a positive integer.
   */
  constructor(maxSize: number) {
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) {
      throw new RangeError(
        `Cannot create frame decoder as 'maxSize' must be a positive integer: received ${maxSize}`,
      );
    }
    this.#maxSize = maxSize;
  }

  /**
   * Takes one frame as delivered by the channel.
   *
   * @param data A text frame, or a binary frame as `ArrayBuffer` or view.
   * @returns A whole message, a partial one, a keepalive, or an error.
   */
  push(data: string | ArrayBuffer | ArrayBufferView): DecodedFrame {
    if (typeof data === "string") return this.#text(data);
    const bytes = data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength === 0) {
      return this.#fail(
        new FrameError("Dropped an empty binary frame: a frame needs a header byte"),
      );
    }
    const header = bytes[0];
    if (header === FRAME_KEEPALIVE && bytes.byteLength === 1) return { kind: "keepalive" };
    if (header !== FRAME_MORE && header !== FRAME_LAST) {
      return this.#fail(
        new FrameError(
          `Dropped a binary frame with unknown header byte ${header}: expected a chunk (0 or 1) or a keepalive (2)`,
        ),
      );
    }
    const last = header === FRAME_LAST;
    if (this.#discarding) {
      if (last) this.#reset();
      return { kind: "partial" };
    }
    this.#size += bytes.byteLength - 1;
    if (this.#size > this.#maxSize) {
      const error = new MessageSizeError(this.#size, this.#maxSize);
      this.#parts = [];
      this.#discarding = !last;
      if (last) this.#reset();
      return { kind: "error", error };
    }
    this.#parts.push(bytes.subarray(1));
    if (!last) return { kind: "partial" };
    const parts = this.#parts;
    const size = this.#size;
    this.#reset();
    const whole = parts.length === 1 ? parts[0] : concat(parts, size);
    try {
      return { kind: "message", text: this.#decoder.decode(whole) };
    } catch (cause) {
      return this.#fail(
        new FrameError("Dropped a chunked message as it is not valid UTF-8", { cause }),
      );
    }
  }

  #text(text: string): DecodedFrame {
    if (this.#parts.length > 0 || this.#discarding) {
      // The sender never interleaves; an unfinished message cannot be completed.
      this.#reset();
    }
    // A string of n code units holds at least n UTF-8 bytes.
    if (text.length > this.#maxSize || encodedLength(text) > this.#maxSize) {
      return { kind: "error", error: new MessageSizeError(encodedLength(text), this.#maxSize) };
    }
    return { kind: "message", text };
  }

  #fail(error: FrameError): DecodedFrame {
    return { kind: "error", error };
  }

  #reset(): void {
    this.#parts = [];
    this.#size = 0;
    this.#discarding = false;
  }
}

/** The UTF-8 length of `text`, without allocating its encoding. */
function encodedLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const whole = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    whole.set(part, offset);
    offset += part.byteLength;
  }
  return whole;
}
