/**
 * The connect through the signalling worker when the desktop is far from the
 * room and the agent is near it, as a desktop at home and an agent in the
 * cloud beside the edge are: the desktop's room socket goes through a TCP
 * proxy on 127.0.0.1 that holds every chunk `--delay` ms (default 25) in each
 * direction; the agent's goes straight to the worker. The peer connection
 * itself stays on loopback, undelayed, so what differs from the plain worker
 * connect is only the signalling's hops to the desktop.
 *
 * Prints the median, p90 and max of `--connects` connects (default 30, after
 * 3 to warm up), from the agent's start to `initialize` done, each agent
 * arriving four delays after the one before had gone; the median time of
 * each of the agent's connect steps; and how many desktop one-way delays the
 * median spans.
 *
 * With `--invite`, the agent dials with a ticket of its own
 * (`listener.invite()`) instead of the listener's shared one.
 *
 * Run: `deno run -A bench/distant_desktop.ts [--delay 25] [--connects 30] [--invite]`
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  formatTicket,
  parseTicket,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
} from "../mod.ts";
import { startLocalSignaling } from "../worker/local.ts";

const arg = (name: string, fallback: number) => {
  const index = Deno.args.indexOf(`--${name}`);
  return index >= 0 ? Number(Deno.args[index + 1]) : fallback;
};
const DELAY_MS = arg("delay", 25);
const CONNECTS = arg("connects", 30);
const WARMUP = 3;
const PEER = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

/**
 * A TCP proxy on 127.0.0.1 to `target`, which hands on every chunk `delayMs`
 * after it came, in order, in both directions.
 */
function delayProxy(target: { hostname: string; port: number }, delayMs: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections = new Set<Deno.Conn>();
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    let written = Promise.resolve();
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        const due = performance.now() + delayMs;
        written = written.then(async () => {
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          let offset = 0;
          while (offset < chunk.length) offset += await to.write(chunk.subarray(offset));
        });
      }
      await written;
    } catch {
      // One side went away: the other is closed below.
    } finally {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch { /* closed already */ }
      }
    }
  };
  void (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect(target).catch(() => null);
      if (!upstream) {
        client.close();
        continue;
      }
      // No Nagle on the proxy's own sockets: it would hold small frames for an ACK.
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      connections.add(client).add(upstream);
      void pipe(client, upstream);
      void pipe(upstream, client);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const conn of connections) {
        try {
          conn.close();
        } catch { /* closed already */ }
      }
    },
  };
}

function createServer(): McpServer {
  return new McpServer({ name: "distant-desktop", version: "1.0.0" });
}

if (import.meta.main) {
  const worker = await startLocalSignaling();
  const url = new URL(worker.url);
  const proxy = delayProxy({ hostname: url.hostname, port: Number(url.port) }, DELAY_MS);
  const far = new URL(worker.url);
  far.port = String(proxy.port);
  const listener = await WebRTCListener.listen({ url: far.href, createServer, ...PEER });
  // With --invite, the agent holds a ticket of its own (`invite()`), else the shared one;
  // its ticket names the worker itself: only the desktop is far.
  const own = Deno.args.includes("--invite") ? await listener.invite({ name: "bench" }) : undefined;
  const ticket = { ...parseTicket(own ?? listener.ticket!), url: worker.url };
  const guestTicket = formatTicket(ticket);
  const times: number[] = [];
  const steps = new Map<string, number[]>();
  try {
    for (let i = 0; i < WARMUP + CONNECTS; i++) {
      const client = new Client({ name: "distant-desktop-bench", version: "1.0.0" });
      const started = performance.now();
      const transport = new WebRTCClientTransport({
        signaling: new TicketSignaling(guestTicket, { hostTimeout: 10_000 }),
        ...PEER,
      });
      const reached = new Map<string, number>();
      transport.onconnectstep = (step) => reached.set(step, performance.now() - started);
      await client.connect(transport);
      const ms = performance.now() - started;
      if (i >= WARMUP) {
        for (const [step, at] of reached) steps.set(step, [...steps.get(step) ?? [], at]);
      }
      await client.close();
      // The desktop ends its side too, so the next agent meets an idle listener.
      const until = performance.now() + 2_000;
      while (listener.sessions.length > 0 && performance.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Agents come apart, not within a round trip of each other: whatever the
      // desktop sends the room after a connect (its next waiting hello) is there.
      await new Promise((resolve) => setTimeout(resolve, 4 * DELAY_MS + 20));
      if (i >= WARMUP) times.push(ms);
    }
  } finally {
    await listener.close();
    proxy.close();
    await worker.close();
  }
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const sorted = times.sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  console.log(
    `the agent's steps, median ms from its start: ${
      [...steps].map(([step, values]) => `${step} ${median(values).toFixed(1)}`).join(", ")
    }`,
  );
  console.log(
    `desktop ${DELAY_MS} ms from the room each way, agent beside it${
      own ? " with a ticket of its own" : ""
    }: connect median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${
      sorted.at(-1)!.toFixed(1)
    } ms (n=${sorted.length}); ` +
      `the median spans ${(at(0.5) / DELAY_MS).toFixed(1)} one-way delays`,
  );
  Deno.exit(0);
}
