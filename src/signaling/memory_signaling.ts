import type { Signaling, SignalingMessage } from "./signaling.ts";

/**
 * One end of an in-memory signalling pair: messages sent on one end arrive on
 * the other, in order and asynchronously (never inside `send()`), with no polling.
 *
 * Messages are cloned with `structuredClone` on the way, as they would be
 * serialised on any real channel, so neither side can change what the other
 * received. Messages sent before the other end started are kept for it.
 *
 * @example Exchange a message
 * ```ts
 * import { MemorySignaling } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const [a, b] = MemorySignaling.createPair();
 * const received = new Promise((resolve) => (b.onmessage = resolve));
 * await b.start();
 * await a.send({ type: "hello", text: "hi" });
 * assert.deepEqual(await received, { type: "hello", text: "hi" });
 * await a.close();
 * ```
 */
export class MemorySignaling implements Signaling {
  #peer?: MemorySignaling;
  #started = false;
  #closed = false;
  #pending: SignalingMessage[] = [];

  /** Called for every message from the other end, in order. */
  onmessage?: (message: SignalingMessage) => void;
  /** Called once when either end closes. */
  onclose?: () => void;
  /** Never called: an in-memory pair has no failures short of closing. */
  onerror?: (error: Error) => void;

  /**
   * Creates two linked ends.
   *
   * @returns The two ends; what one sends, the other receives.
   *
   * @example Create a pair
   * ```ts
   * import { MemorySignaling } from "@mcp/webrtc";
   * import assert from "node:assert/strict";
   *
   * const [a, b] = MemorySignaling.createPair();
   * assert.ok(a instanceof MemorySignaling && b instanceof MemorySignaling);
   * await a.close();
   * ```
   */
  static createPair(): [MemorySignaling, MemorySignaling] {
    const a = new MemorySignaling();
    const b = new MemorySignaling();
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  /** Starts delivering messages, including those that arrived before. */
  start(): Promise<void> {
    if (this.#started) return Promise.resolve();
    this.#started = true;
    const pending = this.#pending;
    this.#pending = [];
    for (const message of pending) this.#deliver(message);
    return Promise.resolve();
  }

  /**
   * Sends a message to the other end.
   *
   * @throws {Error} If either end is closed.
   */
  send(message: SignalingMessage): Promise<void> {
    if (this.#closed || !this.#peer) {
      return Promise.reject(
        new Error("Cannot send signalling message as the memory signalling pair is closed"),
      );
    }
    this.#peer.#receive(structuredClone(message));
    return Promise.resolve();
  }

  /** Closes both ends; each fires `onclose` once. */
  close(): Promise<void> {
    const peer = this.#peer;
    this.#shut();
    if (peer) peer.#shut();
    return Promise.resolve();
  }

  #receive(message: SignalingMessage): void {
    if (this.#closed) return;
    if (this.#started) this.#deliver(message);
    else this.#pending.push(message);
  }

  #deliver(message: SignalingMessage): void {
    queueMicrotask(() => {
      if (!this.#closed) this.onmessage?.(message);
    });
  }

  #shut(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#peer = undefined;
    this.#pending = [];
    queueMicrotask(() => this.onclose?.());
  }
}
