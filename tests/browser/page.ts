/**
 * The page's script, bundled for the browser, with the browser's own
 * `RTCPeerConnection` and `WebSocket`. Its query says what to do:
 * - `offerer`, `answerer`, `wrong`: a ticket to dial as an MCP client (the
 *   page makes the offer, the desktop does, a ticket the room refuses);
 * - `serve`: a signalling URL to listen on as an MCP server; the test server
 *   dials the ticket posted to `/dial` and answers with what it got.
 *
 * Posts every connection step to `/log` and all outcomes to `/result`.
 */
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { TicketSignaling, WebRTCClientTransport, WebRTCListener } from "../../mod.ts";
import { addLargeTool, exercise, type Outcome } from "./exercise.ts";

function note(line: string): void {
  fetch("/log", { method: "POST", body: line }).catch(() => {});
}

function dial(label: string, ticket: string, initiator: boolean): Promise<Outcome> {
  const told = (phase: string) => note(`${label}: ${phase}`);
  return exercise(
    () => {
      const transport = new WebRTCClientTransport({
        signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
        iceServers: [],
        connectTimeout: 10_000,
        initiator,
      });
      const started = performance.now();
      transport.onconnectstep = (step) =>
        note(`${label}: ${step} at ${Math.round(performance.now() - started)} ms`);
      return transport;
    },
    "browser",
    told,
  );
}

async function serve(url: string): Promise<Outcome> {
  const createServer = () => {
    const server = new McpServer({ name: "browser", version: "1.0.0" });
    server.registerTool(
      "greet",
      { inputSchema: { name: z.string() } },
      ({ name }) => ({ content: [{ type: "text", text: `Hello from the browser, ${name}!` }] }),
    );
    return addLargeTool(server);
  };
  const listener = await WebRTCListener.listen({ url, iceServers: [], createServer });
  note("serve: listening");
  listener.onagent = () => note("serve: an agent connected");
  listener.onerror = (error) => note(`serve: ${error.name}: ${error.message}`);
  try {
    const response = await fetch("/dial", { method: "POST", body: listener.ticket });
    return await response.json();
  } finally {
    await listener.close();
  }
}

note("page started");
// Whatever escapes the page's own handling is told too.
addEventListener("error", (event: Event) => note(`page error: ${(event as ErrorEvent).message}`));
addEventListener(
  "unhandledrejection",
  (event: Event) => note(`page rejection: ${String((event as PromiseRejectionEvent).reason)}`),
);
const query = new URLSearchParams(location.search);
const outcomes: Record<string, unknown> = {
  RTCPeerConnection: "RTCPeerConnection" in globalThis,
  Deno: "Deno" in globalThis,
};
for (const [key, initiator] of [["offerer", true], ["answerer", false], ["wrong", true]] as const) {
  const ticket = query.get(key);
  if (ticket) outcomes[key] = await dial(key, ticket, initiator);
}
const url = query.get("serve");
if (url) {
  outcomes.serve = await serve(url).catch((error) => ({ ok: false, message: String(error) }));
}
await fetch("/result", { method: "POST", body: JSON.stringify(outcomes) });
