/** What both ends of the browser test do with an MCP client, and how they report it. */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { z } from "zod";

/** What one client got: the tools, a greeting and a large result, or the error. */
export type Outcome =
  | { ok: true; tools: string[]; greeting: string; large: LargeOutcome; ms: number }
  | { ok: false; name: string; message: string; ms: number };

/** Whether the `large` tool's result came whole. */
export interface LargeOutcome {
  length: number;
  same: boolean;
}

/** Characters of the size the `large` tool is asked for: several chunks, several slices. */
export const LARGE_SIZE = 200_000;

/**
 * A text of `size` characters that goes in many chunks: long runs that need
 * no escape, then every kind of escape and UTF-8 length, so that a sender
 * sends some slices as they are and escapes others, and a receiver keeps some
 * pieces and parses others.
 */
export function largeText(size: number): string {
  const unit = `${"x".repeat(90_000)}"\\\n\t\u0001é€😀</script>${"y".repeat(1000)}`;
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

/** Gives `server` the `large` tool: `largeText(size)`. */
export function addLargeTool(server: McpServer): McpServer {
  server.registerTool(
    "large",
    { description: "Returns a large text", inputSchema: { size: z.number() } },
    ({ size }) => ({ content: [{ type: "text", text: largeText(size) }] }),
  );
  return server;
}

/**
 * Connects a client through the transport `connect()` makes, lists the
 * server's tools, calls `greet` with `who` and `large`; never throws. Each
 * phase done is told to `note`, so that a run that stops says where.
 */
export async function exercise(
  connect: () => Transport,
  who: string,
  note: (phase: string) => void = () => {},
): Promise<Outcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const client = new Client({ name: who, version: "1.0.0" });
  try {
    await client.connect(connect());
    note(`initialized at ${ms()} ms`);
    const { tools } = await client.listTools();
    note(`tools listed at ${ms()} ms`);
    const result = await client.callTool({ name: "greet", arguments: { name: who } });
    const greeting = (result.content as { text: string }[])[0].text;
    note(`greeted at ${ms()} ms`);
    const large = await client.callTool({ name: "large", arguments: { size: LARGE_SIZE } });
    const text = (large.content as { text: string }[])[0].text;
    note(`large result at ${ms()} ms`);
    return {
      ok: true,
      tools: tools.map((tool) => tool.name).sort(),
      greeting,
      large: { length: text.length, same: text === largeText(LARGE_SIZE) },
      ms: ms(),
    };
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    note(`failed at ${ms()} ms: ${name}: ${message}`);
    return { ok: false, name, message, ms: ms() };
  } finally {
    await client.close().catch(() => {});
  }
}
