/**
 * An agent for Node over aiortc's TCP signalling: connects to the port given
 * as the first argument (the Deno server offers and listens), calls `greet`,
 * prints the result as JSON on stdout and exits. `tests/node_test.ts` bundles
 * it for Node and runs it with `node`.
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { WebRTCClientTransport } from "../../mod.ts";
import { TcpSocketSignaling } from "../../src/signaling/tcp_socket_signaling.ts";

const port = Number(process.argv[2]);
const client = new Client({ name: "node-agent", version: "1.0.0" });
const transport = new WebRTCClientTransport({
  signaling: new TcpSocketSignaling("127.0.0.1", port),
  initiator: false,
  iceServers: [],
  rtcConfiguration: { bindAddress: "127.0.0.1" },
  connectTimeout: 10_000,
});
try {
  await client.connect(transport);
  const result = await client.callTool({ name: "greet", arguments: { name: "Node" } });
  console.log(JSON.stringify({
    node: process.versions.node,
    greeting: (result.content as { text: string }[])[0].text,
  }));
  await client.close();
} catch (error) {
  console.log(JSON.stringify({ error: String(error) }));
  process.exitCode = 1;
}
