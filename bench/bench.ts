/**
 * Compares this module's WebRTC transport with the SDK's in-memory transport
 * (the floor) and its Streamable HTTP transport (what users would pick
 * instead), side by side, on 127.0.0.1 only.
 *
 * For each transport: connect time (construct transports → `initialize`
 * done), `tools/call` round trip, and the throughput and peak RSS increase of
 * 1, 16 and 64 MiB tool results. `webrtc-worker` is this module as deployed,
 * through the signalling worker (run locally in Miniflare) with a ticket: only
 * its connect time is measured, since once connected its data channel is
 * `webrtc`'s. Then the worker alone: signalling handshakes per second, many
 * rooms at once, and the connect through rooms that only relay
 * (`bench/room_connect.ts`: what any room costs here, what sealing costs, and
 * what this worker's room costs beyond them). Last, sessions resumed after a lost path, in network
 * namespaces of their own (`bench/resume.ts`; as root on Linux only, else
 * skipped with the reason).
 *
 * Each transport, and the handshakes, run in their own Deno process, one
 * after the other, so one's memory and threads never weigh on another's
 * figures. Missed targets are reported, never failed on: the exit code is 0
 * unless the benchmark itself could not run.
 *
 * Run: `deno task bench` (add `--quick` for a short smoke run, `--json` for
 * one machine-readable JSON object on stdout, `--connect` for the connects of
 * `webrtc` and `webrtc-worker` alone and where their milliseconds go;
 * `--child=webrtc --sizes` runs only webrtc's results and its floor's, as
 * JSON lines).
 *
 * @module
 */
import type { A2AFigures } from "./a2a.ts";
import { renderRoomConnect, type RoomConnectFigures } from "./room_connect.ts";
import { renderRoomCost, type RoomCostFigures } from "./room_cost.ts";
import { renderSessions, type SessionFigures } from "./sessions.ts";
import { type FairnessFigures, renderFairness } from "./fairness.ts";
import { type RelayWindowFigures, renderRelayWindow } from "./relay.ts";
import { renderResume, type ResumeFigures } from "./resume.ts";
import type { HandshakePlan } from "./_handshakes.ts";
import type { ConnectStep } from "../mod.ts";
import {
  type ConnectSteps,
  createBench,
  prepareBlob,
  type Session,
  TRANSPORT_IDS,
  type TransportId,
} from "./_transports.ts";
import { LOOPBACK_MTU } from "../src/constants.ts";

const MIB = 1024 * 1024;

/** How much each phase measures. */
interface Plan {
  connectWarmup: number;
  connects: number;
  /**
   * Rounds of round trips, each on sessions of their own (webrtc's and the
   * floor's fresh connections): one connection's figure varies more than the
   * difference measured, so each round's warm-up and calls are a share of the
   * totals, and the figures pool every round's calls.
   */
  rttRounds: number;
  callWarmup: number;
  calls: number;
  /**
   * Sizes of tool result; `warmup` runs of each go first, unmeasured. With
   * `rssOfWarmup`, the peak RSS is the warm-up's instead of the measured
   * runs' (a process keeps most of what its first run of a size held, so its
   * first run is the one that tells the memory).
   */
  transfers: { mib: number; warmup: number; runs: number; rssOfWarmup?: boolean }[];
  handshakes: HandshakePlan;
  /** Milliseconds one transport's process may take before it is killed. */
  childTimeout: number;
}

const FULL: Plan = {
  connectWarmup: 3,
  connects: 60,
  rttRounds: 5,
  callWarmup: 500,
  calls: 3000,
  transfers: [
    // A 1 MiB result takes 8–12 ms, and on a shared machine one run in five
    // or so takes 2–8× that: the median is taken over more runs.
    { mib: 1, warmup: 3, runs: 15 },
    { mib: 16, warmup: 2, runs: 5 },
    // One run was the first 64 MiB the process received, webrtc's always
    // first: 0.44–0.88× the floor's first where the median of three after it
    // gave 0.82–1.13× in the same processes (a first run takes 1.3–2.6× as
    // long as the next ones, with no garbage collection in it, while the
    // process's memory grows). So the rate is the median of three after a
    // warm-up, and the peak RSS the warm-up's, the first run holding 64 MiB.
    { mib: 64, warmup: 1, runs: 3, rssOfWarmup: true },
  ],
  handshakes: { rooms: 50, warmupRounds: 1, rounds: 20 },
  childTimeout: 240_000,
};

const QUICK: Plan = {
  connectWarmup: 2,
  connects: 10,
  rttRounds: 2,
  callWarmup: 100,
  calls: 300,
  transfers: [
    { mib: 1, warmup: 1, runs: 3 },
    { mib: 16, warmup: 1, runs: 1 },
    { mib: 64, warmup: 0, runs: 1 },
  ],
  handshakes: { rooms: 50, warmupRounds: 1, rounds: 5 },
  childTimeout: 17_000,
};

/** How long a transport's process may take to exit once it has reported. */
const EXIT_GRACE_MS = 5_000;

/**
 * `--connect`: only the connects of `webrtc` and `webrtc-worker`, and where
 * their milliseconds go (the children stop after their connects).
 */
const CONNECTS_ONLY = Deno.args.includes("--connect");

/** `--sizes` (with `--child`): only the results, no connects nor round trips. */
const SIZES_ONLY = Deno.args.includes("--sizes");

/** Transports of which only the connect time is measured. */
const CONNECT_ONLY: readonly TransportId[] = ["webrtc-worker"];

/** The `--child` that measures signalling handshakes through the worker. */
const SIGNALING = "signaling";

/** Connect times, in milliseconds. */
interface ConnectFigures {
  samples: number;
  medianMs: number;
  p90Ms: number;
  maxMs: number;
  /** Median ms from the start to each step the client reported (WebRTC transports). */
  stepsMedianMs?: ConnectSteps;
}

/** `tools/call` round trips, in milliseconds. */
interface RttFigures {
  calls: number;
  p50Ms: number;
  p99Ms: number;
  /** Each round's p50, in round order (each round on new sessions). */
  roundP50Ms: number[];
}

/** One tool-result size: medians over its runs, and the largest RSS increase. */
interface TransferFigures {
  bytes: number;
  runs: number;
  medianMs: number;
  /** Megabytes (10^6 bytes) per second, median over the runs. */
  mbPerS: number;
  /** The first run's time, ms: a warm-up's when there is one (the first this process made). */
  firstMs?: number;
  /**
   * Largest increase of the process's RSS over its baseline during a run (the
   * warm-up's with `rssOfWarmup`), MiB.
   */
  peakRssMiB: number;
}

/**
 * How the handshakes find their rooms: `newRooms`, new rooms and keys every
 * round (each handshake sets its room up too); `rejoin`, the same rooms every
 * round, set up once.
 */
const HANDSHAKE_MODES = ["newRooms", "rejoin"] as const;
type HandshakeMode = typeof HANDSHAKE_MODES[number];

/** Signalling handshakes through the worker, many rooms at once. */
interface HandshakeFigures {
  /** Rooms at once in one round (a host and a guest each). */
  rooms: number;
  /** Counted rounds. */
  rounds: number;
  /** Handshakes completed in the counted rounds. */
  handshakes: number;
  /** Handshakes failed in the counted rounds. */
  failed: number;
  /** Sum of the counted rounds' durations, seconds. */
  seconds: number;
  /** Completed handshakes per second of the counted rounds. */
  perSecond: number;
  /** One handshake, host starts joining → both sides received everything, ms. */
  medianMs: number;
  p90Ms: number;
  maxMs: number;
  /**
   * Cores busy on average during the counted rounds: the measuring process
   * (host and guest of every room) and workerd; absent off Linux.
   */
  cores?: { clients: number; workerd: number };
}

/** How a measuring process went. */
interface ChildOutcome {
  /** Whether the process exited by itself after reporting. */
  exitedCleanly: boolean;
  /** Why the figures are incomplete, if they are. */
  error: string | null;
}

/** The handshakes, as the report holds them. */
interface SignalingFigures extends ChildOutcome {
  handshakes: Record<HandshakeMode, HandshakeFigures | null>;
}

/** Everything measured for one transport; a phase that did not finish is absent. */
interface TransportFigures {
  connect: ConnectFigures | null;
  rtt: RttFigures | null;
  transfer: Record<string, TransferFigures>;
  /** Whether the transport's process exited by itself after reporting. */
  exitedCleanly: boolean;
  /** Why the figures are incomplete, if they are. */
  error: string | null;
}

/** One target: a ratio of two figures (or one figure) and the bound it should meet. */
interface Ratio {
  name: string;
  value: number | null;
  /** `ms` or `/s` for a figure; absent for a ratio. */
  unit?: string;
  target: string | null;
  met: boolean | null;
}

/** The result of a run: what `--json` prints. */
interface Report {
  quick: boolean;
  date: string;
  deno: string;
  os: string;
  transports: Record<TransportId, TransportFigures>;
  signaling: SignalingFigures;
  ratios: Ratio[];
  /** The A2A connect against MemorySignaling (`bench/a2a.ts`). */
  a2a: A2AFigures | null;
  /** Many sessions on one connection (`bench/sessions.ts`). */
  sessions: SessionFigures | null;
  /** The relay's 16 MiB result with its window and without (`bench/relay.ts --window`). */
  relayWindow: RelayWindowFigures | null;
  /** Small calls beside another session's large result (`bench/fairness.ts`). */
  fairness: FairnessFigures | null;
  /** Sessions resumed after a lost path, in network namespaces (`bench/resume.ts`). */
  resume: ResumeFigures | null;
  /** The connect through rooms that only relay, and through the worker (`bench/room_connect.ts`). */
  roomConnect: RoomConnectFigures | null;
  /** What a pairing costs the worker against rooms that only relay (`bench/room_cost.ts`). */
  roomCost: RoomCostFigures | null;
}

/** One line a transport's process writes to stdout. */
type ChildLine =
  | { phase: "connect"; figures: ConnectFigures }
  | { phase: "rtt"; of: TransportId; figures: RttFigures }
  | { phase: "transfer"; of: TransportId; key: string; figures: TransferFigures }
  | { phase: "handshakes"; mode: HandshakeMode; figures: HandshakeFigures }
  | { phase: "error"; message: string }
  | { phase: "done" };

// ---------------------------------------------------------------- child side

/** Measures one transport and writes one JSON line per finished phase. */
async function runChild(id: TransportId, plan: Plan): Promise<void> {
  const emit = (line: ChildLine) => console.log(JSON.stringify(line));
  const bench = createBench(id);
  const sampler = new RssSampler();
  try {
    const times: number[] = [];
    const stepTimes = new Map<ConnectStep, number[]>();
    for (let i = 0; i < (SIZES_ONLY ? 0 : plan.connectWarmup + plan.connects); i++) {
      const { session, ms, steps } = await bench.connect();
      if (i >= plan.connectWarmup) {
        times.push(ms);
        for (const [step, at] of Object.entries(steps ?? {}) as [ConnectStep, number][]) {
          stepTimes.set(step, [...stepTimes.get(step) ?? [], at]);
        }
      }
      await session.close();
    }
    times.sort((a, b) => a - b);
    if (times.length > 0) {
      emit({
        phase: "connect",
        figures: {
          samples: times.length,
          medianMs: percentile(times, 50),
          p90Ms: percentile(times, 90),
          maxMs: times[times.length - 1],
          ...stepTimes.size > 0 && {
            stepsMedianMs: Object.fromEntries(
              [...stepTimes].map((
                [step, at],
              ) => [step, percentile(at.sort((a, b) => a - b), 50)]),
            ),
          },
        },
      });
    }
    if (CONNECT_ONLY.includes(id) || CONNECTS_ONLY) return;

    // webrtc's floor is measured in the same process, interleaved with it, so
    // that both meet the same load: every other call and run is the floor's.
    const connectAll = async () => {
      const { session } = await bench.connect();
      const floor = id === "webrtc" ? (await createBench("floor").connect()).session : undefined;
      return floor ? [{ of: id, session }, { of: "floor" as const, session: floor }] : [{
        of: id,
        session,
      }];
    };
    const closeAll = async (measured: { session: Session }[]) => {
      for (const { session } of measured) await session.close();
    };
    const rtts = new Map<TransportId, number[]>();
    const roundP50s = new Map<TransportId, number[]>();
    for (let round = 0; round < (SIZES_ONLY ? 0 : plan.rttRounds); round++) {
      // As before each transfer: what the last phase left is collected first.
      collectGarbage();
      await delay(50);
      const measured = await connectAll();
      try {
        const warmup = Math.ceil(plan.callWarmup / plan.rttRounds);
        const calls = Math.ceil(plan.calls / plan.rttRounds);
        const times = new Map(measured.map(({ of }) => [of, [] as number[]]));
        for (let i = 0; i < warmup + calls; i++) {
          for (const { of, session } of i % 2 ? [...measured].reverse() : measured) {
            const started = performance.now();
            const result = await session.client.callTool({
              name: "echo",
              arguments: { text: `ping ${i}` },
            });
            const ms = performance.now() - started;
            if (firstText(result) !== `ping ${i}`) throw new Error("echo returned the wrong text");
            if (i >= warmup) times.get(of)!.push(ms);
          }
        }
        for (const [of, round] of times) {
          rtts.set(of, [...rtts.get(of) ?? [], ...round]);
          roundP50s.set(of, [...roundP50s.get(of) ?? [], median(round)]);
        }
      } finally {
        await closeAll(measured);
      }
    }
    for (const [of, times] of rtts) {
      times.sort((a, b) => a - b);
      emit({
        phase: "rtt",
        of,
        figures: {
          calls: times.length,
          p50Ms: percentile(times, 50),
          p99Ms: percentile(times, 99),
          roundP50Ms: roundP50s.get(of)!,
        },
      });
    }

    const measured = await connectAll();
    try {
      for (const { mib, warmup, runs, rssOfWarmup } of plan.transfers) {
        const bytes = mib * MIB;
        prepareBlob(bytes);
        const durations = new Map(measured.map(({ of }) => [of, [] as number[]]));
        const firsts = new Map<TransportId, number>();
        const peaks = new Map(measured.map(({ of }) => [of, 0]));
        for (let run = 0; run < warmup + runs; run++) {
          for (const { of, session } of run % 2 ? [...measured].reverse() : measured) {
            collectGarbage();
            await delay(50);
            const baseline = Deno.memoryUsage().rss;
            await sampler.start();
            const ms = await transfer(session, bytes, plan);
            const peak = await sampler.stop();
            if (rssOfWarmup ? run < warmup : run >= warmup) {
              peaks.set(of, Math.max(peaks.get(of)!, peak - baseline));
            }
            if (run === 0) firsts.set(of, ms);
            if (run >= warmup) durations.get(of)!.push(ms);
          }
        }
        for (const [of, times] of durations) {
          times.sort((a, b) => a - b);
          const medianMs = percentile(times, 50);
          emit({
            phase: "transfer",
            of,
            key: `${mib}MiB`,
            figures: {
              bytes,
              runs,
              medianMs,
              mbPerS: bytes / 1e6 / (medianMs / 1000),
              firstMs: firsts.get(of),
              peakRssMiB: Math.max(0, peaks.get(of)!) / MIB,
            },
          });
        }
      }
    } finally {
      await closeAll(measured);
    }
  } catch (error) {
    emit({ phase: "error", message: error instanceof Error ? error.message : String(error) });
  } finally {
    sampler.terminate();
    await bench.teardown();
    emit({ phase: "done" });
  }
}

/** Moves `bytes` through `session` (a tool result, or the floor's raw channel); ms. */
async function transfer(session: Session, bytes: number, plan: Plan): Promise<number> {
  if (session.transfer) return await session.transfer(bytes);
  const started = performance.now();
  const result = await session.client.callTool({ name: "blob", arguments: { bytes } }, undefined, {
    timeout: plan.childTimeout,
  });
  const ms = performance.now() - started;
  if (firstText(result).length !== bytes) {
    throw new Error(`blob returned ${firstText(result).length} bytes, not ${bytes}`);
  }
  return ms;
}

/** Measures signalling handshakes through the worker and writes one JSON line. */
async function runSignalingChild(plan: Plan): Promise<void> {
  const emit = (line: ChildLine) => console.log(JSON.stringify(line));
  try {
    // Loaded here so that the transports' processes never load Miniflare.
    const { measureHandshakes } = await import("./_handshakes.ts");
    const samples = await measureHandshakes(plan.handshakes);
    for (const mode of HANDSHAKE_MODES) {
      const { latencies, seconds, failed, cpu, firstError } = samples[mode];
      if (firstError !== undefined) emit({ phase: "error", message: `${mode}: ${firstError}` });
      if (latencies.length === 0) continue;
      latencies.sort((a, b) => a - b);
      emit({
        phase: "handshakes",
        mode,
        figures: {
          rooms: plan.handshakes.rooms,
          rounds: plan.handshakes.rounds,
          handshakes: latencies.length,
          failed,
          seconds,
          perSecond: latencies.length / seconds,
          medianMs: percentile(latencies, 50),
          p90Ms: percentile(latencies, 90),
          maxMs: latencies[latencies.length - 1],
          cores: cpu && { clients: cpu.clients / seconds, workerd: cpu.workerd / seconds },
        },
      });
    }
  } catch (error) {
    emit({ phase: "error", message: error instanceof Error ? error.message : String(error) });
  } finally {
    emit({ phase: "done" });
  }
}

/** The RSS sampling worker, started once so that starting it costs no memory mid-run. */
class RssSampler {
  readonly #worker = new Worker(new URL("./_rss_sampler.ts", import.meta.url), {
    type: "module",
  });

  start(): Promise<void> {
    this.#worker.postMessage("start");
    // Let the first sample be taken before the transfer starts.
    return delay(5);
  }

  stop(): Promise<number> {
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#worker.onmessage = (event: MessageEvent<number>) => resolve(event.data);
    this.#worker.postMessage("stop");
    return promise;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

function firstText(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content;
  const first = content?.[0];
  if (first?.type !== "text" || typeof first.text !== "string") {
    throw new Error("The tool result holds no text");
  }
  return first.text;
}

/** Runs V8's collector when the process was started with `--expose-gc`. */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

// --------------------------------------------------------------- parent side

/**
 * Runs one measuring process (`--child=<name>`) within the plan's time and
 * hands each line it reports to `onLine`.
 */
async function runProcess(
  name: string,
  quick: boolean,
  plan: Plan,
  onLine: (line: ChildLine) => void,
): Promise<ChildOutcome> {
  const outcome: ChildOutcome = { exitedCleanly: false, error: null };
  const args = ["run", "-A", "--v8-flags=--expose-gc", import.meta.filename!, `--child=${name}`];
  if (quick) args.push("--quick");
  if (CONNECTS_ONLY) args.push("--connect");
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();

  let killed = false;
  const kill = () => {
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };
  const deadline = setTimeout(kill, plan.childTimeout);
  let grace: ReturnType<typeof setTimeout> | undefined;
  let done = false;
  try {
    for await (const line of lines(child.stdout)) {
      let parsed: ChildLine;
      try {
        parsed = JSON.parse(line);
      } catch {
        continue; // Not ours: a library writing to stdout.
      }
      if (parsed.phase === "error") outcome.error = parsed.message;
      else if (parsed.phase === "done") {
        done = true;
        clearTimeout(deadline);
        grace = setTimeout(kill, EXIT_GRACE_MS);
      } else onLine(parsed);
    }
    const status = await child.status;
    outcome.exitedCleanly = done && !killed && status.success;
  } finally {
    clearTimeout(deadline);
    clearTimeout(grace);
  }
  if (!done) {
    outcome.error ??= killed
      ? `Stopped after ${plan.childTimeout / 1000} s: the measurement did not finish in time`
      : "The measuring process ended before it finished";
  }
  return outcome;
}

/** Measures one transport in its own process. */
async function measure(
  id: TransportId,
  quick: boolean,
  plan: Plan,
  transports: Partial<Record<TransportId, TransportFigures>>,
): Promise<void> {
  type Measured = Omit<TransportFigures, keyof ChildOutcome>;
  const empty = (): Measured => ({ connect: null, rtt: null, transfer: {} });
  const figures: Partial<Record<TransportId, Measured>> = {
    [id]: empty(),
  };
  const outcome = await runProcess(id, quick, plan, (line) => {
    if (line.phase === "connect") figures[id]!.connect = line.figures;
    else if (line.phase === "rtt") (figures[line.of] ??= empty()).rtt = line.figures;
    else if (line.phase === "transfer") {
      (figures[line.of] ??= empty()).transfer[line.key] = line.figures;
    }
  });
  for (const [of, measured] of Object.entries(figures)) {
    transports[of as TransportId] = { ...measured, ...outcome };
  }
}

/** Measures signalling handshakes through the worker in their own process. */
async function measureSignaling(quick: boolean, plan: Plan): Promise<SignalingFigures> {
  const handshakes: SignalingFigures["handshakes"] = { newRooms: null, rejoin: null };
  const outcome = await runProcess(SIGNALING, quick, plan, (line) => {
    if (line.phase === "handshakes") handshakes[line.mode] = line.figures;
  });
  return { handshakes, ...outcome };
}

/** Splits a byte stream into lines. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let end: number;
    while ((end = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, end);
      rest = rest.slice(end + 1);
    }
  }
  if (rest) yield rest;
}

function ratios(
  transports: Record<TransportId, TransportFigures>,
  signaling: SignalingFigures,
): Ratio[] {
  const webrtc = transports["webrtc"];
  const worker = transports["webrtc-worker"];
  const memory = transports["in-memory"];
  const http = transports["streamable-http"];
  const floor = transports["floor"];
  const divide = (a?: number, b?: number) =>
    a === undefined || b === undefined || b === 0 ? null : a / b;
  const atMost = (name: string, value: number | null, bound: number, unit?: string): Ratio => ({
    name,
    value,
    unit,
    target: `<= ${bound}`,
    met: value === null ? null : value <= bound,
  });
  const atLeast = (name: string, value: number | null, bound: number, unit?: string): Ratio => ({
    name,
    value,
    unit,
    target: `>= ${bound}`,
    met: value === null ? null : value >= bound,
  });
  const payload64 = webrtc.transfer["64MiB"] && webrtc.transfer["64MiB"].bytes / MIB;
  return [
    atMost(
      "rtt p50 webrtc / floor (bare transport)",
      divide(webrtc.rtt?.p50Ms, floor.rtt?.p50Ms),
      1.15,
    ),
    atLeast(
      "16 MiB MB/s webrtc / floor (raw channel)",
      divide(webrtc.transfer["16MiB"]?.mbPerS, floor.transfer["16MiB"]?.mbPerS),
      0.9,
    ),
    atMost(
      "64 MiB peak RSS webrtc / payload",
      divide(webrtc.transfer["64MiB"]?.peakRssMiB, payload64),
      3,
    ),
    atMost(
      "connect p90 / median webrtc",
      divide(webrtc.connect?.p90Ms, webrtc.connect?.medianMs),
      2,
    ),
    atMost(
      "connect p90 / median webrtc-worker",
      divide(worker.connect?.p90Ms, worker.connect?.medianMs),
      2,
    ),
    atMost("rtt p50 webrtc / in-memory", divide(webrtc.rtt?.p50Ms, memory.rtt?.p50Ms), 4),
    atMost("rtt p50 webrtc / streamable-http", divide(webrtc.rtt?.p50Ms, http.rtt?.p50Ms), 0.25),
    atLeast(
      "16 MiB MB/s webrtc / streamable-http",
      divide(webrtc.transfer["16MiB"]?.mbPerS, http.transfer["16MiB"]?.mbPerS),
      1,
    ),
    {
      name: "connect median webrtc / streamable-http",
      value: divide(webrtc.connect?.medianMs, http.connect?.medianMs),
      target: null,
      met: null,
    },
    atMost(
      "connect median webrtc-worker / streamable-http",
      divide(worker.connect?.medianMs, http.connect?.medianMs),
      0.5,
    ),
    atMost("connect median webrtc-worker", worker.connect?.medianMs ?? null, 50, "ms"),
    atLeast(
      "signalling handshakes through the worker, new rooms",
      signaling.handshakes.newRooms?.perSecond ?? null,
      200,
      "/s",
    ),
  ];
}

function render(report: Report, plan: Plan): string {
  const ids = TRANSPORT_IDS;
  const number = (value: number | undefined, digits: number) =>
    value === undefined ? "—" : value.toFixed(digits);
  const rows: [string, (figures: TransportFigures) => string][] = [
    [`connect median, ms (n=${plan.connects})`, (f) => number(f.connect?.medianMs, 1)],
    ["connect p90, ms", (f) => number(f.connect?.p90Ms, 1)],
    ["connect max, ms", (f) => number(f.connect?.maxMs, 1)],
    [
      `tools/call p50, ms (n=${plan.calls}, ${plan.rttRounds} rounds)`,
      (f) => number(f.rtt?.p50Ms, 3),
    ],
    ["tools/call p99, ms", (f) => number(f.rtt?.p99Ms, 3)],
  ];
  for (const { mib, warmup, runs } of plan.transfers) {
    const key = `${mib}MiB`;
    const of = `${runs > 1 ? `median of ${runs}` : "1 run"}${warmup ? ` after ${warmup}` : ""}`;
    rows.push([`${mib} MiB result, MB/s (${of})`, (f) => number(f.transfer[key]?.mbPerS, 1)]);
    rows.push([`${mib} MiB result, peak RSS +MiB`, (f) => number(f.transfer[key]?.peakRssMiB, 1)]);
  }
  const out: string[] = [
    `MCP transports on 127.0.0.1 (${
      report.quick ? "quick" : "full"
    } run, Deno ${report.deno}, ${report.os})`,
    "",
    ...formatTable([
      ["", ...ids],
      ...rows.map(([label, cell]) => [label, ...ids.map((id) => cell(report.transports[id]))]),
    ]),
  ];

  // Every figure against the floor of this run: times ÷ the floor's, rates ÷ the floor's.
  const floor = report.transports["floor"];
  const over = (value: number | undefined, base: number | undefined) =>
    value === undefined || base === undefined || base === 0 ? "—" : `${(value / base).toFixed(2)}×`;
  const floorRows: [string, (figures: TransportFigures) => string][] = [
    ["tools/call p50", (f) => over(f.rtt?.p50Ms, floor.rtt?.p50Ms)],
    ["tools/call p99", (f) => over(f.rtt?.p99Ms, floor.rtt?.p99Ms)],
    ...plan.transfers.map(({ mib }): [string, (figures: TransportFigures) => string] => [
      `${mib} MiB result, MB/s`,
      (f) => over(f.transfer[`${mib}MiB`]?.mbPerS, floor.transfer[`${mib}MiB`]?.mbPerS),
    ]),
  ];
  const others = ids.filter((id) => id !== "floor");
  out.push(
    "",
    "Against the floor of this run (times and rates ÷ the floor's: a time above 1× is slower, a rate",
    "below 1× is slower)",
    "",
    ...formatTable([
      ["", ...others],
      ...floorRows.map((
        [label, cell],
      ) => [label, ...others.map((id) => cell(report.transports[id]))]),
    ]),
  );

  const webrtcRounds = report.transports.webrtc.rtt?.roundP50Ms ?? [];
  const floorRounds = floor.rtt?.roundP50Ms ?? [];
  if (webrtcRounds.length > 0 && webrtcRounds.length === floorRounds.length) {
    out.push(
      "",
      `webrtc tools/call p50 ÷ floor's, each round on new connections: ${
        webrtcRounds.map((ms, i) => `${(ms / floorRounds[i]).toFixed(2)}×`).join(", ")
      }`,
    );
  }

  out.push(...renderConnectSteps(report));

  const { rooms, rounds } = plan.handshakes;
  const shakes = report.signaling.handshakes;
  const shakeRows: [string, (figures: HandshakeFigures | null) => string][] = [
    ["handshakes/s", (f) => number(f?.perSecond, 1)],
    [`handshake median, ms (n=${rooms * rounds})`, (f) => number(f?.medianMs, 1)],
    ["handshake p90, ms", (f) => number(f?.p90Ms, 1)],
    ["handshake max, ms", (f) => number(f?.maxMs, 1)],
    ["failed", (f) => number(f?.failed, 0)],
    [
      "cores busy: clients / workerd",
      (f) => f?.cores ? `${f.cores.clients.toFixed(2)} / ${f.cores.workerd.toFixed(2)}` : "—",
    ],
  ];
  out.push(
    "",
    `Signalling handshakes through the worker: ${rooms} rooms at once × ${rounds} rounds`,
    "",
    ...formatTable([
      ["", "new rooms", "rejoin"],
      ...shakeRows.map(([label, cell]) => [label, cell(shakes.newRooms), cell(shakes.rejoin)]),
    ]),
  );

  out.push("");
  const nameWidth = Math.max(...report.ratios.map((ratio) => ratio.name.length));
  for (const ratio of report.ratios) {
    const unit = ratio.unit === undefined ? "×" : ratio.unit === "ms" ? " ms" : ratio.unit;
    const value = ratio.value === null
      ? "—"
      : `${ratio.value.toFixed(ratio.unit === undefined ? 2 : 1)}${unit}`;
    const verdict = ratio.target === null
      ? ""
      : `target ${ratio.target}${unit}  ${
        ratio.met === null ? "unknown" : ratio.met ? "met" : "MISSED"
      }`;
    out.push(`${ratio.name.padEnd(nameWidth)}  ${value.padStart(9)}  ${verdict}`.trimEnd());
  }
  const outcomes: [string, ChildOutcome][] = [
    ...ids.filter((id) => id !== "floor" || report.transports.floor.error !== null)
      .map((id): [string, ChildOutcome] => [id, report.transports[id]]),
    ["signalling", report.signaling],
  ];
  for (const [name, outcome] of outcomes) {
    if (outcome.error) out.push(`\n${name}: ${outcome.error}`);
    else if (!outcome.exitedCleanly) {
      out.push(
        `\n${name}: its process did not exit within ${
          EXIT_GRACE_MS / 1000
        } s of reporting (stopped; figures are complete)`,
      );
    }
  }
  out.push(
    "",
    `floor: node-datachannel's native API on 127.0.0.1, SCTP MTU ${LOOPBACK_MTU} as webrtc's (bench/_native.ts):`,
    "  tools/call = the SDK over a bare transport (one JSON.stringify out, one JSON.parse in);",
    "  results = raw bytes in 64 KiB messages, server to client as a result goes, same water marks,",
    "  no JSON at all. No connect: its plain trickle ICE stalls on libdatachannel's 1 s DTLS",
    "  retransmission (the stall webrtc avoids).",
    "Connect: new transports → client.connect() resolved (initialize done), sequential, each closed.",
    "webrtc-worker: an agent joins the local signalling worker's room (Miniflare, 127.0.0.1) with a",
    "  ticket → initialize done; the listener waits in its room; signalling sealed end to end. Once",
    "  connected its data channel is webrtc's, so only the connect is measured.",
    "streamable-http connects on loopback with no edge in between: the baseline, from this run.",
    "Handshake: a host and a guest join a room; the guest sends a ~1 KiB offer and 10 candidates,",
    "  the host an answer and 10 candidates; done when both received all. handshakes/s = handshakes",
    "  ÷ the rounds' time (first join → last done); sockets close after each round, untimed.",
    "  new rooms: new room ids and keys every round, so each handshake also sets its room up (in",
    "  Miniflare: a new SQLite database on disk per room); rejoin: the same rooms every round.",
    "  cores busy: CPU time ÷ the rounds' time, of this benchmark's process and of workerd.",
    "RSS: the whole process (client and server share it), sampled every 10 ms; MB = 10^6 bytes.",
    "in-memory hands the result object over by reference: its MB/s is not a transfer rate.",
  );
  return out.join("\n");
}

// ------------------------------------------------------------------- helpers

/** Lines of a table: the first row is the header, the first column left-aligned. */
function formatTable(table: string[][]): string[] {
  const widths = table[0].map((_, column) => Math.max(...table.map((row) => row[column].length)));
  const lines = table.map((row) =>
    row.map((cell, column) =>
      column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])
    ).join("  ")
  );
  lines.splice(1, 0, widths.map((width) => "-".repeat(width)).join("  "));
  return lines;
}

/** Rounds the JSON report's fractions to thousandths (microseconds for times). */
function rounded(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isInteger(value)
    ? Math.round(value * 1000) / 1000
    : value;
}

/** Nearest-rank percentile of sorted values. */
/** The median of `values`, in any order. */
function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** The steps of a WebRTC connect, in the order they happen. */
const CONNECT_STEPS: readonly ConnectStep[] = [
  "signaling",
  "offer",
  "answer",
  "ice",
  "dtls",
  "channel",
];

/**
 * Where a connect's milliseconds go, with in-process signalling and through
 * the worker: each step's median time from the start, the time since the step
 * before, and what the worker adds to that part.
 */
function renderConnectSteps(report: Report): string[] {
  const direct = report.transports.webrtc.connect;
  const worker = report.transports["webrtc-worker"].connect;
  if (!direct?.stepsMedianMs || !worker?.stepsMedianMs) return [];
  const at = (figures: ConnectFigures, step: ConnectStep | "initialized") =>
    step === "initialized" ? figures.medianMs : figures.stepsMedianMs?.[step];
  const steps = [...CONNECT_STEPS, "initialized"] as const;
  const part = (figures: ConnectFigures, i: number) => {
    const end = at(figures, steps[i]);
    const start = i === 0 ? 0 : at(figures, steps[i - 1]);
    return end === undefined || start === undefined ? undefined : end - start;
  };
  const ms = (value: number | undefined) => value === undefined ? "—" : value.toFixed(1);
  return [
    "",
    "Connect, step by step (median ms from the start, and since the step before; the worker's",
    "signaling is its join with the host there and the hello handed over, its offer waits for the",
    "host's sealed hello)",
    "",
    ...formatTable([
      ["", "webrtc at", "part", "webrtc-worker at", "part", "worker adds"],
      ...steps.map((step, i) => {
        const d = part(direct, i);
        const w = part(worker, i);
        return [
          step,
          ms(at(direct, step)),
          ms(d),
          ms(at(worker, step)),
          ms(w),
          d === undefined || w === undefined ? "—" : (w - d).toFixed(1),
        ];
      }),
    ]),
  ];
}

function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1));
  return sorted[index];
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const json = args.includes("--json");
  const plan = quick ? QUICK : FULL;
  const child = args.find((arg) => arg.startsWith("--child="))?.slice("--child=".length);
  if (child === SIGNALING) return await runSignalingChild(plan);
  if (child !== undefined) {
    if (!(TRANSPORT_IDS as readonly string[]).includes(child)) {
      throw new TypeError(`Cannot run benchmark as '--child' is unknown: received ${child}`);
    }
    await runChild(child as TransportId, plan);
    return;
  }
  const transports = {} as Record<TransportId, TransportFigures>;
  if (CONNECTS_ONLY) {
    for (const id of ["webrtc", "webrtc-worker"] as const) {
      if (!json) console.error(`measuring ${id}'s connect…`);
      await measure(id, quick, plan, transports);
    }
    const direct = transports.webrtc.connect;
    const worker = transports["webrtc-worker"].connect;
    const report = { transports } as Report;
    console.log(
      json ? JSON.stringify({ webrtc: direct, "webrtc-worker": worker }, rounded, 2) : [
        `connect median webrtc ${direct?.medianMs.toFixed(1)} ms, webrtc-worker ${
          worker?.medianMs.toFixed(1)
        } ms (n=${plan.connects}): ${
          direct && worker ? (worker.medianMs / direct.medianMs).toFixed(2) : "—"
        }×`,
        ...renderConnectSteps(report),
      ].join("\n"),
    );
    return;
  }
  for (const id of TRANSPORT_IDS) {
    // The floor is measured by webrtc's process, interleaved with it.
    if (id === "floor") continue;
    if (!json) console.error(`measuring ${id}…`);
    await measure(id, quick, plan, transports);
  }
  transports.floor ??= {
    connect: null,
    rtt: null,
    transfer: {},
    exitedCleanly: false,
    error: "Not measured: webrtc's process, which measures it, did not report it",
  };
  if (!json) console.error("measuring signalling handshakes…");
  const signaling = await measureSignaling(quick, plan);
  if (!json) console.error("measuring the connect through rooms that only relay…");
  const roomConnect = await measureInChild<RoomConnectFigures>(
    "room connect",
    "./room_connect.ts",
    {
      quick,
      timeoutMs: Math.max(plan.childTimeout, 120_000),
    },
  );
  if (!json) console.error("measuring what a pairing costs the worker…");
  const roomCost = await measureInChild<RoomCostFigures>("room cost", "./room_cost.ts", {
    quick,
    timeoutMs: Math.max(plan.childTimeout, 180_000),
  });
  if (!json) console.error("measuring the A2A connect…");
  const { measureA2A, renderA2A } = await import("./a2a.ts"); // Not in the children.
  const a2a = await measureA2A(quick);
  if (!json) console.error("measuring sessions on one connection…");
  // A 64 MiB transfer takes seconds even in a quick run.
  const sessions = await measureInChild<SessionFigures>("sessions", "./sessions.ts", {
    quick,
    timeoutMs: Math.max(plan.childTimeout, 120_000),
  });
  if (!json) console.error("measuring the relay's window…");
  // Two 16 MiB results at the default budget take about 8 s alone.
  const relayWindow = await measureInChild<RelayWindowFigures>("relay window", "./relay.ts", {
    quick,
    timeoutMs: Math.max(plan.childTimeout, 180_000),
    args: ["--window"],
  });
  if (!json) console.error("measuring sessions beside a large result…");
  const fairness = await measureInChild<FairnessFigures>("fairness", "./fairness.ts", {
    quick,
    timeoutMs: Math.max(plan.childTimeout, 120_000),
    v8Flags: ["--expose-gc"],
  });
  if (!json) console.error("measuring sessions resumed after a lost path…");
  // Ten outages of 5 to 11 s and ten moves of about 3 s.
  const resume = await measureInChild<ResumeFigures>("resume", "./resume.ts", {
    quick,
    timeoutMs: Math.max(plan.childTimeout, 240_000),
  });
  const report: Report = {
    quick,
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    transports,
    signaling,
    ratios: ratios(transports, signaling),
    a2a,
    sessions,
    relayWindow,
    fairness,
    resume,
    roomConnect,
    roomCost,
  };
  console.log(
    json
      ? JSON.stringify(report, rounded, 2)
      : `${render(report, plan)}\n\n${renderRoomConnect(roomConnect)}\n\n${
        renderRoomCost(roomCost)
      }\n\n${renderA2A(a2a)}\n\n${renderSessions(sessions)}\n\n${
        renderRelayWindow(relayWindow)
      }\n\n${
        fairness ? renderFairness(fairness) : "Sessions beside a large result: not measured"
      }\n\n${renderResume(resume)}`,
  );
}

/**
 * Runs a benchmark script of this folder in a process of its own (each has
 * its own node-datachannel state and threads) with `--json`, and `--quick`
 * for a quick run, and reads the JSON of its last line of output.
 *
 * @returns The figures, or `null` if the script failed, printed no JSON or
 * ran past `timeoutMs` (then the end of its stderr is printed).
 */
async function measureInChild<T>(
  name: string,
  script: string,
  options: { quick: boolean; timeoutMs: number; args?: string[]; v8Flags?: string[] },
): Promise<T | null> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(options.v8Flags ?? []).map((flag) => `--v8-flags=${flag}`),
      new URL(script, import.meta.url).pathname,
      ...(options.args ?? []),
      "--json",
      ...(options.quick ? ["--quick"] : []),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
  const { stdout, stderr } = await child.output();
  clearTimeout(timer);
  try {
    return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1) ?? "");
  } catch {
    console.error(`${name} benchmark failed: ${new TextDecoder().decode(stderr).slice(-2000)}`);
    return null;
  }
}

if (import.meta.main) await main(Deno.args);
