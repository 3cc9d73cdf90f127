/**
 * An agent for "Share this tab": dials the tab's ticket, lists the tab's
 * tools and calls each of them, printing every step with its time. The tab
 * asks its person to approve `ask_approval`; the call waits for them.
 *
 * Run: `deno task demo:browser:agent <ticket>`
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { TicketSignaling, WebRTCClientTransport } from "../../mod.ts";

const ticket = Deno.args[0];
if (!ticket) {
  console.error("Cannot dial the tab as no ticket is given: pass the ticket the tab shows");
  Deno.exit(2);
}

const t0 = performance.now();
const step = (what: string) =>
  console.log(`${(performance.now() - t0).toFixed(1).padStart(8)} ms  ${what}`);
const text = (result: CallToolResult) =>
  result.content.map((item) => item.type === "text" ? item.text : JSON.stringify(item)).join("\n");

const client = new Client({ name: "deno-agent", version: "1.0.0" });
try {
  // Peers on one machine: no STUN server, only the loopback interface.
  const transport = new WebRTCClientTransport({
    signaling: new TicketSignaling(ticket, { hostTimeout: 10_000 }),
    iceServers: [],
    rtcConfiguration: { bindAddress: "127.0.0.1" },
  });
  transport.onconnectstep = (name) => step(`connect: ${name}`);
  await client.connect(transport);
  const path = await transport.getConnectionPath();
  step(`MCP session with "${client.getServerVersion()?.name}" via ${path?.localCandidateType}`);
  const { tools } = await client.listTools();
  step(`tools: ${tools.map((tool) => tool.name).join(", ")}`);
  step(`read_text → ${text(await client.callTool({ name: "read_text" }) as CallToolResult)}`);
  step(`page_clock → ${text(await client.callTool({ name: "page_clock" }) as CallToolResult)}`);
  step("ask_approval: waiting for the person at the tab…");
  const approval = await client.callTool({
    name: "ask_approval",
    arguments: { request: "Let deno-agent read the text in your box" },
  }) as CallToolResult;
  step(`ask_approval → ${text(approval)}`);
} catch (error) {
  console.error(`Cannot use the tab's tools: ${(error as Error).message}`);
  Deno.exitCode = 1;
} finally {
  await client.close();
}
Deno.exit(Deno.exitCode);
