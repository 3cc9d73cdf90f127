/**
 * The `mcp-webrtc` command line: bridge an existing stdio or HTTP MCP server
 * on a desktop to agents over WebRTC (`serve`), reach it from the agent's side
 * as stdio or local Streamable HTTP (`connect`), and run a local signalling
 * service (`signal`); `doctor` checks which path agents would get.
 *
 * ```sh
 * # On the desktop: prints the ticket to give to the agent
 * deno run -A jsr:@mcp/webrtc/cli serve --signal wss://signal.example -- npx -y @modelcontextprotocol/server-everything
 * # On the agent's side: any stdio MCP client can launch this as its server command
 * deno run -A jsr:@mcp/webrtc/cli connect mcpwebrtc2.guest.…
 * ```
 *
 * Exit codes: see {@linkcode ExitCode}.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { connect } from "./connect.ts";
import { doctor } from "./doctor.ts";
import { ExitCode, exitCodeFor } from "./exit.ts";
import { escapeControls } from "./log.ts";
import { invite, listInvites, revoke } from "./invites.ts";
import { serve } from "./serve.ts";
import { signal } from "./signal.ts";

export { ExitCode } from "./exit.ts";

const HELP = `mcp-webrtc: MCP over WebRTC, for existing servers and clients

Usage:
  mcp-webrtc serve [options] -- <command> [args...]   on the desktop: bridge a stdio MCP server
  mcp-webrtc serve [options] --url <endpoint>          on the desktop: bridge a Streamable HTTP server
  mcp-webrtc connect [options] <ticket>                on the agent's side: speak MCP on stdio
  mcp-webrtc connect --http HOST:PORT <ticket>         on the agent's side: serve Streamable HTTP
  mcp-webrtc invite NAME[=TOOL,…] --host-ticket-file FILE
                                                       while serve runs: a ticket for one agent
  mcp-webrtc revoke NAME --host-ticket-file FILE       while serve runs: take that ticket back now
  mcp-webrtc invites --host-ticket-file FILE           while serve runs: list the invites
  mcp-webrtc signal [--port N]                         run a local signalling service
  mcp-webrtc doctor [--signal URL] [--json]            check which path agents would get to you

Run mcp-webrtc <command> --help for a command's options.

Exit codes:
  0  done, or stopped by SIGINT/SIGTERM, or the MCP client closed stdin
  1  unexpected failure
  2  bad command line, or a bad, expired or host ticket
  3  the signalling service is unreachable, refused us, or was lost for good
  4  the desktop could not be reached: not in its room, refused the agent
     (limit reached, ticket expired) or no network path in time
  5  the MCP server command was not found
  6  the connection to the remote MCP server was lost`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve,
  connect,
  invite,
  revoke,
  invites: listInvites,
  signal,
  doctor,
};

/**
 * Runs the command line and returns the exit code; errors are printed on
 * stderr, never thrown.
 *
 * @param args The arguments, e.g. `Deno.args`.
 * @returns The exit code, one of {@linkcode ExitCode}.
 *
 * @example Print the help
 * ```ts
 * import { ExitCode, main } from "@mcp/webrtc/cli";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["--help"]), ExitCode.OK);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(HELP);
    return name === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    report(
      new UsageError(
        `Unknown command "${name}": expected serve, connect, invite, revoke, invites, signal or doctor`,
      ),
    );
    return ExitCode.USAGE;
  }
  try {
    return await command(rest);
  } catch (error) {
    report(error, name);
    return exitCodeFor(error);
  }
}

function report(error: unknown, command?: string): void {
  const message = error instanceof Error ? error.message : String(error);
  const hint = error instanceof UsageError
    ? `\nRun mcp-webrtc ${command ?? ""}${command ? " " : ""}--help for usage.`
    : "";
  // The message may quote what another party wrote (a ticket, a room's refusal).
  console.error(`mcp-webrtc: error: ${escapeControls(message)}${hint}`);
}

if (import.meta.main) {
  const code = await main(Deno.args);
  Deno.exit(code);
}
