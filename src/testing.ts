/**
 * In-memory stand-ins for a WebRTC data channel, so code built on
 * {@linkcode DataChannelTransport} can be tested and demonstrated without a
 * network.
 *
 * @module
 */

import { MAX_FRAME_SIZE } from "./constants.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";

/** Options of {@linkcode createLinkedChannelPair}. */
export interface LinkedChannelPairOptions {
  /**
   * The largest frame `send()` accepts, in bytes; a larger one throws, as a
   * real data channel does.
   *
   * @default {262144}
   */
  maxMessageSize?: number;
  /**
   * How many bytes leave each channel's buffer per event-loop turn, so tests
   * can watch backpressure.
   *
   * @default {Infinity}
   */
  bytesPerTick?: number;
  /**
   * Whether the channels start `"open"` rather than `"connecting"` (then they
   * open on the next turn).
   *
   * @default {false}
   */
  open?: boolean;
}

/**
 * One end of a linked in-memory channel pair, with a record of every frame it
 * sent.
 */
export interface MemoryChannel extends DataChannelLike {
  /** Every frame this end sent, in order. */
  readonly sent: (string | Uint8Array)[];
  /** The largest `bufferedAmount` this end ever reached. */
  readonly peakBufferedAmount: number;
}

/**
 * Creates two linked in-memory channels shaped like `RTCDataChannel`: frames
 * sent on one arrive on the other, in order, on a later turn of the event loop.
 *
 * @param options Size limit, drain rate and initial state.
 * @returns The two ends.
 *
 * @example Send a frame across
 * ```ts
 * import { createLinkedChannelPair } from "@mcp/webrtc/testing";
 * import assert from "node:assert/strict";
 *
 * const [a, b] = createLinkedChannelPair({ open: true });
 * const got = new Promise<MessageEvent>((resolve) =>
 *   b.addEventListener("message", (event) => resolve(event as MessageEvent))
 * );
 * a.send("hello");
 * assert.equal((await got).data, "hello");
 * a.close();
 * ```
 */
export function createLinkedChannelPair(
  options: LinkedChannelPairOptions = {},
): [MemoryChannel, MemoryChannel] {
  const a = new LinkedChannel(options);
  const b = new LinkedChannel(options);
  a.link(b);
  b.link(a);
  if (!options.open) {
    setTimeout(() => {
      a.markOpen();
      b.markOpen();
    }, 0);
  }
  return [a, b];
}

class LinkedChannel extends EventTarget implements MemoryChannel {
  readonly label = "mcp";
  readyState: string;
  binaryType = "blob";
  bufferedAmountLowThreshold = 0;
  readonly sent: (string | Uint8Array)[] = [];
  #bufferedAmount = 0;
  #peak = 0;
  #queue: (string | Uint8Array)[] = [];
  #scheduled = false;
  #peer?: LinkedChannel;
  readonly #maxMessageSize: number;
  readonly #bytesPerTick: number;

  constructor(options: LinkedChannelPairOptions) {
    super();
    this.#maxMessageSize = options.maxMessageSize ?? MAX_FRAME_SIZE;
    this.#bytesPerTick = options.bytesPerTick ?? Infinity;
    this.readyState = options.open ? "open" : "connecting";
  }

  get bufferedAmount(): number {
    return this.#bufferedAmount;
  }

  get peakBufferedAmount(): number {
    return this.#peak;
  }

  link(peer: LinkedChannel): void {
    this.#peer = peer;
  }

  markOpen(): void {
    if (this.readyState !== "connecting") return;
    this.readyState = "open";
    this.dispatchEvent(new Event("open"));
  }

  send(data: string | Uint8Array): void {
    if (this.readyState !== "open") {
      throw new DOMException(
        `Failed to execute 'send' on 'RTCDataChannel': readyState is '${this.readyState}'`,
        "InvalidStateError",
      );
    }
    const size = typeof data === "string"
      ? new TextEncoder().encode(data).byteLength
      : data.byteLength;
    if (size > this.#maxMessageSize) {
      throw new TypeError(`Message too large: ${size} bytes, max ${this.#maxMessageSize}`);
    }
    const frame = typeof data === "string" ? data : data.slice();
    this.sent.push(frame);
    this.#queue.push(frame);
    this.#bufferedAmount += size;
    this.#peak = Math.max(this.#peak, this.#bufferedAmount);
    this.#schedule();
  }

  close(): void {
    if (this.readyState === "closed" || this.readyState === "closing") return;
    this.readyState = "closing";
    setTimeout(() => {
      this.#shut();
      if (this.#peer) this.#peer.#shut();
    }, 0);
  }

  #shut(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.#queue = [];
    this.#bufferedAmount = 0;
    this.dispatchEvent(new Event("close"));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(() => this.#flush(), 0);
  }

  #flush(): void {
    this.#scheduled = false;
    let budget = this.#bytesPerTick;
    const before = this.#bufferedAmount;
    while (this.#queue.length > 0 && budget > 0 && this.readyState === "open") {
      const frame = this.#queue.shift()!;
      const size = typeof frame === "string"
        ? new TextEncoder().encode(frame).byteLength
        : frame.byteLength;
      budget -= size;
      this.#bufferedAmount -= size;
      if (this.#peer) this.#peer.#deliver(frame);
    }
    if (
      before > this.bufferedAmountLowThreshold &&
      this.#bufferedAmount <= this.bufferedAmountLowThreshold
    ) {
      this.dispatchEvent(new Event("bufferedamountlow"));
    }
    if (this.#queue.length > 0) this.#schedule();
  }

  #deliver(frame: string | Uint8Array): void {
    if (this.readyState !== "open") return;
    const data = typeof frame === "string" ? frame : frame.slice().buffer;
    this.dispatchEvent(new MessageEvent("message", { data }));
  }
}
