/**
 * The CLI on the relay path: `serve` and `connect` that find no ICE path (no
 * candidates on either side) move to the room's relay by themselves, and
 * their status lines say so.
 */
import assert from "node:assert/strict";
import { startLocalSignaling } from "../worker/local.ts";
import { killAll, startAgent, startServe, TEST_SERVER } from "./_cli_helpers.ts";
import { text } from "./_helpers.ts";

/** Neither side gathers a candidate (TURN only, and no TURN server): ICE cannot succeed. */
const NO_PATH = ["--relay-only"];

Deno.test("serve and connect without an ICE path reach each other over the relay, and their status lines say so", async () => {
  const worker = await startLocalSignaling();
  try {
    const { serve, ticket } = await startServe(worker.url, [...NO_PATH, "--", ...TEST_SERVER]);
    const agent = await startAgent(ticket, undefined, NO_PATH);
    const result = await agent.client.callTool({ name: "pid", arguments: {} });
    assert.ok(text(result).length > 0);
    await serve.stderrMatch(
      /Agent 1 connected via relay-ws \(the signalling room's relay, end-to-end encrypted\)/,
    );
    assert.ok(
      agent.stderr.some((line) => /Connected via relay-ws/.test(line)),
      agent.stderr.join("\n"),
    );
    await agent.client.close();
  } finally {
    await killAll();
    await worker.close();
  }
});
