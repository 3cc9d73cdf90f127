import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { bridge, type BridgeSide } from "./bridge.ts";
import { StreamTransport } from "./stdio.ts";

/** A notification of `size` characters. */
function note(size: number) {
  return {
    jsonrpc: "2.0" as const,
    method: "notifications/message",
    params: { level: "info", data: "x".repeat(size) },
  };
}

Deno.test("bridge holds at most maxQueuedBytes of messages for a side that stops reading: past it that side is closed, naming the limit, and the bridge ends", async () => {
  const [agent, agentSide] = InMemoryTransport.createLinkedPair();
  // A server whose stdin is never read: its first write never completes.
  const stuck = Promise.withResolvers<void>();
  const stdin = new WritableStream<Uint8Array>({ write: () => stuck.promise }, {
    highWaterMark: 1,
  });
  const child = new StreamTransport(new ReadableStream<Uint8Array>(), stdin);
  const errors: [BridgeSide, string][] = [];
  const running = bridge(agentSide, child, {
    maxQueuedBytes: 3_000_000,
    onerror: (side, error) => void errors.push([side, error.message]),
  });
  await agent.start();
  await running.started;
  try {
    // Each a million characters: the first is being written, two more wait, the fourth does not fit.
    for (let i = 0; i < 4; i++) await agent.send(note(1_000_000));
    await running.closed;
    assert.ok(
      errors.some(([side, message]) =>
        side === "b" && /would exceed 'maxQueuedBytes' \(3000000 characters/.test(message)
      ),
      JSON.stringify(errors.map(([side, message]) => [side, message.slice(0, 200)])),
    );
  } finally {
    stuck.resolve();
    await running.close();
  }
});
