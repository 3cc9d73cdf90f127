/**
 * The wire format on the data channel.
 *
 * - A **text** frame holds exactly one whole JSON-RPC message, as the reference
 *   implementations send it, so small messages interoperate with them.
 * - A message larger than one frame travels as **binary** chunk frames: a
 *   one-byte header ({@linkcode FRAME_MORE} or {@linkcode FRAME_LAST}) then a
 *   slice of the message's UTF-8 bytes, reassembled in order on the ordered,
 *   reliable channel. This module's sender never splits a character, but the
 *   decoder accepts chunks cut anywhere.
 * - A binary frame holding only {@linkcode FRAME_KEEPALIVE} proves the peer is
 *   alive and carries nothing.
 *
 * @module
 */

import { FrameError, MessageSizeError } from "./errors.ts";
import { utf8Length } from "./_utf8.ts";

/** Header byte of a chunk frame after which more chunks of the message follow. */
export const FRAME_MORE = 0x00;
/** Header byte of the chunk frame that ends a message. */
export const FRAME_LAST = 0x01;
/** The one byte of a keepalive frame. */
export const FRAME_KEEPALIVE = 0x02;

/** The smallest frame size: a header byte and one UTF-8 character of up to 4 bytes. */
const MIN_FRAME_SIZE = 5;
/** How much of each end of a refused message is kept to tell which message it was. */
const ENVELOPE_PEEK = 1024;

const encoder = new TextEncoder();

/**
 * Splits one serialised message into the frames that carry it. Each chunk is
 * encoded straight from the string, so a large message is never held twice.
 *
 * @param text The message as JSON text.
 * @param maxFrameSize The largest frame the peer accepts, in bytes.
 * @returns The frames, in order: one string, or binary chunks.
 * @throws {RangeError} If `maxFrameSize` is smaller than 5 bytes.
 *
 * @example A small message is one text frame; a large one is chunked
 * ```ts
 * import { encodeFrames, FRAME_LAST, FRAME_MORE } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...encodeFrames('{"a":1}', 1024)], ['{"a":1}']);
 * const frames = [...encodeFrames("x".repeat(20), 8)] as Uint8Array[];
 * assert.deepEqual(frames.map((frame) => frame[0]), [FRAME_MORE, FRAME_MORE, FRAME_LAST]);
 * assert.ok(frames.every((frame) => frame.byteLength <= 8));
 * ```
 */
export function* encodeFrames(
  text: string,
  maxFrameSize: number,
): Generator<string | Uint8Array> {
  if (!Number.isSafeInteger(maxFrameSize) || maxFrameSize < MIN_FRAME_SIZE) {
    throw new RangeError(
      `Cannot frame message as 'maxFrameSize' must be an integer of at least ${MIN_FRAME_SIZE}: received ${maxFrameSize}`,
    );
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip measuring when it must fit.
  if (
    text.length * 3 <= maxFrameSize ||
    (text.length <= maxFrameSize && utf8Length(text) <= maxFrameSize)
  ) {
    yield text;
    return;
  }
  let rest = text;
  while (rest.length > 0) {
    const frame = new Uint8Array(maxFrameSize);
    const { read, written } = encoder.encodeInto(rest, frame.subarray(1));
    rest = rest.slice(read);
    frame[0] = rest.length === 0 ? FRAME_LAST : FRAME_MORE;
    yield written + 1 === maxFrameSize ? frame : frame.subarray(0, written + 1);
  }
}

/** The top-level `id` and `method` of a refused message, when they could be read. */
export interface RefusedEnvelope {
  /** The JSON-RPC id, if the message had one at its top level. */
  readonly id?: string | number;
  /** The JSON-RPC method, if the message was a request or notification. */
  readonly method?: string;
}

/** What one incoming frame amounted to. */
export type DecodedFrame =
  | { readonly kind: "message"; readonly text: string }
  | { readonly kind: "partial" }
  | { readonly kind: "keepalive" }
  | { readonly kind: "error"; readonly error: FrameError }
  | {
    readonly kind: "oversize";
    readonly error: MessageSizeError;
    /** Which message it was, so the sender can be told instead of waiting. */
    readonly envelope: RefusedEnvelope;
  };

/**
 * Reassembles incoming frames into whole messages, enforcing a size cap.
 *
 * A message over the cap is refused: its remaining chunks are discarded and,
 * once it has ended, one `oversize` result says which message it was (its
 * top-level `id` and `method`, read from its first and last bytes), so the
 * session goes on and the sender can be answered. Invalid UTF-8 decodes to
 * U+FFFD, as a browser's data channel does.
 *
 * @example Reassemble a chunked message
 * ```ts
 * import { encodeFrames, FrameDecoder } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * const decoder = new FrameDecoder(1024);
 * const results = [...encodeFrames('"héllo wörld"', 6)].map((f) => decoder.push(f));
 * assert.deepEqual(results.at(-1), { kind: "message", text: '"héllo wörld"' });
 * ```
 */
export class FrameDecoder {
  readonly #maxSize: number;
  #decoder = new TextDecoder();
  #parts: string[] = [];
  #size = 0;
  #discarding = false;
  #head = "";
  #tail: Uint8Array = new Uint8Array(0);

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
      return this.#fail("Dropped an empty binary frame: a frame needs a header byte");
    }
    const header = bytes[0];
    if (header === FRAME_KEEPALIVE && bytes.byteLength === 1) return { kind: "keepalive" };
    if (header !== FRAME_MORE && header !== FRAME_LAST) {
      return this.#fail(
        `Dropped a binary frame with unknown header byte ${header}: expected a chunk (0 or 1) or a keepalive (2)`,
      );
    }
    const last = header === FRAME_LAST;
    const payload = bytes.subarray(1);
    this.#size += payload.byteLength;
    if (!this.#discarding && this.#size > this.#maxSize) {
      // Keep the start, for the envelope; drop the rest.
      this.#head = (this.#parts.join("") + this.#decoder.decode(payload, { stream: true }))
        .slice(0, ENVELOPE_PEEK);
      this.#parts = [];
      this.#discarding = true;
    }
    if (this.#discarding) {
      this.#keepTail(payload);
      if (!last) return { kind: "partial" };
      const result: DecodedFrame = {
        kind: "oversize",
        error: new MessageSizeError(this.#size, this.#maxSize),
        envelope: readEnvelope(this.#head, new TextDecoder().decode(this.#tail)),
      };
      this.#reset();
      return result;
    }
    this.#parts.push(this.#decoder.decode(payload, { stream: !last }));
    if (!last) return { kind: "partial" };
    const text = this.#parts.length === 1 ? this.#parts[0] : this.#parts.join("");
    this.#reset();
    return { kind: "message", text };
  }

  #text(text: string): DecodedFrame {
    // The sender never interleaves; an unfinished message cannot be completed.
    if (this.#size > 0) this.#reset();
    if (text.length > this.#maxSize || utf8Length(text) > this.#maxSize) {
      return {
        kind: "oversize",
        error: new MessageSizeError(utf8Length(text), this.#maxSize),
        envelope: readEnvelope(text.slice(0, ENVELOPE_PEEK), text.slice(-ENVELOPE_PEEK)),
      };
    }
    return { kind: "message", text };
  }

  #keepTail(payload: Uint8Array): void {
    const keep = Math.min(ENVELOPE_PEEK, this.#tail.byteLength + payload.byteLength);
    const tail = new Uint8Array(keep);
    const fromPayload = Math.min(keep, payload.byteLength);
    tail.set(this.#tail.subarray(this.#tail.byteLength - (keep - fromPayload)), 0);
    tail.set(payload.subarray(payload.byteLength - fromPayload), keep - fromPayload);
    this.#tail = tail;
  }

  #fail(message: string): DecodedFrame {
    return { kind: "error", error: new FrameError(message) };
  }

  #reset(): void {
    this.#decoder = new TextDecoder();
    this.#parts = [];
    this.#size = 0;
    this.#discarding = false;
    this.#head = "";
    this.#tail = new Uint8Array(0);
  }
}

const ID = /"id"\s*:\s*(-?\d{1,16}|"(?:[^"\\]|\\.){0,256}")/;
const METHOD = /"method"\s*:\s*"((?:[^"\\]|\\.){1,256})"/;

/**
 * Reads the top-level `id` and `method` of a JSON object from its first and
 * last characters: only the keys before its first nested value, and after its
 * last one, are at the top level.
 */
function readEnvelope(head: string, tail: string): RefusedEnvelope {
  const nested = head.slice(1).search(/[{[]/);
  const top = [nested < 0 ? head : head.slice(0, nested + 1)];
  const end = Math.max(tail.lastIndexOf("}", tail.length - 2), tail.lastIndexOf("]"));
  if (end >= 0) top.push(tail.slice(end + 1));
  let id: string | number | undefined;
  let method: string | undefined;
  for (const part of top) {
    const idMatch = part.match(ID);
    if (idMatch && id === undefined) {
      try {
        id = JSON.parse(idMatch[1]);
      } catch {
        // Not a valid id; leave it unknown.
      }
    }
    const methodMatch = part.match(METHOD);
    if (methodMatch && method === undefined) {
      try {
        method = JSON.parse(`"${methodMatch[1]}"`);
      } catch {
        // Not a valid method; leave it unknown.
      }
    }
  }
  return { ...(id !== undefined && { id }), ...(method !== undefined && { method }) };
}
