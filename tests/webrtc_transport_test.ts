import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
// @ts-types="@modelcontextprotocol/sdk/types"
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import {
  MemorySignaling,
  PeerLostError,
  WebRTCClientTransport,
  WebRTCServerTransport,
} from "../mod.ts";
import {
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_KEEPALIVE_INTERVAL,
  MESSAGE_TOO_LARGE,
} from "../src/constants.ts";
import { useClock } from "../src/_clock.ts";
import type { Signaling } from "../src/signaling/signaling.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { blobText, connectPair, createTestServer, LOCAL, until } from "./_helpers.ts";

function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

Deno.test("WebRTC transports carry the greeter: list tools and call one", async () => {
  const pair = await connectPair();
  const { tools } = await pair.client.listTools();
  assert.deepEqual(tools.map((tool) => tool.name).sort(), ["blob", "greet"]);
  const result = await pair.client.callTool({ name: "greet", arguments: { name: "peer" } });
  assert.equal(text(result), "Hello, peer!");
  await pair.close();
});

Deno.test("WebRTC transports carry a 300 kB and a 16 MiB tool result intact", async () => {
  const pair = await connectPair();
  for (const size of [300_000, 16 * 1024 * 1024]) {
    const result = await pair.client.callTool({ name: "blob", arguments: { size } }, undefined, {
      timeout: 60_000,
    });
    const got = text(result);
    assert.equal(got.length, size);
    assert.equal(got, blobText(size));
  }
  // The session goes on after large messages.
  assert.equal(
    text(await pair.client.callTool({ name: "greet", arguments: { name: "x" } })),
    "Hello, x!",
  );
  await pair.close();
});

Deno.test("WebRTC transports serve 500 concurrent calls, each answered once", async () => {
  const pair = await connectPair();
  const results = await Promise.all(
    Array.from(
      { length: 500 },
      (_, i) => pair.client.callTool({ name: "greet", arguments: { name: `n${i}` } }),
    ),
  );
  assert.deepEqual(results.map(text), Array.from({ length: 500 }, (_, i) => `Hello, n${i}!`));
  await pair.close();
});

Deno.test("WebRTC transports carry server-to-client progress, logging and sampling", async () => {
  const server = createTestServer();
  server.registerTool(
    "work",
    { description: "Reports progress, logs, and asks the client's model", inputSchema: {} },
    async (_args, extra) => {
      for (let step = 1; step <= 3; step++) {
        await extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken: extra._meta?.progressToken ?? 0, progress: step, total: 3 },
        });
      }
      await server.sendLoggingMessage({ level: "info", data: "working" });
      const reply = await server.server.createMessage({
        messages: [{ role: "user", content: { type: "text", text: "2+2?" } }],
        maxTokens: 10,
      });
      return {
        content: [{ type: "text", text: `model said ${(reply.content as { text: string }).text}` }],
      };
    },
  );
  const client = new Client({ name: "c", version: "1" }, { capabilities: { sampling: {} } });
  const logs: unknown[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(n.params.data);
  });
  client.setRequestHandler(CreateMessageRequestSchema, () => ({
    role: "assistant",
    model: "test",
    content: { type: "text", text: "4" },
  }));
  const pair = await connectPair(server, {}, client);
  const progress: number[] = [];
  const result = await client.callTool({ name: "work", arguments: {} }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  assert.equal(text(result), "model said 4");
  assert.deepEqual(progress, [1, 2, 3]);
  await until(() => logs.length === 1);
  assert.deepEqual(logs, ["working"]);
  await pair.close();
});

for (const side of ["client", "server"] as const) {
  Deno.test(`WebRTC transports: closing the ${side} fires onclose on the other side within 2 s`, async () => {
    const pair = await connectPair();
    let clientClosed = 0;
    let serverClosed = 0;
    pair.clientTransport.onclose = ((previous) => () => {
      clientClosed++;
      previous?.();
    })(pair.clientTransport.onclose);
    pair.serverTransport.onclose = ((previous) => () => {
      serverClosed++;
      previous?.();
    })(pair.serverTransport.onclose);
    const started = Date.now();
    if (side === "client") await pair.client.close();
    else await pair.server.close();
    await until(() => clientClosed === 1 && serverClosed === 1, 2_000, "both sides closed");
    assert.ok(Date.now() - started < 2_000);
    await assert.rejects(
      () => pair.client.callTool({ name: "greet", arguments: { name: "late" } }),
      /closed|Not connected/i,
    );
    await pair.close();
    assert.equal(clientClosed, 1, "onclose fired once on the client");
    assert.equal(serverClosed, 1, "onclose fired once on the server");
  });
}

Deno.test("WebRTCClientTransport.send() after close rejects clearly", async () => {
  const pair = await connectPair();
  await pair.clientTransport.close();
  await assert.rejects(
    () => pair.clientTransport.send({ jsonrpc: "2.0", id: 1, method: "ping" }),
    /Cannot send message as the WebRTC transport is closed/,
  );
  await pair.close();
});

Deno.test("WebRTCClientTransport.start() twice throws with a hint about connect()", async () => {
  const pair = await connectPair();
  await assert.rejects(
    () => pair.clientTransport.start(),
    /connect\(\) calls start\(\) automatically/,
  );
  await pair.close();
});

Deno.test("WebRTC transports fail a call at once, and keep the session, when its result exceeds the receive cap", async () => {
  const server = createTestServer();
  const pair = await connectPair(server, { maxReceiveSize: 100_000 });
  const errors: Error[] = [];
  const previous = pair.clientTransport.onerror;
  pair.clientTransport.onerror = (error) => {
    errors.push(error);
    previous?.(error);
  };
  const started = Date.now();
  await assert.rejects(
    () => pair.client.callTool({ name: "blob", arguments: { size: 200_000 } }),
    (error: Error & { code?: number }) => {
      assert.equal(error.code, MESSAGE_TOO_LARGE);
      assert.match(error.message, /exceeds the receive cap.*maxReceiveSize/);
      return true;
    },
  );
  assert.ok(Date.now() - started < 5_000, "the caller is told at once, not after its timeout");
  assert.ok(errors.some((error) => error.name === "MessageSizeError"));
  assert.equal(
    text(await pair.client.callTool({ name: "greet", arguments: { name: "y" } })),
    "Hello, y!",
  );
  await pair.close();
});

Deno.test("WebRTC transports answer a request over the server's receive cap with an error", async () => {
  const server = createTestServer();
  const [a, b] = MemorySignaling.createPair();
  await server.connect(
    new WebRTCServerTransport({ signaling: b, ...LOCAL, maxReceiveSize: 50_000 }),
  );
  const client = new Client({ name: "c", version: "1" });
  await client.connect(new WebRTCClientTransport({ signaling: a, ...LOCAL }));
  await assert.rejects(
    () => client.callTool({ name: "greet", arguments: { name: "n".repeat(80_000) } }),
    (error: Error & { code?: number }) => error.code === MESSAGE_TOO_LARGE,
  );
  assert.equal(
    text(await client.callTool({ name: "greet", arguments: { name: "ok" } })),
    "Hello, ok!",
  );
  await client.close();
  await server.close();
});

Deno.test("McpServer tools can take a schema over WebRTC", async () => {
  const server = createTestServer();
  server.registerTool("add", { inputSchema: { a: z.number(), b: z.number() } }, ({ a, b }) => ({
    content: [{ type: "text", text: String(a + b) }],
  }));
  const pair = await connectPair(server);
  assert.equal(text(await pair.client.callTool({ name: "add", arguments: { a: 2, b: 3 } })), "5");
  await pair.close();
});

Deno.test("A WebRTC transport is the one session of a connection of its own, and closing it closes that connection", async () => {
  const pair = await connectPair();
  const client = pair.clientTransport.connection;
  const server = pair.serverTransport.connection;
  assert.equal(client.sessions, 1);
  assert.equal(server.sessions, 1);
  assert.equal(client.dials, 1);
  assert.ok(client.connected && server.connected);
  const closed = Promise.all([
    new Promise<void>((resolve) => (client.onclose = resolve)),
    new Promise<void>((resolve) => (server.onclose = resolve)),
  ]);
  await pair.client.close();
  // The other side's connection goes too: its one session ended.
  await closed;
  assert.equal(client.connected, false);
  assert.equal(server.connected, false);
  assert.throws(() => client.openTransport(), /connection is closed/);
  await pair.close();
});

Deno.test("A WebRTC transport told goodbye by its peer says none back (the peer has left) and closes its signalling once the peer is let go", async () => {
  const [a, b] = MemorySignaling.createPair();
  const events: string[] = [];
  let closed = false;
  // A carrier that delivers each message a turn later, as a request does, and
  // drops what it has not delivered when it closes.
  const carrier: Signaling = {
    start: (options) => b.start?.(options) ?? Promise.resolve(),
    send: async (message) => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (closed) throw new Error(`${message.type} dropped: the signalling closed first`);
      await b.send(message);
      events.push(`${message.type} sent`);
    },
    close: async () => {
      closed = true;
      events.push("signalling closed");
      await b.close();
    },
    get onmessage() {
      return b.onmessage;
    },
    set onmessage(handler) {
      b.onmessage = handler;
    },
  };
  const server = new WebRTCServerTransport({ signaling: carrier, ...LOCAL });
  const client = new WebRTCClientTransport({ signaling: a, ...LOCAL });
  const serverClosed = new Promise<void>((resolve) => (server.onclose = resolve));
  try {
    await server.start();
    await client.start();
    await until(() => server.connected);
    // The client's goodbye, while its channel is still open.
    await a.send({ type: "bye", reason: "leaving" });
    await serverClosed;
    assert.equal(events.at(-1), "signalling closed");
    assert.ok(!events.includes("bye sent"), events.join(", "));
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("A WebRTC transport's liveness is its connection's: a peer that goes silent is reported as PeerLostError, then onclose, once idleTimeout has passed", async () => {
  const [a, b] = MemorySignaling.createPair();
  const server = new WebRTCServerTransport({ signaling: b, ...LOCAL });
  const clock = new ManualClock(0);
  useClock(server, clock);
  const errors: Error[] = [];
  server.onerror = (error) => errors.push(error);
  const closed = new Promise<void>((resolve) => (server.onclose = resolve));
  await server.start();
  // A client that announces the framing on its channel, then never sends a frame.
  const client = new WebRTCClientTransport({ signaling: a, ...LOCAL, keepaliveInterval: 0 });
  try {
    await client.start();
    await until(() => server.connected, 5_000, "the server's session open");
    // No loss at exactly the idle timeout; noticed 1 ms after it, not at the next keepalive.
    await clock.advance(DEFAULT_IDLE_TIMEOUT);
    assert.equal(errors.length, 0, errors.join("\n"));
    await clock.advance(DEFAULT_KEEPALIVE_INTERVAL);
    await until(() => errors.length > 0, 2_000, "the silent peer reported");
    assert.ok(errors[0] instanceof PeerLostError, String(errors[0]));
    assert.match(errors[0].message, /sent nothing for 8001 ms \(idleTimeout is 8000 ms\)/);
    await closed;
    assert.equal(server.connection.connected, false);
  } finally {
    await client.close();
    await server.close();
  }
});
