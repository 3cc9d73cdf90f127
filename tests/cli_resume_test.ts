/**
 * `serve` and `connect` keep a session across a lost path, as real processes
 * on 127.0.0.1 with the local worker: the agent's process is stopped (as a
 * laptop sleeps) until the desktop has taken its path as lost, then goes on.
 */
import assert from "node:assert/strict";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { startAgent, startServe, TEST_SERVER, until, withWorker } from "./_cli_helpers.ts";

function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

Deno.test(
  "serve and connect resume a session whose agent's path was lost while a call was in flight: the call completes on the same server process, and both print the loss and the resume",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, ["--", ...TEST_SERVER]);
    const agent = await startAgent(ticket);
    try {
      const { client, transport } = agent;
      const server = text(await client.callTool({ name: "pid" }));
      await serve.stderrMatch(/Agent 1 connected via host/);
      const call = client.callTool({ name: "sleep", arguments: { ms: 1_000 } }, undefined, {
        timeout: 60_000,
      });
      // The agent's machine sleeps: nothing comes from it until the desktop takes its path as lost.
      const pid = transport.pid!;
      Deno.kill(pid, "SIGSTOP");
      try {
        await serve.stderrMatch(/Agent 1's path was lost \(.*\): its sessions are held/, 30_000);
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
      // The call in flight completes, on the same server process, with its state.
      assert.equal(text(await call), "slept 1000 ms");
      assert.equal(text(await client.callTool({ name: "pid" })), server);
      await serve.stderrMatch(
        /Agent 1 is back \(as agent 2\) via host \(127\.0\.0\.1:\d+\) after \d+ ms: its sessions resumed/,
      );
      await until(
        () => /Resumed via host/.test(agent.stderr.join("\n")),
        10_000,
        "connect's resumed line",
      );
      const printed = agent.stderr.join("\n");
      assert.match(printed, /Lost the path to the desktop \(.+\): dialling it again to resume/);
      assert.match(printed, /Dialling the desktop again \(attempt 1\)/);
      assert.match(printed, /Resumed via host \(127\.0\.0\.1:\d+\) after \d+ ms/);
      // One server process served it all: no second session was opened.
      assert.doesNotMatch(serve.stderr, /opened session 2/);
    } finally {
      await agent.client.close();
      await serve.kill();
    }
  }),
);
