/**
 * The A2A demo as users run it: two processes on 127.0.0.1, the agent and the
 * desktop, under Deno and under Node (20 has no Promise.withResolvers, no
 * global WebSocket and no RTCPeerConnection), sealed or not.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);

/** Runs the demo with `flags`; returns its output once it exited. */
async function demo(...flags: string[]): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/a2a/main.ts", ...flags],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

/** Checks that `steps` happened in this order. */
function assertInOrder(output: string, steps: string[]): void {
  let from = 0;
  for (const step of steps) {
    const at = output.indexOf(step, from);
    assert.ok(at >= 0, `step "${step}" is missing or out of order:\n${output}`);
    from = at;
  }
}

/**
 * Checks that the demo's steps happened, each in an order that causes it (the
 * desktop makes its server once the agent has its answer, so the agent's
 * channel may open before or after that), and the answer came.
 */
function assertAnswered({ code, output }: { code: number; output: string }): void {
  assert.equal(code, 0, output);
  assertInOrder(output, [
    "agent listening",
    "desktop  message sent",
    "agent    message received",
    "agent    webrtc channel",
    "agent    tool called",
    "desktop  task status",
  ]);
  assertInOrder(output, [
    "agent    message received",
    "desktop  agent asks for the MCP server",
    "agent    tool called",
  ]);
  assert.match(output, /answer "notes\.txt says: Buy milk\. Call Ada\."/);
}

Deno.test("The A2A demo runs as two Deno processes", async () => {
  assertAnswered(await demo());
});

Deno.test("The A2A demo runs as two Node processes, sealed", async () => {
  const node = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output()
    .catch(() => undefined);
  assert.ok(node?.success, "Node.js (node) must be installed to run this test");
  assertAnswered(await demo("--node", "--sealed"));
});

Deno.test("The A2A demo runs as two Node processes, not sealed", async () => {
  assertAnswered(await demo("--node"));
});
