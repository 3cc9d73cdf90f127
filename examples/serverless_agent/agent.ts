/**
 * A serverless MCP agent: a Cloudflare Worker that reaches a desktop's MCP
 * server with a ticket from its secrets and answers an HTTP request with a
 * tool's result. Workers have no `RTCPeerConnection`, so the connection runs
 * over the relay through the desktop's signalling room, sealed end to end
 * with keys the ticket authenticates; the room sees ciphertext only.
 *
 * - `GET /tools` lists the desktop's tools.
 * - `GET /call/<tool>?<argument>=<value>…` calls one (arguments as strings,
 *   or as a JSON object in `?json=`), and answers the tool's result as JSON.
 *
 * Run it locally with `deno task demo:serverless` (a desktop, the signalling
 * worker and this worker in Miniflare, all on 127.0.0.1), or deploy it:
 * `wrangler secret put MCP_TICKET` (the desktop's guest ticket), then
 * `wrangler deploy` in this directory.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { TicketSignaling, WebRTCConnection } from "../../mod.ts";

/** The worker's bindings. */
export interface Env {
  /** The desktop's guest ticket (`mcpwebrtc2.guest.…`): a secret. */
  MCP_TICKET?: string;
}

/** Milliseconds to connect through the room before answering 504. */
const CONNECT_TIMEOUT = 15_000;

/** Connects to the desktop of `ticket`, runs `use`, and closes the connection. */
async function withDesktop<T>(ticket: string, use: (client: Client) => Promise<T>): Promise<T> {
  const connection = new WebRTCConnection({
    signaling: () => new TicketSignaling(ticket, { hostTimeout: 10_000 }),
    connectTimeout: CONNECT_TIMEOUT,
    linger: 0,
  });
  const client = new Client({ name: "serverless-agent", version: "1.0.0" });
  try {
    await client.connect(connection.openTransport());
    return await use(client);
  } finally {
    await client.close().catch(() => {});
    await connection.close();
  }
}

/** The call's arguments: `?json={…}`, or each query parameter as a string. */
function argumentsOf(url: URL): Record<string, unknown> {
  const json = url.searchParams.get("json");
  if (json !== null) return JSON.parse(json);
  return Object.fromEntries(url.searchParams);
}

function problem(status: number, message: string): Response {
  return Response.json({ error: message }, { status });
}

export default {
  /** Answers `GET /tools` and `GET /call/<tool>`. */
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const ticket = env.MCP_TICKET?.trim();
    if (!ticket) {
      return problem(
        500,
        "Cannot reach the desktop as the MCP_TICKET secret is not set: run `wrangler secret put MCP_TICKET` with the desktop's guest ticket",
      );
    }
    try {
      if (url.pathname === "/tools") {
        const tools = await withDesktop(ticket, (client) => client.listTools());
        return Response.json(tools);
      }
      const call = url.pathname.match(/^\/call\/([^/]+)$/);
      if (call) {
        let args: Record<string, unknown>;
        try {
          args = argumentsOf(url);
        } catch {
          return problem(400, "Cannot call the tool as ?json= is not a JSON object");
        }
        const name = decodeURIComponent(call[1]);
        const result = await withDesktop(
          ticket,
          (client) => client.callTool({ name, arguments: args }),
        );
        return Response.json(result);
      }
      return problem(404, "Nothing here: GET /tools, or GET /call/<tool>?<argument>=<value>");
    } catch (error) {
      return problem(502, `Cannot reach the desktop's MCP server: ${(error as Error).message}`);
    }
  },
};
