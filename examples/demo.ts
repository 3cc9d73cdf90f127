/**
 * The whole story on one machine, with no account and no network beyond
 * loopback: a signalling worker (Cloudflare's runtime, workerd, through
 * Miniflare), a desktop MCP server behind it, and two agents that reach the
 * desktop with the ticket it hands out. Every step is printed with its time.
 *
 * Run: `deno task demo`
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { join } from "node:path";
import { TicketSignaling, WebRTCClientTransport, WebRTCListener } from "../mod.ts";
import { startLocalSignaling } from "../worker/local.ts";

const t0 = performance.now();
function step(who: string, what: string): void {
  const ms = (performance.now() - t0).toFixed(1).padStart(8);
  console.log(`${ms} ms  ${who.padEnd(8)} ${what}`);
}

// Peers on one machine: no STUN server, and only the loopback interface.
// Across the internet, leave both out (a public STUN server is the default).
const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

// 1. The signalling worker, as `wrangler deploy` would run it at the edge.
const worker = await startLocalSignaling();
step("edge", `signalling worker up at ${worker.url}`);

// 2. The desktop: a folder of files, served by an MCP server per agent.
const folder = await Deno.makeTempDir({ prefix: "mcp-webrtc-demo-" });
await Deno.writeTextFile(join(folder, "notes.txt"), "Meeting at noon.\n");
await Deno.writeTextFile(join(folder, "large.log"), "log line with some text\n".repeat(87_382));

function createDesktopServer(): McpServer {
  const server = new McpServer({ name: "desktop", version: "1.0.0" });
  server.registerTool(
    "greet",
    { description: "Greets someone by name", inputSchema: { name: z.string() } },
    ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}, from the desktop!` }] }),
  );
  server.registerTool(
    "read_file",
    {
      description: "Reads a file of the shared folder",
      inputSchema: { path: z.string().regex(/^[\w.-]+$/, "a file name in the shared folder") },
    },
    async ({ path }) => ({
      content: [{ type: "text", text: await Deno.readTextFile(join(folder, path)) }],
    }),
  );
  return server;
}

const listener = await WebRTCListener.listen({
  url: worker.url,
  createServer: ({ peer }) => {
    step("desktop", `agent ${peer} arrived: a fresh MCP server for it`);
    return createDesktopServer();
  },
  ...local,
});
step("desktop", "joined its room as host; ticket ready to hand to agents:");
console.log(`              ${listener.ticket!.slice(0, 60)}…`);

// 3. Two agents dial the desktop with nothing but the ticket.
async function agent(name: string): Promise<void> {
  const client = new Client({ name, version: "1.0.0" });
  const transport = new WebRTCClientTransport({
    signaling: new TicketSignaling(listener.ticket!),
    ...local,
  });
  const labels = {
    signaling: "joined the room (keys derived from the ticket)",
    offer: "offer sent (sealed with the ticket's key)",
    answer: "answer received and verified",
    ice: "ICE: network path found",
    dtls: "DTLS: encrypted session up",
    channel: 'data channel "mcp" open',
  };
  transport.onconnectstep = (s) => step(name, labels[s]);
  await client.connect(transport);
  const path = await transport.getConnectionPath();
  step(name, `MCP initialized (peer to peer via ${path?.localCandidateType ?? "?"} candidate)`);

  const { tools } = await client.listTools();
  step(name, `tools listed: ${tools.map((tool) => tool.name).join(", ")}`);

  const greeting = await client.callTool({ name: "greet", arguments: { name } });
  step(name, `greet → ${(greeting.content as { text: string }[])[0].text}`);

  const started = performance.now();
  const file = await client.callTool({ name: "read_file", arguments: { path: "large.log" } });
  const size = (file.content as { text: string }[])[0].text.length;
  const seconds = (performance.now() - started) / 1000;
  step(
    name,
    `read_file large.log → ${(size / 1048576).toFixed(1)} MiB in ${
      (seconds * 1000).toFixed(0)
    } ms (${(size / 1e6 / seconds).toFixed(0)} MB/s)`,
  );
  await client.close();
  step(name, "closed");
}

let failed = false;
try {
  await Promise.all([agent("agent-1"), agent("agent-2")]);
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await listener.close();
  step("desktop", "listener closed");
  await worker.close();
  step("edge", "signalling worker stopped");
  await Deno.remove(folder, { recursive: true });
}
if (failed) Deno.exit(1);
