/**
 * Sessions beside a large result with the desktop in a process of its own:
 * what `bench/fairness.ts` measures with both peers in one process, here with
 * the agent in this process and the desktop in another
 * (`bench/_fairness_desktop.ts`), signalling over TCP on 127.0.0.1, so that
 * neither end's event loop waits for the other's. One connection, two
 * sessions:
 *
 * - small `tools/call` round trips alone, back to back;
 * - a 64 MiB result alone, then beside small calls on an open loop (one due
 *   every `PACE_MS`, timed from its due time), then beside small calls back
 *   to back, each round in that order, the result alone measured in the same
 *   round as the two it is compared with.
 *
 * Prints figures, asserts nothing. Run with
 * `deno run -A bench/fairness_apart.ts [--quick]`.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { WebRTCConnection } from "../mod.ts";
import { TcpSocketSignaling } from "../src/signaling/tcp_socket_signaling.ts";

const MIB = 1024 * 1024;
const BULK = 64 * MIB;
/** Ms between the due times of the open loop's small calls: 200 a second. */
const PACE_MS = 5;
/** The most small calls issued beside one result, whatever happens to the result. */
const CALLS_CAP = 100_000;
/** How early a timer may fire (timers count whole milliseconds). */
const TIMER_GRAIN_MS = 1;
/** The longest the desktop may take to start and the connection to open. */
const CONNECT_TIMEOUT_MS = 30_000;
/** The longest one 64 MiB result may take. */
const RESULT_TIMEOUT_MS = 120_000;

/** What this benchmark reports, ms. */
export interface FairnessApartFigures {
  rounds: number;
  alone: { p50: number; p99: number; n: number };
  bulkAloneMs: number;
  paced: { p50: number; p99: number; n: number; bulkMs: number };
  backToBack: { p50: number; p99: number; n: number; bulkMs: number };
}

const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))] ??
    NaN;
const spread = (values: number[]) => ({
  p50: quantile(values, 0.5),
  p99: quantile(values, 0.99),
  n: values.length,
});
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port nothing listens on now, for the desktop to listen on. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Measures, with the desktop in a child process. */
export async function measureFairnessApart(quick: boolean): Promise<FairnessApartFigures> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./_fairness_desktop.ts", import.meta.url).pathname, String(port)],
    stdin: "piped",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const agent = new WebRTCConnection({
    signaling: new TcpSocketSignaling("127.0.0.1", port, { role: "connect" }),
    connectTimeout: CONNECT_TIMEOUT_MS,
    linger: 60_000,
    maxReceiveSize: 128 * MIB,
    iceServers: [],
    rtcConfiguration: { bindAddress: "127.0.0.1" },
  });
  const clients: Client[] = [];
  try {
    const open = async () => {
      const client = new Client({ name: "fairness-apart", version: "1.0.0" });
      await client.connect(agent.openTransport());
      clients.push(client);
      return client;
    };
    const small = await open();
    const bulk = await open();
    const call = async () => {
      const start = performance.now();
      await small.callTool({ name: "echo", arguments: { text: "hello" } });
      return performance.now() - start;
    };
    const bulkCall = async () => {
      const start = performance.now();
      const result = await bulk.callTool({ name: "blob", arguments: { bytes: BULK } }, undefined, {
        timeout: RESULT_TIMEOUT_MS,
      });
      const ms = performance.now() - start;
      const text = (result.content as { text?: string }[])[0]?.text;
      if (text?.length !== BULK) {
        throw new Error(`blob returned ${text?.length} bytes, not ${BULK}`);
      }
      return ms;
    };
    /** Small calls on an open loop beside `transfer`; their ms from each due time go to `times`. */
    const paced = (times: number[], done: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const start = performance.now();
        const calls: Promise<void>[] = [];
        let issued = 0;
        const tick = () => {
          while (
            !done() && issued < CALLS_CAP &&
            start + issued * PACE_MS <= performance.now() + TIMER_GRAIN_MS
          ) {
            const from = Math.min(start + issued++ * PACE_MS, performance.now());
            calls.push(
              small.callTool({ name: "echo", arguments: { text: "hello" } }).then(() =>
                void times.push(performance.now() - from)
              ),
            );
          }
          if (!done() && issued < CALLS_CAP) {
            setTimeout(tick, Math.max(0, start + issued * PACE_MS - performance.now()));
          } else Promise.all(calls).then(() => resolve(), reject);
        };
        tick();
      });
    /** Small calls back to back beside `transfer`, into `times`. */
    const backToBack = async (times: number[], done: () => boolean) => {
      while (!done() && times.length < CALLS_CAP) times.push(await call());
    };
    const beside = async (
      loop: (times: number[], done: () => boolean) => Promise<void>,
      times: number[],
    ) => {
      let done = false;
      const transfer = bulkCall().finally(() => done = true);
      const [ms] = await Promise.all([transfer, loop(times, () => done)]);
      return ms;
    };

    for (let i = 0; i < 200; i++) await call();
    const alone: number[] = [];
    for (let i = 0; i < (quick ? 200 : 1000); i++) alone.push(await call());
    await bulkCall();
    const rounds = quick ? 2 : 6;
    const bulkAlone: number[] = [];
    const bulkPaced: number[] = [];
    const bulkBackToBack: number[] = [];
    const pacedTimes: number[] = [];
    const backToBackTimes: number[] = [];
    for (let round = 0; round < rounds; round++) {
      await pause(30);
      bulkAlone.push(await bulkCall());
      await pause(30);
      bulkPaced.push(await beside(paced, pacedTimes));
      await pause(30);
      bulkBackToBack.push(await beside(backToBack, backToBackTimes));
    }
    return {
      rounds,
      alone: spread(alone),
      bulkAloneMs: quantile(bulkAlone, 0.5),
      paced: { ...spread(pacedTimes), bulkMs: quantile(bulkPaced, 0.5) },
      backToBack: { ...spread(backToBackTimes), bulkMs: quantile(bulkBackToBack, 0.5) },
    };
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await agent.close();
    try {
      await child.stdin.close();
    } catch {
      // Already closed.
    }
    const ended = await Promise.race([child.status, pause(5_000).then(() => undefined)]);
    if (ended === undefined) child.kill("SIGKILL");
  }
}

/** The figures as lines. */
export function renderFairnessApart(f: FairnessApartFigures): string {
  const ms = (s: { p50: number; p99: number; n: number }) =>
    `p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms (n=${s.n})`;
  const ratio = (beside: number) => (f.bulkAloneMs / beside).toFixed(2);
  const line = (label: string, text: string) => `  ${label.padEnd(36)} ${text}`;
  return [
    `Sessions of one connection, the desktop in a process of its own (loopback, medians of ${f.rounds} rounds)`,
    line("small calls back to back, alone:", ms(f.alone)),
    line("64 MiB result alone:", `${f.bulkAloneMs.toFixed(0)} ms`),
    line(
      `beside calls every ${PACE_MS} ms:`,
      `${ms(f.paced)}; the result ${f.paced.bulkMs.toFixed(0)} ms, ${
        ratio(f.paced.bulkMs)
      }× its speed alone`,
    ),
    line(
      "beside calls back to back:",
      `${ms(f.backToBack)}; the result ${f.backToBack.bulkMs.toFixed(0)} ms, ${
        ratio(f.backToBack.bulkMs)
      }× its speed alone`,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const figures = await measureFairnessApart(Deno.args.includes("--quick"));
  console.log(
    Deno.args.includes("--json") ? JSON.stringify(figures) : renderFairnessApart(figures),
  );
}
