/**
 * Where a connect's milliseconds go, both ends in one process: connects
 * through the local signalling worker and with in-process signalling
 * (`MemorySignaling`, no seal), alternating, each frame of the room's two
 * sockets timestamped as it is handed to the `ws` client and as it arrives,
 * and each connect step of both ends (`onconnectstep`; the desktop's own steps in-process only, as a listener
 * reports its agent once connected).
 *
 * ```sh
 * deno run -A bench/connect_trace.ts [--connects 40]
 * ```
 *
 * Prints, for each event, its median time from the start of the connect
 * (the first three connects of each kind unmeasured), in order. Frames are
 * named by sender role, sequence number and what they carry (`hello` without
 * the other's nonce, `hello+` with it, or the body's type).
 *
 * @module
 */
import process from "node:process";
import ws from "ws";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  MemorySignaling,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
  WebRTCServerTransport,
} from "../mod.ts";
import { startLocalSignaling } from "../worker/local.ts";

const PEER = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
const WARMUP = 3;
const at = Deno.args.indexOf("--connects");
const CONNECTS = at >= 0 ? Number(Deno.args[at + 1]) : 40;

let started = 0;
let events: [string, number][] = [];
function mark(what: string): void {
  events.push([what, performance.now() - started]);
}

/** A frame's name: `join`, `welcome`, or `<role>.<seq>.<hello|hello+|type>` for a sealed signal. */
function frameName(data: unknown): string {
  try {
    const frame = JSON.parse(String(data));
    if (frame.type !== "signal") return frame.type;
    const sealed = frame.data;
    const what = sealed.body ? JSON.parse(sealed.body).type : sealed.peerNonce ? "hello+" : "hello";
    return `${sealed.role}.${sealed.seq}.${what}`;
  } catch {
    return "other";
  }
}

// Timestamps at the `ws` client's edge, for both sockets (the desktop's and the agent's).
const Socket = ((ws as unknown as { WebSocket?: unknown }).WebSocket ?? ws) as {
  prototype: {
    send(data: unknown, ...rest: unknown[]): void;
    emit(event: string, ...args: unknown[]): boolean;
  };
};
const send = Socket.prototype.send;
Socket.prototype.send = function (data: unknown, ...rest: unknown[]) {
  mark(`frame sent ${frameName(data)}`);
  return send.call(this, data, ...rest);
};
const emit = Socket.prototype.emit;
Socket.prototype.emit = function (event: string, ...args: unknown[]) {
  if (event === "message") mark(`frame received ${frameName(args[0])}`);
  else if (event === "upgrade") mark("agent's socket upgraded");
  return emit.call(this, event, ...args);
};

function createServer(): McpServer {
  return new McpServer({ name: "trace", version: "1.0.0" });
}

const worker = await startLocalSignaling();
const listener = await WebRTCListener.listen({
  url: worker.url,
  createServer: () => {
    mark("desktop makes the session's server");
    return createServer();
  },
  ...PEER,
});
listener.onsession = () => mark("desktop's server connected");

async function throughWorker(): Promise<void> {
  const client = new Client({ name: "trace", version: "1.0.0" });
  started = performance.now();
  const transport = new WebRTCClientTransport({
    signaling: new TicketSignaling(listener.ticket!, { hostTimeout: 5_000 }),
    ...PEER,
  });
  transport.onconnectstep = (step) => mark(`agent ${step}`);
  await client.connect(transport);
  mark("agent initialized");
  await client.close();
  const until = performance.now() + 2_000;
  while (listener.sessions.length > 0 && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function inProcess(): Promise<void> {
  const server = createServer();
  const client = new Client({ name: "trace", version: "1.0.0" });
  started = performance.now();
  const [a, b] = MemorySignaling.createPair();
  const desktop = new WebRTCServerTransport({ signaling: b, ...PEER });
  desktop.onconnectstep = (step) => mark(`desktop ${step}`);
  await server.connect(desktop);
  const transport = new WebRTCClientTransport({ signaling: a, ...PEER });
  transport.onconnectstep = (step) => mark(`agent ${step}`);
  await client.connect(transport);
  mark("agent initialized");
  await client.close();
  await server.close();
}

const cpus = { worker: [] as number[], "in-process": [] as number[] };
const runs = { worker: [] as Map<string, number>[], "in-process": [] as Map<string, number>[] };
try {
  for (let i = 0; i < WARMUP + CONNECTS; i++) {
    for (const [kind, connect] of [["worker", throughWorker], ["in-process", inProcess]] as const) {
      events = [];
      const cpu = process.cpuUsage();
      await connect();
      const used = process.cpuUsage(cpu);
      cpus[kind].push((used.user + used.system) / 1000);
      // The first time each event happened in this connect.
      // (The frames of an in-process connect's time are the worker's goodbyes.)
      const own = kind === "worker" ? events : events.filter(([name]) => !name.startsWith("frame"));
      if (i >= WARMUP) runs[kind].push(new Map([...own].reverse()));
    }
  }
} finally {
  await listener.close();
  await worker.close();
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

for (const [kind, measured] of Object.entries(runs)) {
  const names = new Set(measured.flatMap((run) => [...run.keys()]));
  const rows = [...names].map((name) => {
    const times = measured.flatMap((run) => run.has(name) ? [run.get(name)!] : []);
    return { name, ms: median(times), n: times.length };
  }).sort((a, b) => a.ms - b.ms);
  console.log(
    `\n${kind}, median ms from the start (n=${measured.length}); the process's CPU per connect and close, all threads: median ${
      median(cpus[kind as keyof typeof cpus]).toFixed(1)
    } ms`,
  );
  for (const { name, ms, n } of rows) {
    console.log(`${ms.toFixed(2).padStart(7)}  ${name}${n < measured.length ? ` (in ${n})` : ""}`);
  }
}
