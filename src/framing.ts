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
 * - A binary frame {@linkcode FRAME_READ} then a float64 (big-endian) reports
 *   how many bytes of chunk frames (headers included) the sender of the
 *   report has read on this channel so far. It is sent only to a peer that
 *   asked for it with the notification `mcp-webrtc/window` (see
 *   `DataChannelTransport`), and may come between the chunks of a message.
 *
 * Over 400 lines for a reason: the encoder and the decoder are the two
 * halves of one wire format, each the other's specification, and the budget
 * the decoder reserves from is checked where the decoder takes the memory;
 * split, a change to the format would be made in two places.
 *
 * @module
 */

import { FrameError, MessageSizeError } from "./errors.ts";
import { isHighSurrogate, utf8Length } from "./_utf8.ts";
import { JsonAssembler } from "./_json_pieces.ts";

/** Header byte of a chunk frame after which more chunks of the message follow. */
export const FRAME_MORE = 0x00;
/** Header byte of the chunk frame that ends a message. */
export const FRAME_LAST = 0x01;
/** The one byte of a keepalive frame. */
export const FRAME_KEEPALIVE = 0x02;
/** Header byte of a frame reporting the bytes of chunk frames read so far. */
export const FRAME_READ = 0x03;

/** A {@linkcode FRAME_READ} frame reporting `bytes` read. */
export function readReportFrame(bytes: number): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(9);
  frame[0] = FRAME_READ;
  new DataView(frame.buffer).setFloat64(1, bytes);
  return frame;
}

/** The smallest frame size: a header byte and one UTF-8 character of up to 4 bytes. */
const MIN_FRAME_SIZE = 5;
/** How much of each end of a refused message is kept to tell which message it was. */
const ENVELOPE_PEEK = 1024;

const encoder = new TextEncoder();

/**
 * How many bytes of a chunk are decoded into one string. A string larger than
 * V8's largest regular object (128 KiB) gets pages of its own, fresh from the
 * kernel each time: decoding 256 KiB chunks whole took 84–115 ms per 16 MiB,
 * in 32 KiB slices 2–3 ms.
 */
const DECODE_SLICE = 32_768;

/**
 * Splits one serialised message into the frames that carry it. Each chunk is
 * encoded straight from the text, so a large message is never held twice.
 * The text may come in pieces (see `jsonPieces`): they are read only as
 * the frames are taken, so a message's serialisation can overlap its sending.
 *
 * @param text The message as JSON text, whole or as pieces in order (a surrogate
 * pair may be parted between two pieces).
 * @param maxFrameSize The largest frame the peer accepts, in bytes: a message
 * that fits goes as one text frame.
 * @param options `chunkSize`: the largest chunk frame of a message that does
 * not fit, in bytes (at most `maxFrameSize`; `maxFrameSize` if omitted).
 * `buffer`: a buffer of at least that many bytes to write every chunk into,
 * instead of a new one per chunk; each chunk is then a view of it, valid until
 * the next is taken (for a sender that hands each chunk to a channel that
 * copies it, as `RTCDataChannel.send()` does).
 * @returns The frames, in order: one string, or binary chunks.
 * @throws {RangeError} If `maxFrameSize` or `chunkSize` is smaller than 5
 * bytes, or `buffer` is smaller than a chunk.
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
 * assert.deepEqual([...encodeFrames(['{"a":', "1}"], 1024)], ['{"a":1}']);
 * // What fits 64 bytes is one text frame; anything larger, chunks of at most 16.
 * assert.deepEqual([...encodeFrames("x".repeat(20), 64, { chunkSize: 16 })], ["x".repeat(20)]);
 * const chunks = [...encodeFrames("x".repeat(100), 64, { chunkSize: 16 })] as Uint8Array[];
 * assert.ok(chunks.length === 7 && chunks.every((chunk) => chunk.byteLength <= 16));
 * // Written into one buffer: each chunk is taken (here copied) before the next.
 * const buffer = new Uint8Array(16);
 * const copies: Uint8Array[] = [];
 * for (const chunk of encodeFrames("x".repeat(100), 64, { chunkSize: 16, buffer })) {
 *   copies.push((chunk as Uint8Array).slice());
 * }
 * assert.deepEqual(copies, chunks);
 * ```
 */
export function* encodeFrames(
  text: string | Iterable<string>,
  maxFrameSize: number,
  options: { chunkSize?: number; buffer?: Uint8Array } = {},
): Generator<string | Uint8Array> {
  const { chunkSize = maxFrameSize, buffer } = options;
  for (const [name, size] of [["maxFrameSize", maxFrameSize], ["chunkSize", chunkSize]] as const) {
    if (!Number.isSafeInteger(size) || size < MIN_FRAME_SIZE) {
      throw new RangeError(
        `Cannot frame message as '${name}' must be an integer of at least ${MIN_FRAME_SIZE}: received ${size}`,
      );
    }
  }
  const chunk = Math.min(chunkSize, maxFrameSize);
  if (buffer !== undefined && buffer.byteLength < chunk) {
    throw new RangeError(
      `Cannot frame message as 'buffer' holds ${buffer.byteLength} bytes, less than a chunk of ${chunk}`,
    );
  }
  const frameOf = () => buffer ? buffer.subarray(0, chunk) : new Uint8Array(chunk);
  const iterator = (typeof text === "string" ? [text] : text)[Symbol.iterator]();
  // The pieces read until they are more than a frame could hold, kept apart:
  // joined, a large message's first pieces would be copied into one string
  // before its first chunk could go.
  const head: string[] = [];
  let headLength = 0;
  let next = iterator.next();
  while (!next.done) {
    head.push(next.value);
    headLength += next.value.length;
    if (headLength > maxFrameSize) break;
    next = iterator.next();
  }
  if (next.done) {
    const whole = head.join("");
    if (fitsOneFrame(whole, maxFrameSize)) return yield whole;
  }
  let frame = frameOf();
  let used = 1;
  /** Writes `text` on from the current chunk, giving each chunk it fills. */
  function* write(text: string): Generator<Uint8Array> {
    for (let rest = text; rest.length > 0;) {
      const { read, written } = encoder.encodeInto(rest, frame.subarray(used));
      used += written;
      if (read === rest.length) return;
      rest = rest.slice(read);
      frame[0] = FRAME_MORE;
      yield used === chunk ? frame : frame.subarray(0, used);
      frame = frameOf();
      used = 1;
    }
  }
  // A high surrogate that ends a piece is written with the next piece, which
  // may begin with its other half; a lone one becomes U+FFFD, as on a channel.
  let carried = "";
  for (const piece of chained(head, iterator)) {
    const text = carried + piece;
    const cut = text.length > 0 && isHighSurrogate(text.charCodeAt(text.length - 1))
      ? text.length - 1
      : text.length;
    carried = text.slice(cut);
    yield* write(cut === text.length ? text : text.slice(0, cut));
  }
  yield* write(carried);
  frame[0] = FRAME_LAST;
  yield used === chunk ? frame : frame.subarray(0, used);
}

/** The pieces of `head`, then those `rest` has left. */
function* chained(head: string[], rest: Iterator<string>): Generator<string> {
  yield* head;
  for (let next = rest.next(); !next.done; next = rest.next()) yield next.value;
}

/**
 * The message as its one text frame, when {@linkcode encodeFrames} would send
 * it so: `pieces` is a single string that fits `maxFrameSize` in UTF-8.
 * `undefined` otherwise. Lets a sender skip the generator for small messages.
 */
export function oneTextFrame(pieces: Iterable<string>, maxFrameSize: number): string | undefined {
  if (!Array.isArray(pieces) || pieces.length !== 1) return undefined;
  const text: unknown = pieces[0];
  return typeof text === "string" && fitsOneFrame(text, maxFrameSize) ? text : undefined;
}

/** Whether `text` fits one frame of `maxFrameSize` bytes in UTF-8. */
export function fitsOneFrame(text: string, maxFrameSize: number): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: skip measuring when it must fit.
  return text.length * 3 <= maxFrameSize ||
    (text.length <= maxFrameSize && utf8Length(text) <= maxFrameSize);
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
  /** A chunked message, already parsed: with the decoder's `parse` option only. */
  | { readonly kind: "value"; readonly value: unknown }
  | { readonly kind: "partial" }
  | { readonly kind: "keepalive" }
  /** The peer's report of the bytes of chunk frames it read so far. */
  | { readonly kind: "read"; readonly bytes: number }
  | { readonly kind: "error"; readonly error: FrameError }
  | {
    readonly kind: "oversize";
    readonly error: MessageSizeError;
    /** Which message it was, so the sender can be told instead of waiting. */
    readonly envelope: RefusedEnvelope;
    /** The name of the budget that refused it, when not the size cap. */
    readonly budget?: string;
  };

/**
 * A budget of bytes that incoming messages may hold while they are
 * unfinished, in nested scopes as a resource manager keeps them (a desktop,
 * then each agent's connection): a reservation counts against this scope and
 * every scope above it, and is refused whole if any of them would go over
 * its limit. The scope that refused is returned, so that the refusal can
 * name it; nothing is reserved then.
 *
 * @example An agent's scope inside a desktop's
 * ```ts
 * import { MemoryBudget } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * const desktop = new MemoryBudget("maxUnfinishedBytes", 100);
 * const one = new MemoryBudget("maxUnfinishedBytesPerAgent", 60, desktop);
 * const two = new MemoryBudget("maxUnfinishedBytesPerAgent", 60, desktop);
 * assert.equal(one.reserve(50), undefined);
 * assert.equal(one.reserve(20), one); // over this agent's 60
 * assert.equal(two.reserve(55), desktop); // over the desktop's 100
 * assert.equal(two.reserve(50), undefined);
 * one.release(50);
 * assert.equal(desktop.used, 50);
 * ```
 */
export class MemoryBudget {
  /** The name of the limit, as the option that sets it is called. */
  readonly name: string;
  /** The most bytes this scope (with those below it) may hold. */
  readonly limit: number;
  /** The scope this one's reservations also count against. */
  readonly parent?: MemoryBudget;
  /** This scope, then each one above it. */
  readonly #chain: MemoryBudget[];
  #used = 0;

  /**
   * @param name The name of the limit, for the refusal's message.
   * @param limit The most bytes held at once.
   * @param parent The enclosing scope, if any.
   * @throws {RangeError} If `limit` is not a positive integer.
   */
  constructor(name: string, limit: number, parent?: MemoryBudget) {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot create budget as '${name}' must be a positive integer: received ${limit}`,
      );
    }
    this.name = name;
    this.limit = limit;
    this.parent = parent;
    this.#chain = parent ? [this, ...parent.#chain] : [this];
  }

  /** The bytes held now in this scope and those below it. */
  get used(): number {
    return this.#used;
  }

  /**
   * Reserves `bytes` in this scope and every scope above it.
   *
   * @returns `undefined` if reserved, else the scope that refused (nothing is reserved).
   */
  reserve(bytes: number): MemoryBudget | undefined {
    const refused = this.#chain.find((scope) => scope.#used + bytes > scope.limit);
    if (refused) return refused;
    for (const scope of this.#chain) scope.#used += bytes;
    return undefined;
  }

  /** Gives back `bytes` reserved earlier, in this scope and every scope above it. */
  release(bytes: number): void {
    for (const scope of this.#chain) scope.#used = Math.max(0, scope.#used - bytes);
  }
}

/** Options of {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Whether to give chunked messages parsed, as `value` results.
   *
   * @default {false}
   */
  parse?: boolean;
  /**
   * The budget an unfinished message reserves its bytes from, chunk by chunk,
   * before it keeps them. A message whose chunk is refused is dropped as one
   * over the size cap is (its remaining chunks are discarded, and its end
   * gives an `oversize` result naming the budget); what it held is given back.
   *
   * @default {undefined}
   */
  budget?: MemoryBudget;
}

/**
 * Reassembles incoming frames into whole messages, enforcing a size cap.
 *
 * A message over the cap is refused: its remaining chunks are discarded and,
 * once it has ended, one `oversize` result says which message it was (its
 * top-level `id` and `method`, read from its first and last bytes), so the
 * session goes on and the sender can be answered. Invalid UTF-8 decodes to
 * U+FFFD, as a browser's data channel does.
 *
 * Each chunk is decoded as it arrives. With the `parse` option a chunked
 * message is also parsed as its chunks arrive and comes out as a `value`: a
 * large string in it is never held as part of a whole-message text, and
 * no frame costs more than its own share of the work.
 *
 * @example Reassemble a chunked message
 * ```ts
 * import { encodeFrames, FrameDecoder } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * const decoder = new FrameDecoder(1024);
 * const results = [...encodeFrames('"héllo wörld"', 6)].map((f) => decoder.push(f));
 * assert.deepEqual(results.at(-1), { kind: "message", text: '"héllo wörld"' });
 *
 * const parsing = new FrameDecoder(1024, { parse: true });
 * const parsed = [...encodeFrames('{"a":"héllo"}', 6)].map((f) => parsing.push(f));
 * assert.deepEqual(parsed.at(-1), { kind: "value", value: { a: "héllo" } });
 * ```
 */
export class FrameDecoder {
  readonly #maxSize: number;
  readonly #parse: boolean;
  readonly #budget?: MemoryBudget;
  /** Bytes of the unfinished message reserved from the budget. */
  #reserved = 0;
  /** The budget that refused the message being discarded, if one did. */
  #refusedBy?: MemoryBudget;
  #decoder = new TextDecoder();
  #received = "";
  #assembler?: JsonAssembler;
  #invalid?: unknown;
  #size = 0;
  #discarding = false;
  /** Whether the message being discarded was abandoned: its end is not reported. */
  #abandoned = false;
  #head = "";
  #tail: Uint8Array = new Uint8Array(0);

  /**
   * @param maxSize The largest message accepted, in UTF-8 bytes.
   * @param options Parsing, and the budget of unfinished messages.
   * @throws {RangeError} If `maxSize` is not a positive integer.
   */
  constructor(maxSize: number, options: FrameDecoderOptions = {}) {
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) {
      throw new RangeError(
        `Cannot create frame decoder as 'maxSize' must be a positive integer: received ${maxSize}`,
      );
    }
    this.#maxSize = maxSize;
    this.#parse = options.parse ?? false;
    this.#budget = options.budget;
  }

  /** Whether a chunked message has begun and not ended (nor been abandoned). */
  get unfinished(): boolean {
    return this.#size > 0 && !this.#abandoned;
  }

  /**
   * Drops the unfinished message, if any, and gives back what it held; the
   * rest of its chunks, should they still come, are discarded, and its end
   * gives nothing.
   *
   * @returns Which message it was, read from its first bytes; `undefined` if none was unfinished.
   */
  abandon(): RefusedEnvelope | undefined {
    if (!this.unfinished) return undefined;
    const envelope = readEnvelope(this.#head, "");
    const size = this.#size;
    this.#reset();
    // Discard what is left of it; `#abandoned` makes its end silent.
    this.#size = size;
    this.#discarding = true;
    this.#abandoned = true;
    return envelope;
  }

  /**
   * Takes one frame as delivered by the channel.
   *
   * @param data A text frame, or a binary frame as `ArrayBuffer` or view.
   * @returns A whole message, a partial one, a keepalive, or an error.
   */
  push(data: string | ArrayBuffer | ArrayBufferView): DecodedFrame {
    if (typeof data === "string") return this.#textFrame(data);
    const bytes = data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength === 0) {
      return this.#fail("Dropped an empty binary frame: a frame needs a header byte");
    }
    const header = bytes[0];
    if (header === FRAME_KEEPALIVE && bytes.byteLength === 1) return { kind: "keepalive" };
    if (header === FRAME_READ && bytes.byteLength === 9) {
      const read = new DataView(bytes.buffer, bytes.byteOffset, 9).getFloat64(1);
      if (Number.isSafeInteger(read) && read >= 0) return { kind: "read", bytes: read };
    }
    if (header !== FRAME_MORE && header !== FRAME_LAST) {
      return this.#fail(
        `Dropped a binary frame with unknown header byte ${header}: expected a chunk (0 or 1), a keepalive (2) or a read report (3 and 8 bytes)`,
      );
    }
    const last = header === FRAME_LAST;
    const payload = bytes.subarray(1);
    this.#size += payload.byteLength;
    if (!this.#discarding) {
      // Reserved before it is kept; a whole message in one chunk is never held.
      const refusedBy = this.#size > this.#maxSize || last || !this.#budget
        ? undefined
        : this.#budget.reserve(payload.byteLength);
      if (refusedBy === undefined && !last && this.#budget) this.#reserved += payload.byteLength;
      if (this.#size > this.#maxSize || refusedBy) {
        // Keep the start, for the envelope; drop the rest.
        this.#keepHead(this.#decoder.decode(payload, { stream: true }));
        this.#received = "";
        this.#assembler = undefined;
        this.#discarding = true;
        this.#refusedBy = refusedBy;
        this.#budget?.release(this.#reserved);
        this.#reserved = 0;
      }
    }
    if (this.#discarding) {
      this.#keepTail(payload);
      if (!last) return { kind: "partial" };
      if (this.#abandoned) {
        this.#reset();
        return { kind: "partial" };
      }
      const refusedBy = this.#refusedBy;
      const result: DecodedFrame = {
        kind: "oversize",
        error: refusedBy
          ? new MessageSizeError(
            this.#size,
            refusedBy.limit,
            `Dropped an incoming message of ${this.#size} bytes as the budget for unfinished messages '${refusedBy.name}' (${refusedBy.limit} bytes) was spent by the messages under way: send large messages one at a time, or again once those under way have finished`,
          )
          : new MessageSizeError(this.#size, this.#maxSize),
        envelope: readEnvelope(this.#head, new TextDecoder().decode(this.#tail)),
        ...(refusedBy && { budget: refusedBy.name }),
      };
      this.#reset();
      return result;
    }
    for (let start = 0; start < payload.byteLength || start === 0; start += DECODE_SLICE) {
      const end = Math.min(payload.byteLength, start + DECODE_SLICE);
      const piece = this.#decoder.decode(payload.subarray(start, end), {
        stream: !last || end < payload.byteLength,
      });
      this.#keepHead(piece);
      if (!this.#parse) this.#received += piece;
      else if (this.#invalid === undefined) {
        try {
          (this.#assembler ??= new JsonAssembler()).push(piece);
        } catch (cause) {
          this.#invalid = cause;
        }
      }
    }
    if (!last) return { kind: "partial" };
    if (!this.#parse) {
      const text = this.#received;
      this.#reset();
      return { kind: "message", text };
    }
    let result: DecodedFrame;
    try {
      if (this.#invalid !== undefined) throw this.#invalid;
      result = { kind: "value", value: (this.#assembler ?? new JsonAssembler()).end() };
    } catch (cause) {
      result = {
        kind: "error",
        error: new FrameError("Dropped an incoming message as it is not JSON", { cause }),
      };
    }
    this.#reset();
    return result;
  }

  #keepHead(piece: string): void {
    if (this.#head.length < ENVELOPE_PEEK) {
      this.#head += piece.slice(0, ENVELOPE_PEEK - this.#head.length);
    }
  }

  #textFrame(text: string): DecodedFrame {
    // The sender never interleaves; an unfinished message cannot be completed.
    if (this.#size > 0) this.#reset();
    if (!fitsOneFrame(text, this.#maxSize)) {
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
    this.#budget?.release(this.#reserved);
    this.#reserved = 0;
    this.#refusedBy = undefined;
    this.#abandoned = false;
    this.#decoder = new TextDecoder();
    this.#received = "";
    this.#assembler = undefined;
    this.#invalid = undefined;
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
