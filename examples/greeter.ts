/**
 * The greeter: an MCP server with a `greet` tool and a client that lists the
 * tools and calls it, over a real WebRTC data channel on this machine, with
 * in-memory signalling.
 *
 * Run: `deno run -A examples/greeter.ts`
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { MemorySignaling, WebRTCClientTransport, WebRTCServerTransport } from "../mod.ts";

// Peers on one machine: no STUN server, and only the loopback interface.
const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

const server = new McpServer({ name: "greeter", version: "1.0.0" });
server.registerTool(
  "greet",
  { description: "Greets someone by name", inputSchema: { name: z.string() } },
  ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}!` }] }),
);

const [clientSignaling, serverSignaling] = MemorySignaling.createPair();
await server.connect(new WebRTCServerTransport({ signaling: serverSignaling, ...local }));

const started = performance.now();
const client = new Client({ name: "greeter-client", version: "1.0.0" });
await client.connect(new WebRTCClientTransport({ signaling: clientSignaling, ...local }));
console.log(`connected over WebRTC in ${(performance.now() - started).toFixed(1)} ms`);

const { tools } = await client.listTools();
console.log("tools:", tools.map((tool) => tool.name).join(", "));
const result = await client.callTool({ name: "greet", arguments: { name: "WebRTC" } });
console.log("greet:", (result.content as { type: string; text: string }[])[0].text);

await client.close();
await server.close();
