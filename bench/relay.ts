/**
 * The relay path against the direct one, in one run on 127.0.0.1: a desktop
 * listener on the signalling worker (Miniflare), an agent connection on each
 * path, the same MCP server.
 *
 * - `tools/call` round trip (median and p90 of many calls);
 * - a 16 MiB tool result (MB/s), on the direct path, on the relay at the
 *   worker's default `RELAY_BYTES_PER_SECOND` (8 MiB/s, which the peers pace
 *   to half of), and on the relay of a worker whose budget does not bind;
 * - the time from "no ICE path" to the first message over the relay: both
 *   peers offer no ICE candidate, the agent waits the default
 *   `RELAY_FALLBACK_DELAY` after the answer, then relays; measured from the
 *   end of that wait to the open channel and to the `initialize` answer.
 *
 * Prints figures and asserts nothing. Run: `deno run -A bench/relay.ts`
 * (`--quick` for fewer samples).
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { TicketSignaling, WebRTCConnection, WebRTCListener } from "../mod.ts";
import { RELAY_FALLBACK_DELAY } from "../src/constants.ts";
import { startLocalSignaling } from "../worker/local.ts";

const quick = Deno.args.includes("--quick");
const CALLS = quick ? 50 : 400;
const TRANSFERS = quick ? 1 : 3;
const MIB = 1024 * 1024;
const LOCAL = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
const NO_CANDIDATES = {
  iceServers: [],
  rtcConfiguration: { bindAddress: "127.0.0.1", iceTransportPolicy: "relay" },
};

function server(): McpServer {
  const server = new McpServer({ name: "bench", version: "1.0.0" });
  server.registerTool(
    "echo",
    { inputSchema: { text: z.string() } },
    ({ text }) => ({ content: [{ type: "text", text }] }),
  );
  server.registerTool(
    "blob",
    { inputSchema: { bytes: z.number() } },
    ({ bytes }) => ({ content: [{ type: "text", text: "x".repeat(bytes) }] }),
  );
  return server;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface PathFigures {
  path: string;
  connectMs: number;
  rttMedianMs: number;
  rttP90Ms: number;
  mbPerSecond16MiB: number;
}

/** Connects an agent with `relayAfter`, measures round trips and a 16 MiB result. */
async function measure(
  label: string,
  ticket: string,
  relayAfter: number | false,
): Promise<PathFigures> {
  const started = performance.now();
  const connection = new WebRTCConnection({
    signaling: () => new TicketSignaling(ticket),
    ...LOCAL,
    linger: 0,
    relayAfter,
  });
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(connection.openTransport());
  const connectMs = performance.now() - started;
  const path = (await connection.getConnectionPath())?.localCandidateType ?? "unknown";
  for (let i = 0; i < 20; i++) await client.callTool({ name: "echo", arguments: { text: "w" } });
  const rtts: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await client.callTool({ name: "echo", arguments: { text: "ping" } });
    rtts.push(performance.now() - t0);
  }
  const rates: number[] = [];
  for (let i = 0; i < TRANSFERS; i++) {
    const t0 = performance.now();
    await client.callTool({ name: "blob", arguments: { bytes: 16 * MIB } }, undefined, {
      timeout: 300_000,
    });
    rates.push((16 * MIB) / 1e6 / ((performance.now() - t0) / 1000));
  }
  await client.close();
  await connection.close();
  const figures = {
    path: `${label} (${path})`,
    connectMs: Math.round(connectMs),
    rttMedianMs: +percentile(rtts, 50).toFixed(3),
    rttP90Ms: +percentile(rtts, 90).toFixed(3),
    mbPerSecond16MiB: +percentile(rates, 50).toFixed(1),
  };
  console.error(JSON.stringify(figures));
  return figures;
}

/** Both peers without candidates: the agent relays after the default delay. */
async function fallback(url: string): Promise<{ channelMs: number; initializeMs: number }> {
  const desktop = await WebRTCListener.listen({ url, createServer: server, ...NO_CANDIDATES });
  try {
    let answerAt = 0;
    let channelAt = 0;
    const connection = new WebRTCConnection({
      signaling: () => new TicketSignaling(desktop.ticket!),
      ...NO_CANDIDATES,
      linger: 0,
    });
    connection.onconnectstep = (step) => {
      if (step === "answer") answerAt = performance.now();
      if (step === "channel") channelAt = performance.now();
    };
    const client = new Client({ name: "bench", version: "1.0.0" });
    await client.connect(connection.openTransport());
    const initializedAt = performance.now();
    const noPathAt = answerAt + RELAY_FALLBACK_DELAY;
    await client.close();
    await connection.close();
    return {
      channelMs: +(channelAt - noPathAt).toFixed(1),
      initializeMs: +(initializedAt - noPathAt).toFixed(1),
    };
  } finally {
    await desktop.close();
  }
}

const results: Record<string, unknown> = {};
const defaults = await startLocalSignaling();
const unbound = await startLocalSignaling({ vars: { RELAY_BYTES_PER_SECOND: String(4096 * MIB) } });
try {
  const rows: PathFigures[] = [];
  for (
    const [worker, name] of [[defaults, "default budget"], [unbound, "unbound budget"]] as const
  ) {
    const desktop = await WebRTCListener.listen({
      url: worker.url,
      createServer: server,
      ...LOCAL,
    });
    try {
      if (worker === defaults) rows.push(await measure("direct", desktop.ticket!, false));
      rows.push(await measure(`relay, ${name}`, desktop.ticket!, 0));
    } finally {
      await desktop.close();
    }
  }
  results.paths = rows;
  const fallbacks = [];
  for (let i = 0; i < (quick ? 1 : 3); i++) fallbacks.push(await fallback(defaults.url));
  results.noIcePathToRelay = fallbacks;
  console.table(rows);
  console.log(
    `From "no ICE path" (the answer plus RELAY_FALLBACK_DELAY = ${RELAY_FALLBACK_DELAY} ms) to the relay's open channel: ${
      fallbacks.map((f) => f.channelMs).join(", ")
    } ms; to the initialize answer over it: ${fallbacks.map((f) => f.initializeMs).join(", ")} ms`,
  );
} finally {
  await defaults.close();
  await unbound.close();
}
