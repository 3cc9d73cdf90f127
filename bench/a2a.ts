/**
 * The founding scenario's connect, on 127.0.0.1: from the user's message (the
 * desktop's `SendStreamingMessage`) to the data channel open on the agent,
 * with the signalling inside the A2A task (`examples/a2a`: an A2A server over
 * Express, the SDK's client), against the same connect over
 * `MemorySignaling` in the same run, the two alternating. Also counts the
 * A2A requests the desktop makes per connect (the streaming request and the
 * replies).
 *
 * Run alone: `deno run -A bench/a2a.ts [--quick] [--json] [--sealed]`;
 * `deno task bench` runs it too ({@linkcode measureA2A}).
 *
 * @module
 */
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  createGuestTicket,
  createTicket,
  formatTicket,
  MemorySignaling,
  WebRTCClientTransport,
  WebRTCServerTransport,
} from "../mod.ts";
import { startAgent } from "../examples/a2a/agent.ts";
import { askAgent, createFileServer } from "../examples/a2a/desktop.ts";

/** Connect times of one path, in milliseconds. */
export interface ConnectTimes {
  samples: number;
  minMs: number;
  medianMs: number;
  p90Ms: number;
  maxMs: number;
}

/** What {@linkcode measureA2A} reports. */
export interface A2AFigures {
  /** User's message → channel open on the agent, signalling through A2A. */
  a2a: ConnectTimes;
  /** Transports created → channel open, signalling through `MemorySignaling`. */
  memory: ConnectTimes;
  /** A2A requests the desktop made per connect (median; the streaming one included). */
  requestsPerConnect: number;
  /** Whether the A2A signalling was sealed end to end. */
  sealed: boolean;
}

const LOCAL = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

/** Measures in this process. */
export async function measureInProcess(
  connects: number,
  warmup: number,
  sealed: boolean,
): Promise<A2AFigures> {
  const folder = await Deno.makeTempDir({ prefix: "a2a-bench-" });
  await Deno.writeTextFile(`${folder}/notes.txt`, "Buy milk. Call Ada.");
  const host = sealed ? await createTicket() : undefined;
  const tickets = host
    ? { host: formatTicket(host), guest: formatTicket(await createGuestTicket(host)) }
    : undefined;
  let channelOpen = 0;
  const agent = await startAgent({
    ticket: tickets?.guest,
    log: (step) => {
      if (step === "webrtc channel") channelOpen = performance.now();
    },
  });
  let requests = 0;
  const countingFetch: typeof fetch = (input, init) => {
    requests++;
    return fetch(input, init);
  };
  const client = await new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl: countingFetch })],
    }),
  ).createFromUrl(agent.url);
  const a2a: number[] = [];
  const memory: number[] = [];
  const requestCounts: number[] = [];
  try {
    for (let i = 0; i < warmup + connects; i++) {
      let sent = 0;
      let requestsAtOpen = 0;
      channelOpen = 0;
      const started = requests;
      const result = await askAgent(agent.url, "What does notes.txt say?", {
        root: folder,
        client,
        ticket: tickets?.host,
        log: (step) => {
          if (step === "message sent") sent = performance.now();
          if (step === "mcp channel open") requestsAtOpen = requests - started;
        },
      });
      if (!result.connected || channelOpen === 0) {
        throw new Error(`The A2A connect failed: ${result.answer}`);
      }
      const memoryMs = await memoryConnect(folder);
      if (i < warmup) continue;
      a2a.push(channelOpen - sent);
      memory.push(memoryMs);
      requestCounts.push(requestsAtOpen);
    }
  } finally {
    await agent.close();
    await Deno.remove(folder, { recursive: true });
  }
  return {
    a2a: times(a2a),
    memory: times(memory),
    requestsPerConnect: times(requestCounts).medianMs,
    sealed,
  };
}

/**
 * One connect over MemorySignaling: server and transports made → channel open
 * on the client. The server is the desktop's file server, made inside the
 * timer as the A2A connect makes it inside its own. The MCP client
 * initializes before both close, as the agent's does.
 */
async function memoryConnect(folder: string): Promise<number> {
  const started = performance.now();
  const [a, b] = MemorySignaling.createPair();
  const server = createFileServer(folder);
  await server.connect(new WebRTCServerTransport({ signaling: b, ...LOCAL }));
  const transport = new WebRTCClientTransport({ signaling: a, ...LOCAL });
  let open = 0;
  transport.onconnectstep = (step) => {
    if (step === "channel") open = performance.now();
  };
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(transport);
  await client.close();
  await server.close();
  return open - started;
}

function times(values: number[]): ConnectTimes {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]!;
  return {
    samples: sorted.length,
    minMs: sorted[0]!,
    medianMs: at(50),
    p90Ms: at(90),
    maxMs: sorted[sorted.length - 1]!,
  };
}

/**
 * Measures in a process of its own (node-datachannel's state is per process)
 * and returns the figures, or `null` with the reason on stderr.
 */
export async function measureA2A(quick: boolean): Promise<A2AFigures | null> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--json", ...(quick ? ["--quick"] : [])],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), quick ? 60_000 : 240_000);
  const output = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(output.stdout).trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(text) as A2AFigures;
  } catch {
    console.error(`The A2A benchmark did not finish (exit ${output.code})`);
    return null;
  }
}

/** The figures as a table and the ratios with their targets. */
export function renderA2A(figures: A2AFigures | null): string {
  if (!figures) return "A2A signalling: no figures (see above)";
  const { a2a, memory } = figures;
  const row = (label: string, pick: (t: ConnectTimes) => number) =>
    `${label.padEnd(28)}${pick(a2a).toFixed(1).padStart(10)}${
      pick(memory).toFixed(1).padStart(10)
    }`;
  const ratio = (pick: (t: ConnectTimes) => number) => pick(a2a) / pick(memory);
  const verdict = (value: number) =>
    `${value.toFixed(2)}×  target <= 2× (<= 1.5× once the pacing is gone)  ${
      value <= 2 ? "met" : "MISSED"
    }`;
  return [
    `A2A carries the signalling${figures.sealed ? " (sealed)" : ""}: user's message → channel open`,
    "",
    `${"".padEnd(28)}${"a2a".padStart(10)}${"memory".padStart(10)}`,
    `${"-".repeat(28)}${"  --------".repeat(2)}`,
    row("connect min, ms", (t) => t.minMs),
    row(`connect median, ms (n=${a2a.samples})`, (t) => t.medianMs),
    row("connect p90, ms", (t) => t.p90Ms),
    row("connect max, ms", (t) => t.maxMs),
    "",
    `connect median a2a / memory  ${verdict(ratio((t) => t.medianMs))}`,
    `connect p90 a2a / memory     ${verdict(ratio((t) => t.p90Ms))}`,
    `A2A requests per connect     ${figures.requestsPerConnect} (the streaming one included)`,
    "",
    "a2a: the desktop's SendStreamingMessage → the agent's data channel open (examples/a2a, Express",
    "  and the SDK's JSON-RPC client on 127.0.0.1); memory: the same file server and transports made →",
    "  the client's channel open, MemorySignaling; each makes its server inside its timer; the two",
    "  alternate in one process.",
  ].join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const figures = await measureInProcess(
    quick ? 10 : 30,
    quick ? 2 : 3,
    Deno.args.includes("--sealed"),
  );
  console.log(Deno.args.includes("--json") ? JSON.stringify(figures) : renderA2A(figures));
  // Every connection is closed, but node-datachannel sometimes keeps the
  // process alive after a teardown (a peer-layer matter): do not wait for it.
  Deno.exit(0);
}
