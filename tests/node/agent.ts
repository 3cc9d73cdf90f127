/**
 * An agent for Node: dials the desktop with the ticket given as the first
 * argument, calls `greet`, prints the result as JSON on stdout and exits.
 * `tests/node_test.ts` bundles it for Node and runs it with `node`.
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { TicketSignaling, WebRTCClientTransport } from "../../mod.ts";

const ticket = process.argv[2];
const client = new Client({ name: "node-agent", version: "1.0.0" });
const transport = new WebRTCClientTransport({
  signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
  iceServers: [],
  rtcConfiguration: { bindAddress: "127.0.0.1" },
  connectTimeout: 10_000,
});
try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  const result = await client.callTool({ name: "greet", arguments: { name: "Node" } });
  const path = await transport.getConnectionPath();
  console.log(JSON.stringify({
    node: process.versions.node,
    tools: tools.map((tool) => tool.name),
    greeting: (result.content as { text: string }[])[0].text,
    path: path?.localCandidateType,
  }));
  await client.close();
} catch (error) {
  console.log(JSON.stringify({ error: String(error) }));
  process.exitCode = 1;
}
