/**
 * `deno task demo:browser` as a person runs it: it prints the page's address
 * and a ticket; the page and its script load from that address, the ticket
 * reaches the demo's desktop, and Ctrl+C stops it all.
 */
import assert from "node:assert/strict";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { dial, text } from "./_helpers.ts";

const root = new URL("..", import.meta.url);
const START_TIMEOUT_MS = 60_000;

/** Reads the child's output until `done` says it has what it needs, or the time is up. */
async function readUntil(
  stream: ReadableStream<Uint8Array>,
  done: (text: string) => boolean,
): Promise<string> {
  let output = "";
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => reader.cancel(), START_TIMEOUT_MS);
  try {
    while (!done(output)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      output += value;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return output;
}

Deno.test("deno task demo:browser serves the page on 127.0.0.1 and a desktop that its ticket reaches", async () => {
  const demo = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/browser/serve.ts"],
    cwd: root,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const output = await readUntil(demo.stdout, (text) => text.includes("Ctrl+C"));
    const page = /^ {2}(http:\/\/127\.0\.0\.1:\d+\/\?signal=ws:\/\/127\.0\.0\.1:\d+&ice=none)$/m
      .exec(output)?.[1];
    const ticket = /^ {2}(mcpwebrtc2\.guest\.\S+)$/m.exec(output)?.[1];
    assert.ok(page && ticket, `the demo printed an address and a ticket:\n${output}`);

    const html = await fetch(page);
    assert.equal(html.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await html.text(), /<script type="module" src="app\.js"><\/script>/);
    const script = await fetch(new URL("app.js", page));
    assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.ok((await script.text()).length > 100_000, "the bundled script is served");

    const client = await dial(ticket);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((tool) => tool.name), ["greet", "add", "convert_temperature"]);
      const result = await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
      assert.equal(text(result as CallToolResult), "42");
    } finally {
      await client.close();
    }
  } finally {
    demo.kill("SIGINT");
    const timer = setTimeout(() => demo.kill("SIGKILL"), 10_000);
    const status = await demo.status;
    clearTimeout(timer);
    await demo.stdout.cancel().catch(() => {});
    // Miniflare's exit hook ends the process on SIGINT with 130 (128 + SIGINT), as it ends
    // `deno task signal`; a demo still running would have been killed with SIGKILL instead.
    assert.ok(status.code === 0 || status.code === 130, `Ctrl+C stops the demo: ${status.code}`);
  }
});
