/**
 * Many MCP sessions on one `WebRTCConnection`, on 127.0.0.1 only:
 *
 * - **New session**: from a new session's `initialize` to its result, and
 *   from `openTransport()` on an open connection to that result (a new data
 *   channel's open, then the `initialize` round trip), against one `ping`
 *   round trip on a session already open, measured in the same run, back to
 *   back and after a pause as long as a new session's (2 ms), beside the
 *   floor's ping after the same pause (the SDK on node-datachannel's native
 *   API): a round trip after a quiet moment costs more on this stack whatever
 *   runs over it. No ICE or DTLS is in either: the connection is up. Both peers share this
 *   process's one JavaScript thread, so each waits for the other's work,
 *   the desktop's making of a fresh `McpServer` for the session included;
 *   every other session finds its server made before it opened, which
 *   tells that cost apart.
 * - **Head-of-line blocking**: small `tools/call` round trips on one session
 *   while another session receives a 64 MiB result, against the same calls
 *   with nothing else on the connection (p50 and p99).
 *
 * Prints figures, asserts nothing. Run alone with
 * `deno run -A bench/sessions.ts [--quick] [--json]`; `deno task bench` runs it
 * in a process of its own.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { MemorySignaling, WebRTCConnection } from "../mod.ts";
import { BareTransport, nativePair } from "./_native.ts";

const MIB = 1024 * 1024;
const LOCAL = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

/** What this benchmark reports. */
export interface SessionFigures {
  /** `ping` on an open session, back to back, ms. */
  pingMedianMs: number;
  /** `ping` on an open session after a 2 ms pause, ms. */
  pingAfterPauseMedianMs: number;
  /** The floor's `ping` (the SDK over node-datachannel's native API) back to back, ms. */
  floorPingMedianMs: number;
  /** The floor's `ping` after a 2 ms pause, ms. */
  floorPingAfterPauseMedianMs: number;
  /** A new session's `initialize` sent to its result, ms. */
  initializeMedianMs: number;
  /** `initialize` ÷ one ping round trip. */
  initializeRatio: number;
  /** `initialize` ÷ one ping round trip after the same pause. */
  initializeRatioAfterPause: number;
  /** The same, for sessions whose server was made before they opened, ms. */
  initializeAheadMedianMs: number;
  /** That ÷ one ping round trip. */
  initializeAheadRatio: number;
  /** `openTransport()` to the `initialize` result, ms. */
  newSessionMedianMs: number;
  newSessionP90Ms: number;
  /** New session ÷ one ping round trip. */
  newSessionRatio: number;
  samples: number;
  /** Small calls alone, ms. */
  idleP50Ms: number;
  idleP99Ms: number;
  /** Small calls while another session receives 64 MiB, ms. */
  busyP50Ms: number;
  busyP99Ms: number;
  /** How many small calls completed during the 64 MiB transfer. */
  busyCalls: number;
  /** How long the 64 MiB result took, ms. */
  transferMs: number;
}

function server(): McpServer {
  const mcp = new McpServer({ name: "bench", version: "1.0.0" });
  mcp.registerTool(
    "echo",
    { inputSchema: { text: z.string() } },
    ({ text }) => ({ content: [{ type: "text", text }] }),
  );
  mcp.registerTool(
    "blob",
    { inputSchema: { size: z.number() } },
    ({ size }) => ({ content: [{ type: "text", text: "x".repeat(size) }] }),
  );
  return mcp;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs the measurements on one connection between two peers in this process. */
export async function measureSessions(quick: boolean): Promise<SessionFigures> {
  const samples = quick ? 20 : 100;
  const [a, b] = MemorySignaling.createPair();
  const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...LOCAL });
  /** A server made ahead for the next session, if any. */
  let ready: McpServer | undefined;
  desktop.ontransport = (transport) => {
    const mcp = ready ?? server();
    ready = undefined;
    void mcp.connect(transport);
  };
  void desktop.connect().catch(() => {});
  // A 64 MiB result is a little over the default 64 MiB receive cap with its envelope.
  const agent = new WebRTCConnection({
    signaling: a,
    linger: 60_000,
    maxReceiveSize: 80 * MIB,
    ...LOCAL,
  });
  const clients: Client[] = [];
  /** Opens a session; resolves with it and when its `initialize` was sent. */
  const openTimed = async () => {
    const client = new Client({ name: "bench", version: "1.0.0" });
    const transport = agent.openTransport();
    const send = transport.send.bind(transport);
    let initializeAt = 0;
    transport.send = (message) => {
      initializeAt ||= performance.now();
      return send(message);
    };
    await client.connect(transport);
    clients.push(client);
    return { client, initializeMs: performance.now() - initializeAt };
  };
  const open = async () => (await openTimed()).client;
  try {
    const first = await open();
    // Ping on an open session: one data-channel round trip through the SDK,
    // back to back and after a pause (a new session's initialize follows one).
    const warmup = quick ? 50 : 300;
    const pings = await pingTimes(first, warmup, samples);
    // New sessions on the open connection.
    const opens: number[] = [];
    const initializes: number[] = [];
    const initializesAhead: number[] = [];
    for (let i = 0; i < warmup / 10 + 2 * samples; i++) {
      const ahead = i % 2 === 1;
      if (ahead) ready = server();
      const start = performance.now();
      const { client, initializeMs } = await openTimed();
      if (i >= warmup / 10) {
        if (ahead) initializesAhead.push(initializeMs);
        else {
          opens.push(performance.now() - start);
          initializes.push(initializeMs);
        }
      }
      await client.close();
    }
    const call = async (client: Client) => {
      const start = performance.now();
      await client.callTool({ name: "echo", arguments: { text: "hello" } });
      return performance.now() - start;
    };
    const small = await open();
    const idle: number[] = [];
    for (let i = 0; i < samples * 3; i++) idle.push(await call(small));
    const bulk = await open();
    let done = false;
    const started = performance.now();
    const transfer = bulk.callTool({ name: "blob", arguments: { size: 64 * MIB } }, undefined, {
      timeout: 300_000,
    }).then(() => (done = true));
    const busy: number[] = [];
    while (!done) busy.push(await call(small));
    await transfer;
    const transferMs = performance.now() - started;
    const pingMedianMs = percentile(pings.backToBack, 50);
    const pingAfterPauseMedianMs = percentile(pings.afterPause, 50);
    const newSessionMedianMs = percentile(opens, 50);
    const initializeMedianMs = percentile(initializes, 50);
    const initializeAheadMedianMs = percentile(initializesAhead, 50);
    const floor = await floorPings(warmup, samples);
    return {
      pingMedianMs,
      pingAfterPauseMedianMs,
      floorPingMedianMs: floor.backToBack,
      floorPingAfterPauseMedianMs: floor.afterPause,
      initializeMedianMs,
      initializeRatio: initializeMedianMs / pingMedianMs,
      initializeRatioAfterPause: initializeMedianMs / pingAfterPauseMedianMs,
      initializeAheadMedianMs,
      initializeAheadRatio: initializeAheadMedianMs / pingMedianMs,
      newSessionMedianMs,
      newSessionP90Ms: percentile(opens, 90),
      newSessionRatio: newSessionMedianMs / pingMedianMs,
      samples,
      idleP50Ms: percentile(idle, 50),
      idleP99Ms: percentile(idle, 99),
      busyP50Ms: percentile(busy, 50),
      busyP99Ms: percentile(busy, 99),
      busyCalls: busy.length,
      transferMs,
    };
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await agent.close();
    await desktop.close();
  }
}

/** A pause as long as a new session's channel open, about. */
function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 2));
}

/**
 * `client`'s ping round trips, ms: `samples * 3` back to back after `warmup`
 * unmeasured, then `samples` each after a pause.
 */
async function pingTimes(
  client: Client,
  warmup: number,
  samples: number,
): Promise<{ backToBack: number[]; afterPause: number[] }> {
  const timed = async () => {
    const start = performance.now();
    await client.ping();
    return performance.now() - start;
  };
  const backToBack: number[] = [];
  for (let i = 0; i < warmup + samples * 3; i++) {
    const ms = await timed();
    if (i >= warmup) backToBack.push(ms);
  }
  const afterPause: number[] = [];
  for (let i = 0; i < samples; i++) {
    await pause();
    afterPause.push(await timed());
  }
  return { backToBack, afterPause };
}

/** The floor's ping medians, back to back and after a pause, ms. */
async function floorPings(
  warmup: number,
  samples: number,
): Promise<{ backToBack: number; afterPause: number }> {
  const pair = await nativePair();
  const mcp = server();
  const client = new Client({ name: "bench", version: "1.0.0" });
  try {
    await mcp.connect(new BareTransport(pair.answerer));
    await client.connect(new BareTransport(pair.offerer));
    const { backToBack, afterPause } = await pingTimes(client, warmup, samples);
    return { backToBack: percentile(backToBack, 50), afterPause: percentile(afterPause, 50) };
  } finally {
    await client.close();
    await mcp.close();
    await pair.close();
  }
}

/** The figures as lines of text. */
export function renderSessions(figures: SessionFigures | null): string {
  if (!figures) return "Sessions on one connection: not measured (the run failed)";
  const ms = (value: number) => `${value.toFixed(value < 1 ? 3 : 1)} ms`;
  return [
    "Sessions on one connection (loopback)",
    `  new session, initialize to its result: median ${ms(figures.initializeMedianMs)} (${
      figures.initializeRatio.toFixed(2)
    }× a ping; target ≤ 2×)`,
    `  the same with the session's server made before it opened: median ${
      ms(figures.initializeAheadMedianMs)
    } (${figures.initializeAheadRatio.toFixed(2)}× a ping)`,
    `  new session, openTransport() to the initialize result: median ${
      ms(figures.newSessionMedianMs)
    }, p90 ${ms(figures.newSessionP90Ms)} (${figures.samples} sessions)`,
    `  one ping round trip on an open session: median ${ms(figures.pingMedianMs)} back to back, ${
      ms(figures.pingAfterPauseMedianMs)
    } after a 2 ms pause (initialize ÷ that: ${figures.initializeRatioAfterPause.toFixed(2)}×)`,
    `  the floor's ping (the SDK on node-datachannel's native API): ${
      ms(figures.floorPingMedianMs)
    } back to back, ${ms(figures.floorPingAfterPauseMedianMs)} after the same pause`,
    `  ratio: ${figures.newSessionRatio.toFixed(2)}× a ping (a channel open and a round trip)`,
    `  small calls alone: p50 ${ms(figures.idleP50Ms)}, p99 ${ms(figures.idleP99Ms)}`,
    `  small calls while another session receives 64 MiB (${
      (figures.transferMs / 1000).toFixed(1)
    } s, ${figures.busyCalls} calls): p50 ${ms(figures.busyP50Ms)}, p99 ${ms(figures.busyP99Ms)} (${
      (figures.busyP99Ms / figures.idleP99Ms).toFixed(1)
    }× the p99 alone)`,
  ].join("\n");
}

if (import.meta.main) {
  const figures = await measureSessions(Deno.args.includes("--quick"));
  console.log(Deno.args.includes("--json") ? JSON.stringify(figures) : renderSessions(figures));
  // node-datachannel's threads may outlive the connections by a moment; the figures are out.
  Deno.exit(0);
}
