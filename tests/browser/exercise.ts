/** What both ends of the browser test do with an MCP client, and how they report it. */
import { Client } from "@modelcontextprotocol/sdk/client";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";

/** What one client got: the tools and a greeting, or the error. */
export type Outcome =
  | { ok: true; tools: string[]; greeting: string; ms: number }
  | { ok: false; name: string; message: string; ms: number };

/**
 * Connects a client through the transport `connect()` makes, lists the
 * server's tools and calls `greet` with `who`; never throws.
 */
export async function exercise(connect: () => Transport, who: string): Promise<Outcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const client = new Client({ name: who, version: "1.0.0" });
  try {
    await client.connect(connect());
    const { tools } = await client.listTools();
    const result = await client.callTool({ name: "greet", arguments: { name: who } });
    const greeting = (result.content as { text: string }[])[0].text;
    return { ok: true, tools: tools.map((tool) => tool.name).sort(), greeting, ms: ms() };
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    return { ok: false, name, message, ms: ms() };
  } finally {
    await client.close().catch(() => {});
  }
}
