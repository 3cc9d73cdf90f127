/** Shared set-up for the two-peer tests: real node-datachannel peers on loopback. */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import {
  MemorySignaling,
  WebRTCClientTransport,
  WebRTCServerTransport,
  type WebRTCTransportOptions,
} from "../mod.ts";

/** Peers on one machine: no STUN, only the loopback interface. */
export const LOCAL = {
  iceServers: [],
  rtcConfiguration: { bindAddress: "127.0.0.1" },
} satisfies Partial<WebRTCTransportOptions>;

/** A server with a few tools the tests use. */
export function createTestServer(): McpServer {
  const server = new McpServer({ name: "test-server", version: "1.0.0" }, {
    capabilities: { logging: {} },
  });
  server.registerTool(
    "greet",
    { description: "Greets", inputSchema: { name: z.string() } },
    ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}!` }] }),
  );
  server.registerTool(
    "blob",
    { description: "Returns a text of the given size", inputSchema: { size: z.number() } },
    ({ size }) => ({ content: [{ type: "text", text: blobText(size) }] }),
  );
  return server;
}

/** A deterministic text of `size` characters with multi-byte characters in it. */
export function blobText(size: number): string {
  const unit = "abcdefghé€😀0123456789";
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

/** Connects a client and a server over a real data channel. */
export async function connectPair(
  server: McpServer = createTestServer(),
  options: Partial<WebRTCTransportOptions> = {},
  client: Client = new Client({ name: "test-client", version: "1.0.0" }),
) {
  const [a, b] = await MemorySignaling.createMemorySignalingPair();
  const serverTransport = new WebRTCServerTransport({ signaling: b, ...LOCAL, ...options });
  const clientTransport = new WebRTCClientTransport({ signaling: a, ...LOCAL, ...options });
  await server.connect(serverTransport);
  await client.connect(clientTransport);
  return {
    client,
    server,
    clientTransport,
    serverTransport,
    async close() {
      await client.close();
      await server.close();
    },
  };
}

/** Resolves once `condition()` holds, polling every 10 ms, or rejects after `ms`. */
export function until(condition: () => boolean, ms = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`${what} not met within ${ms} ms`));
      setTimeout(check, 10);
    };
    check();
  });
}
