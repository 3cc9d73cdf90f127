/**
 * One side of the NAT lab's resume over TURN, run inside a network namespace
 * by `lab.ts` (`startScript`):
 * `deno run -A tests/nat/_resume.ts desktop <signalling URL>` or
 * `deno run -A tests/nat/_resume.ts agent <ticket>`.
 *
 * Neither side is given ICE servers: both take the TURN credentials the
 * room hands out, and neither falls back to the room's relay
 * (`relayAfter: false`), so every connection goes through ICE.
 *
 * The desktop is a `WebRTCListener` whose `McpServer` has `count` and a
 * `slow` tool that answers once an agent resumed; it prints its ticket. The
 * agent is a `WebRTCConnection` with `resume` on (a new `TicketSignaling`
 * per dial) and an MCP `Client`: it connects, calls `count`, starts `slow`,
 * awaits the resume, the slow result and the next `count`, then says
 * `done`. Each side prints one line per event: {@linkcode RESUME_PREFIX}
 * and a {@linkcode ResumeEvent} as JSON.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  type ConnectionPath,
  TicketSignaling,
  WebRTCConnection,
  WebRTCListener,
} from "../../mod.ts";
import { deadline } from "../../src/_async.ts";
import { text } from "../_helpers.ts";

/** What starts an event line. */
export const RESUME_PREFIX = "@@resume ";
/** The bound on each awaited step of either side. */
export const RESUME_STEP = 20_000;

/** One event a side prints. */
export type ResumeEvent =
  | { kind: "ticket"; ticket: string }
  | { kind: "server" | "initialized" | "slow-started" | "closed" }
  | { kind: "connected"; path?: ConnectionPath }
  | { kind: "result"; tool: string; text: string }
  | { kind: "pathlost"; message: string }
  | { kind: "attempt"; attempt: number; previous?: string }
  | { kind: "resumed"; path?: ConnectionPath; ms: number }
  | { kind: "resumefail" | "error"; message: string }
  | { kind: "done" };

function say(event: ResumeEvent): void {
  console.log(RESUME_PREFIX + JSON.stringify(event));
}

async function desktop(url: string): Promise<void> {
  let counter = 0;
  let resumed = Promise.withResolvers<void>();
  const listener = await WebRTCListener.listen({
    url,
    relayAfter: false,
    createServer: () => {
      say({ kind: "server" });
      const server = new McpServer({ name: "nat-lab-resume-desktop", version: "1.0.0" });
      server.registerTool("count", {}, () => ({
        content: [{ type: "text", text: String(++counter) }],
      }));
      server.registerTool("slow", {}, async () => {
        resumed = Promise.withResolvers();
        say({ kind: "slow-started" });
        await deadline(resumed.promise, RESUME_STEP);
        return { content: [{ type: "text", text: "slow done" }] };
      });
      server.server.oninitialized = () => say({ kind: "initialized" });
      server.server.onclose = () => say({ kind: "closed" });
      return server;
    },
  });
  listener.onerror = (error) => say({ kind: "error", message: error.message });
  listener.onagentresume = (_agent, _was, { path, ms }) => {
    say({ kind: "resumed", path, ms });
    resumed.resolve();
  };
  say({ kind: "ticket", ticket: listener.ticket! });
  const stop = async () => {
    await deadline(listener.close(), 3_000).catch(() => {});
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
}

async function agent(ticket: string): Promise<void> {
  const connection = new WebRTCConnection({
    relayAfter: false,
    linger: 0,
    resume: true,
    signaling: () => new TicketSignaling(ticket, { hostTimeout: 5_000 }),
  });
  const resumed = Promise.withResolvers<void>();
  connection.onpathlost = (error) => say({ kind: "pathlost", message: error.message });
  connection.onresumeattempt = (attempt, previous) =>
    say({ kind: "attempt", attempt, previous: previous?.message });
  connection.onresume = ({ path, ms }) => {
    say({ kind: "resumed", path, ms });
    resumed.resolve();
  };
  connection.onresumefail = (error) => say({ kind: "resumefail", message: error.message });
  const client = new Client({ name: "nat-lab-resume-agent", version: "1.0.0" });
  client.onerror = (error) => say({ kind: "error", message: error.message });
  const call = async (tool: string) =>
    say({
      kind: "result",
      tool,
      text: text(await deadline(client.callTool({ name: tool }), RESUME_STEP)),
    });
  try {
    await deadline(client.connect(connection.openTransport()), RESUME_STEP);
    say({ kind: "connected", path: await connection.getConnectionPath() });
    await call("count");
    const slow = deadline(client.callTool({ name: "slow" }), 2 * RESUME_STEP);
    slow.catch(() => {});
    await deadline(resumed.promise, RESUME_STEP);
    say({ kind: "result", tool: "slow", text: text(await slow) });
    await call("count");
    say({ kind: "done" });
  } catch (error) {
    say({ kind: "error", message: (error as Error).message });
  } finally {
    await deadline(client.close(), 3_000).catch(() => {});
    await deadline(connection.close(), 3_000).catch(() => {});
  }
  Deno.exit(0);
}

if (import.meta.main) {
  const [role, argument] = Deno.args;
  if (role === "desktop") await desktop(argument);
  else if (role === "agent") await agent(argument);
  else {throw new TypeError(
      `Cannot run the resume side as its role must be desktop or agent: ${role}`,
    );}
}
