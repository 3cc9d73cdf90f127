/**
 * The founding scenario's connect, on 127.0.0.1: from the user's message (the
 * desktop's `SendStreamingMessage`) to the data channel open on the agent,
 * with the signalling inside the A2A task (`examples/a2a`: an A2A server over
 * Express, the SDK's client), against the same connect over
 * `MemorySignaling` in the same run, the two alternating. Also counts the
 * A2A requests the desktop makes per connect (the streaming request and the
 * replies).
 *
 * Also times each step of both connects (the A2A one from the user's message,
 * the other from its transports' making), and the A2A part alone
 * (`_a2a_exchange.ts`: the desktop's message, the agent's offer on its
 * stream, the desktop's reply with an answer, no peer connection): what a
 * connect in which the agent makes the offer costs on this SDK on top of its
 * WebRTC work.
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
import { exchange, startExchangeAgent } from "./_a2a_exchange.ts";
import { A2AClientSignaling } from "../src/a2a/mod.ts";

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
  /**
   * The A2A part alone (`_a2a_exchange.ts`): the desktop's message to the
   * agent's receipt of the answer to its offer, unsealed, no peer connection.
   */
  exchange: ConnectTimes;
  /** Each step's median ms from the start of its connect (the first time it happened). */
  steps: { a2a: Record<string, number>; memory: Record<string, number> };
}

/** The A2A connect's steps, in order, as the table names them. */
const A2A_STEPS = [
  "agent's executor runs",
  "agent's offer handed over",
  "desktop has the offer",
  "desktop's reply leaves",
  "agent applied the answer",
  "desktop makes its server",
  "ICE connected",
  "DTLS connected",
  "channel open",
] as const;

/** The agent's log steps and the client's connect steps, by the table's names. */
const AGENT_STEP: Record<string, (typeof A2A_STEPS)[number]> = {
  "message received": "agent's executor runs",
  "webrtc offer": "agent's offer handed over",
  "webrtc answer": "agent applied the answer",
  "webrtc ice": "ICE connected",
  "webrtc dtls": "DTLS connected",
  "webrtc channel": "channel open",
};
const CONNECT_STEP: Record<string, (typeof A2A_STEPS)[number]> = {
  offer: "agent's offer handed over",
  answer: "agent applied the answer",
  ice: "ICE connected",
  dtls: "DTLS connected",
  channel: "channel open",
};

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
  /** The current A2A connect's steps: when each first happened. */
  let seen = new Map<string, number>();
  const see = (step: string | undefined) =>
    step && !seen.has(step) && seen.set(step, performance.now());
  const agent = await startAgent({
    ticket: tickets?.guest,
    log: (step) => {
      if (step === "webrtc channel") channelOpen = performance.now();
      see(AGENT_STEP[step]);
    },
  });
  let requests = 0;
  /** The requests of the current A2A connect: the streaming one is the first. */
  let connectRequests = 0;
  // The desktop's first event of signalling (the agent's offer) marks when it had the offer.
  const receive = A2AClientSignaling.prototype.receive;
  A2AClientSignaling.prototype.receive = function (event) {
    const consumed = receive.call(this, event);
    if (consumed) see("desktop has the offer");
    return consumed;
  };
  const countingFetch: typeof fetch = (input, init) => {
    requests++;
    if (++connectRequests === 2) see("desktop's reply leaves");
    return fetch(input, init);
  };
  const client = await new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl: countingFetch })],
    }),
  ).createFromUrl(agent.url);
  const a2a: number[] = [];
  const memory: number[] = [];
  const exchanges: number[] = [];
  const requestCounts: number[] = [];
  const a2aSteps: Map<string, number>[] = [];
  const memorySteps: Map<string, number>[] = [];
  const exchangeAgent = await startExchangeAgent();
  const exchangeClient = await new ClientFactory().createFromUrl(exchangeAgent.url);
  try {
    for (let i = 0; i < warmup + connects; i++) {
      let sent = 0;
      let requestsAtOpen = 0;
      channelOpen = 0;
      seen = new Map();
      connectRequests = 0;
      const started = requests;
      const result = await askAgent(agent.url, "What does notes.txt say?", {
        root: folder,
        client,
        ticket: tickets?.host,
        log: (step) => {
          if (step === "message sent") sent = performance.now();
          if (step === "agent asks for the MCP server") see("desktop makes its server");
          if (step === "mcp channel open") requestsAtOpen = requests - started;
        },
      });
      if (!result.connected || channelOpen === 0) {
        throw new Error(`The A2A connect failed: ${result.answer}`);
      }
      const connectSteps = seen;
      const memoryMs = await memoryConnect(folder, (steps) => memorySteps.push(steps));
      const exchangeMs = await exchange(exchangeClient, exchangeAgent);
      if (i < warmup) {
        memorySteps.length = 0;
        continue;
      }
      a2a.push(channelOpen - sent);
      memory.push(memoryMs);
      exchanges.push(exchangeMs);
      requestCounts.push(requestsAtOpen);
      a2aSteps.push(new Map([...connectSteps].map(([step, at]) => [step, at - sent])));
    }
  } finally {
    await Promise.all([agent.close(), exchangeAgent.close()]);
    await Deno.remove(folder, { recursive: true });
  }
  return {
    a2a: times(a2a),
    memory: times(memory),
    requestsPerConnect: times(requestCounts).medianMs,
    sealed,
    exchange: times(exchanges),
    steps: { a2a: medianSteps(a2aSteps), memory: medianSteps(memorySteps) },
  };
}

/** Each step's median over the connects in which it happened. */
function medianSteps(runs: Map<string, number>[]): Record<string, number> {
  const steps: Record<string, number> = {};
  for (const step of A2A_STEPS) {
    const values = runs.flatMap((run) => run.has(step) ? [run.get(step)!] : []);
    if (values.length > 0) steps[step] = Number(times(values).medianMs.toFixed(2));
  }
  return steps;
}

/**
 * One connect over MemorySignaling: server and transports made → channel open
 * on the client. The server is the desktop's file server, made inside the
 * timer as the A2A connect makes it inside its own. The MCP client
 * initializes before both close, as the agent's does.
 */
async function memoryConnect(
  folder: string,
  onSteps: (steps: Map<string, number>) => void,
): Promise<number> {
  const started = performance.now();
  const steps = new Map<string, number>();
  const [a, b] = MemorySignaling.createPair();
  const server = createFileServer(folder);
  await server.connect(new WebRTCServerTransport({ signaling: b, ...LOCAL }));
  const transport = new WebRTCClientTransport({ signaling: a, ...LOCAL });
  let open = 0;
  transport.onconnectstep = (step) => {
    if (step === "channel") open = performance.now();
    const name = CONNECT_STEP[step];
    if (name && !steps.has(name)) steps.set(name, performance.now() - started);
  };
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(transport);
  await client.close();
  await server.close();
  onSteps(steps);
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
    `${value.toFixed(2)}×  target <= 1.5×  ${value <= 1.5 ? "met" : "MISSED"}`;
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
    ...renderSteps(figures),
    "",
    "a2a: the desktop's SendStreamingMessage → the agent's data channel open (examples/a2a, Express",
    "  and the SDK's JSON-RPC client on 127.0.0.1); memory: the same file server and transports made →",
    "  the client's channel open, MemorySignaling; each makes its server inside its timer; the two",
    "  alternate in one process.",
  ].join("\n");
}

/**
 * Where each connect's milliseconds go, step by step, and what the A2A part
 * alone costs against the `MemorySignaling` connect.
 */
function renderSteps(figures: A2AFigures): string[] {
  const { steps, exchange, memory } = figures;
  if (!steps || !exchange) return [];
  const cell = (value: number | undefined) =>
    (value === undefined ? "—" : value.toFixed(2)).padStart(10);
  const least = (exchange.medianMs + memory.medianMs) / memory.medianMs;
  return [
    "Step by step, median ms from the start (a2a: the user's message; memory: the transports made)",
    "",
    `${"".padEnd(28)}${"a2a".padStart(10)}${"memory".padStart(10)}`,
    `${"-".repeat(28)}${"  --------".repeat(2)}`,
    ...A2A_STEPS.map((step) =>
      `${step.padEnd(28)}${cell(steps.a2a[step])}${cell(steps.memory[step])}`
    ),
    "",
    `The A2A part alone (the desktop's message, the agent's offer on its stream, the desktop's reply`,
    `with an answer; no peer connection): median ${exchange.medianMs.toFixed(2)} ms, p90 ${
      exchange.p90Ms.toFixed(2)
    } ms. Added to the`,
    `MemorySignaling connect (${memory.medianMs.toFixed(2)} ms): ${
      least.toFixed(2)
    }×, what a connect in which the agent offers and the desktop`,
    "answers takes here done one step after another; only work done while a message travels (the",
    "desktop makes its server once its answer is on its way) comes off it.",
  ];
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
