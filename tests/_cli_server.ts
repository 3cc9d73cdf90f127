/**
 * A stdio MCP server for the CLI tests, with tools that exercise the bridge's
 * edge cases: it reports its process id, notices cancellation, and can exit.
 * With the environment variable `CLI_SERVER_EXIT_AT_START=N` it exits with
 * code N before reading anything.
 */
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/server/stdio"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const exitAtStart = Deno.env.get("CLI_SERVER_EXIT_AT_START");
if (exitAtStart !== undefined) Deno.exit(Number(exitAtStart));

const server = new McpServer({ name: "cli-test-server", version: "1.0.0" });
let cancelled = 0;

server.registerTool(
  "pid",
  { description: "This server's process id" },
  () => ({ content: [{ type: "text", text: String(Deno.pid) }] }),
);
server.registerTool(
  "wait",
  { description: "Waits until cancelled (at most 30 s)" },
  (extra) =>
    new Promise((resolve) => {
      const timer = setTimeout(
        () => resolve({ content: [{ type: "text", text: "not cancelled" }] }),
        30_000,
      );
      extra.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        cancelled++;
        resolve({ content: [{ type: "text", text: "cancelled" }] });
      });
    }),
);
server.registerTool(
  "sleep",
  { description: "Answers after the given milliseconds", inputSchema: { ms: z.number() } },
  async ({ ms }) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { content: [{ type: "text", text: `slept ${ms} ms` }] };
  },
);
server.registerTool(
  "cancelled",
  { description: "How many requests were cancelled so far" },
  () => ({ content: [{ type: "text", text: String(cancelled) }] }),
);
server.registerTool(
  "exit",
  {
    description: "Exits the process with the given code, after a short delay",
    inputSchema: { code: z.number() },
  },
  ({ code }) => {
    setTimeout(() => Deno.exit(code), 50);
    return new Promise(() => {});
  },
);

await server.connect(new StdioServerTransport());
