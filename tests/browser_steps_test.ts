/**
 * The browser page's connection steps (`examples/browser/page/steps.ts`):
 * shown once each, in the order they happened, whatever order the browser
 * reports them in.
 */
import assert from "node:assert/strict";
import { StepOrder } from "../examples/browser/page/steps.ts";
import type { ConnectStep } from "../mod.ts";

function shown(reported: ConnectStep[]): ConnectStep[] {
  const order = new StepOrder();
  return reported.flatMap((step) => order.take(step));
}

Deno.test("a data channel reported open before DTLS is shown after DTLS, and DTLS only once", () => {
  assert.deepEqual(
    shown(["signaling", "offer", "answer", "ice", "channel", "dtls"]),
    ["signaling", "offer", "answer", "ice", "dtls", "channel"],
  );
});

Deno.test("steps reported in order are shown as reported, each once", () => {
  assert.deepEqual(
    shown(["signaling", "offer", "answer", "ice", "ice", "dtls", "channel", "channel"]),
    ["signaling", "offer", "answer", "ice", "dtls", "channel"],
  );
});

Deno.test("a relayed connection, with no ICE path, shows no DTLS step it never had", () => {
  assert.deepEqual(shown(["signaling", "offer", "answer", "channel"]), [
    "signaling",
    "offer",
    "answer",
    "channel",
  ]);
});
