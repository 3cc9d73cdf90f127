import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import { ChildProcessTransport, StreamTransport } from "./stdio.ts";

Deno.test("StreamTransport delivers a progress notification read in one chunk with its response before the response", async () => {
  const toServer = new TransformStream<Uint8Array, Uint8Array>();
  const toClient = new TransformStream<Uint8Array, Uint8Array>();
  const encoder = new TextEncoder();
  // A server that answers each request at once; for tools/call it first sends
  // a progress notification, in the same write (so the client reads both in one chunk).
  const serving = (async () => {
    const writer = toClient.writable.getWriter();
    let buffer = "";
    for await (const text of toServer.readable.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (message.id === undefined) continue;
        const lines: unknown[] = [];
        if (message.method === "initialize") {
          lines.push({
            jsonrpc: "2.0",
            id: message.id,
            result: {
              protocolVersion: message.params.protocolVersion,
              capabilities: { tools: {} },
              serverInfo: { name: "one-chunk", version: "1" },
            },
          });
        } else if (message.method === "tools/call") {
          const token = message.params._meta.progressToken;
          lines.push(
            {
              jsonrpc: "2.0",
              method: "notifications/progress",
              params: { progressToken: token, progress: 1, total: 1 },
            },
            { jsonrpc: "2.0", id: message.id, result: { content: [] } },
          );
        }
        await writer.write(
          encoder.encode(lines.map((line) => JSON.stringify(line) + "\n").join("")),
        );
      }
    }
    // The client closed its end first.
    await writer.close().catch(() => {});
  })();
  const client = new Client({ name: "test", version: "1" });
  await client.connect(new StreamTransport(toClient.readable, toServer.writable));
  const progress: number[] = [];
  await client.callTool({ name: "x", arguments: {} }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  assert.deepEqual(progress, [1]);
  await client.close();
  await serving;
});

Deno.test("ChildProcessTransport.exited resolves only once every line the child wrote on stderr was passed to onstderr", async () => {
  for (let round = 0; round < 3; round++) {
    const lines: string[] = [];
    const transport = new ChildProcessTransport(Deno.execPath(), {
      args: [
        "eval",
        "const line = 'x'.repeat(1023) + '\\n'; for (let i = 0; i < 512; i++) Deno.stderr.writeSync(new TextEncoder().encode(line)); Deno.stderr.writeSync(new TextEncoder().encode('last words\\n')); Deno.exit(3);",
      ],
      onstderr: (line) => lines.push(line),
    });
    await transport.start();
    // Busy while the child writes and exits: its exit and its output are then
    // both waiting to be read, and the output takes longer to read.
    const until = Date.now() + 300;
    while (Date.now() < until) { /* busy */ }
    const status = await transport.exited;
    assert.equal(status.code, 3);
    assert.equal(lines.at(-1), "last words", `round ${round}: ${lines.length} lines read`);
    await transport.close();
  }
});
