import { WebRTCTransportError } from "../errors.ts";
import { SignalingBase } from "./_signaling_base.ts";
import type { SignalingMessage } from "./signaling.ts";

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
export class MemorySignaling extends SignalingBase {
  #peer?: MemorySignaling;

  /** Never called: an in-memory pair has no failures short of closing. */
  declare onerror?: (error: Error) => void;

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

  /**
   * Sends a message to the other end.
   *
   * @throws {WebRTCTransportError} If either end is closed.
   */
  send(message: SignalingMessage): Promise<void> {
    if (this.closing || !this.#peer) {
      return Promise.reject(
        new WebRTCTransportError(
          "Cannot send signalling message as the memory signalling pair is closed",
        ),
      );
    }
    this.#peer.accept(structuredClone(message));
    return Promise.resolve();
  }

  /** Closes the other end too; each fires `onclose` once. */
  protected override async closeCarrier(): Promise<void> {
    const peer = this.#peer;
    this.#peer = undefined;
    if (!peer) return;
    peer.#peer = undefined;
    await peer.close();
  }
}
