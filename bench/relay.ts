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
 *   end of that wait to the open channel and to the `initialize` answer;
 * - the flow control's window: a 16 MiB result over the relay with the
 *   default `RELAY_WINDOW` and with a window so large it never binds (as
 *   before there was flow control), on two connections to one desktop,
 *   transfers alternating, on a worker whose budget does not bind and on one
 *   at the default budget.
 *
 * Prints figures and asserts nothing. Run: `deno run -A bench/relay.ts`
 * (`--quick` for fewer samples; `--window` for the window alone, `--json` to
 * print its figures as JSON, as `deno task bench` does).
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { TicketSignaling, WebRTCConnection, WebRTCListener } from "../mod.ts";
import { relayFlow } from "../src/peer.ts";
import { RELAY_FALLBACK_DELAY, RELAY_WINDOW } from "../src/constants.ts";
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

/** A window so large it never binds: the relay as it ran before its flow control. */
const NEVER_BINDS = 2 ** 40;

/** The relay's window against none, 16 MiB results, MB/s of each transfer. */
export interface RelayWindowFigures {
  /** `RELAY_WINDOW`, bytes. */
  window: number;
  rows: {
    /** The worker's `RELAY_BYTES_PER_SECOND`. */
    budget: string;
    /** With a window that never binds (before the flow control). */
    before: number[];
    /** With `RELAY_WINDOW`. */
    after: number[];
  }[];
}

/** An agent on the relay whose two sides grant `window` in their hellos. */
async function relayAgent(ticket: string, window: number) {
  relayFlow.window = window;
  try {
    const connection = new WebRTCConnection({
      signaling: () => new TicketSignaling(ticket),
      ...LOCAL,
      linger: 0,
      relayAfter: 0,
    });
    const client = new Client({ name: "bench", version: "1.0.0" });
    // Resolves once the channel is open: both hellos, with their windows, were sent.
    await client.connect(connection.openTransport());
    return { connection, client };
  } finally {
    relayFlow.window = RELAY_WINDOW;
  }
}

/** One result of `bytes`, in MB/s. */
async function result(client: Client, bytes: number): Promise<number> {
  const t0 = performance.now();
  await client.callTool({ name: "blob", arguments: { bytes } }, undefined, { timeout: 300_000 });
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/** Measures 16 MiB results with the window and without, alternating. */
export async function measureRelayWindow(quick: boolean): Promise<RelayWindowFigures> {
  const budgets = [
    ["does not bind", String(4096 * MIB), quick ? 1 : 3],
    ["default (8 MiB/s)", undefined, 1],
  ] as const;
  const rows: RelayWindowFigures["rows"] = [];
  for (const [budget, rate, runs] of budgets) {
    const worker = await startLocalSignaling({
      vars: rate === undefined ? {} : { RELAY_BYTES_PER_SECOND: rate },
    });
    const desktop = await WebRTCListener.listen({
      url: worker.url,
      createServer: server,
      ...LOCAL,
    });
    try {
      const before = await relayAgent(desktop.ticket!, NEVER_BINDS);
      const after = await relayAgent(desktop.ticket!, RELAY_WINDOW);
      const row = { budget, before: [] as number[], after: [] as number[] };
      for (const agent of [before, after]) await result(agent.client, 2 * MIB);
      for (let i = 0; i < runs; i++) {
        row.before.push(+(await result(before.client, 16 * MIB)).toFixed(1));
        row.after.push(+(await result(after.client, 16 * MIB)).toFixed(1));
      }
      for (const agent of [before, after]) {
        await agent.client.close();
        await agent.connection.close();
      }
      rows.push(row);
      console.error(JSON.stringify(row));
    } finally {
      await desktop.close();
      await worker.close();
    }
  }
  return { window: RELAY_WINDOW, rows };
}

/** The window's figures as lines of text. */
export function renderRelayWindow(figures: RelayWindowFigures | null): string {
  if (!figures) return "Relay window: not measured (the run failed)";
  const median = (values: number[]) => percentile(values, 50).toFixed(1);
  return [
    `Relay, a 16 MiB result with the flow control's window (RELAY_WINDOW = ${
      figures.window / MIB
    } MiB) and with one that never binds (before), same run`,
    ...figures.rows.map((row) =>
      `  budget ${row.budget}: before ${median(row.before)} MB/s, after ${
        median(row.after)
      } MB/s (runs: ${row.before.join(", ")} / ${row.after.join(", ")})`
    ),
  ].join("\n");
}

/** Every measurement of this file, printed. */
async function main(): Promise<void> {
  const results: Record<string, unknown> = {};
  const defaults = await startLocalSignaling();
  const unbound = await startLocalSignaling({
    vars: { RELAY_BYTES_PER_SECOND: String(4096 * MIB) },
  });
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
      } ms; to the initialize answer over it: ${
        fallbacks.map((f) => f.initializeMs).join(", ")
      } ms`,
    );
  } finally {
    await defaults.close();
    await unbound.close();
  }
  results.window = await measureRelayWindow(quick);
  console.log(renderRelayWindow(results.window as RelayWindowFigures));
}

if (import.meta.main) {
  if (Deno.args.includes("--window")) {
    const figures = await measureRelayWindow(quick);
    console.log(
      Deno.args.includes("--json") ? JSON.stringify(figures) : renderRelayWindow(figures),
    );
  } else await main();
}
