/**
 * The connection steps as the page shows them: in the order they happened.
 * A browser may report the data channel open before the peer connection says
 * "connected" (two event sources), yet a channel opens only over an
 * encrypted (DTLS) session: the page shows DTLS first.
 *
 * @module
 */
import type { ConnectStep } from "../../../mod.ts";

/**
 * Turns the steps a transport reports into the steps to show, each once, in
 * the order they happened.
 *
 * @example A channel reported before DTLS
 * ```ts
 * import { StepOrder } from "./steps.ts";
 * import assert from "node:assert/strict";
 *
 * const order = new StepOrder();
 * assert.deepEqual(order.take("ice"), ["ice"]);
 * assert.deepEqual(order.take("channel"), ["dtls", "channel"]);
 * assert.deepEqual(order.take("dtls"), []);
 * ```
 */
export class StepOrder {
  readonly #shown = new Set<ConnectStep>();

  /**
   * The steps to show now that `step` was reported.
   *
   * @param step The step the transport reported.
   * @returns The steps to show, in order: none for one shown already, and DTLS
   * before a channel that opened over an ICE path before DTLS was reported (a
   * relayed connection has neither ICE nor DTLS, and gets none).
   */
  take(step: ConnectStep): ConnectStep[] {
    const steps: ConnectStep[] = [step];
    if (step === "channel" && this.#shown.has("ice")) steps.unshift("dtls");
    const fresh = steps.filter((each) => !this.#shown.has(each));
    for (const each of fresh) this.#shown.add(each);
    return fresh;
  }
}
