/**
 * The agent of the relay lab: dials the ticket `Deno.args[0]` with the
 * defaults (direct WebRTC first, the relay when no ICE path forms), calls the
 * `greet` tool and prints `report <JSON>`: the path, the result, and when each
 * connection step came (ms after dialling began).
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { TicketSignaling, WebRTCConnection } from "../../mod.ts";

const started = performance.now();
const steps: string[] = [];
const connection = new WebRTCConnection({
  signaling: () => new TicketSignaling(Deno.args[0], { hostTimeout: 10_000 }),
  iceServers: [],
  linger: 0,
});
connection.onconnectstep = (step) =>
  steps.push(`${step}@${Math.round(performance.now() - started)}`);
const client = new Client({ name: "lab-agent", version: "1.0.0" });
try {
  await client.connect(connection.openTransport());
  const result = await client.callTool({ name: "greet", arguments: { name: "udp-less desktop" } });
  const path = await connection.getConnectionPath();
  const text = (result.content as { text: string }[])[0].text;
  console.log(
    `report ${JSON.stringify({ path, text, steps, ms: Math.round(performance.now() - started) })}`,
  );
} catch (error) {
  console.log(`report ${JSON.stringify({ error: String(error), steps })}`);
} finally {
  await client.close();
  await connection.close();
}
