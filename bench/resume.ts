/**
 * How soon a session with `resume` on is back after its path was lost, in the
 * network namespaces of `tests/resume_lab/lab.ts` (an agent and a desktop,
 * each a process in its own namespace, a router between them):
 *
 * - outages: all UDP dropped at the router for 5 to 11 s (cycling, so that
 *   the network comes back at different moments of the redials), with one
 *   call sent just after the drop; the time from UDP being back to that
 *   call's result;
 * - moves: the agent's address taken away and one in another subnet given
 *   0.5 s later, with one call sent just after; the time from the new
 *   address being up to that call's result;
 * - the loss noticed: the time from the drop to the agent's connection
 *   reporting its path lost (the idle timeout counts from the last frame,
 *   a keepalive up to 1 s before the drop).
 *
 * Needs root on Linux, `ip` and `iptables`; otherwise prints why it did not
 * run. Prints figures, asserts nothing. Run alone with
 * `deno run -A bench/resume.ts [--quick] [--json]`.
 *
 * @module
 */
import { RESUME_IDLE_TIMEOUT } from "../src/constants.ts";
import { ResumeLab } from "../tests/resume_lab/lab.ts";

/** Median and 90th percentile of a list of milliseconds. */
export interface ResumeSpread {
  n: number;
  median: number;
  p90: number;
  max: number;
}

/** What this benchmark reports: figures, or why it did not run. */
export type ResumeFigures =
  | {
    skipped?: undefined;
    /** Network back (UDP let through again) → the first result after it. */
    afterOutage: ResumeSpread;
    /** The outages' lengths, ms. */
    outages: number[];
    /** New address up → the first result after it. */
    afterMove: ResumeSpread;
    /** UDP dropped → the agent's path reported lost. */
    noticed: ResumeSpread;
    idleTimeout: number;
  }
  | { skipped: string };

const OUTAGES = [5_000, 6_500, 8_000, 9_500, 11_000];
/** Longer than any wait the lab should see: a figure over it is a failure, reported. */
const WITHIN = 30_000;

function spread(values: number[]): ResumeSpread {
  const sorted = [...values].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { n: sorted.length, median: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1] };
}

async function available(command: string): Promise<boolean> {
  try {
    return (await new Deno.Command(command, { args: ["-V"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/** Measures `rounds` outages and `rounds` moves, or says why it cannot. */
export async function measureResume(quick: boolean): Promise<ResumeFigures> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) {
    return { skipped: "it needs root on Linux (network namespaces)" };
  }
  for (const command of ["ip", "iptables"]) {
    if (!(await available(command))) {
      return { skipped: `install ${command}: apt-get install -y iproute2 iptables` };
    }
  }
  const rounds = quick ? 2 : 10;
  const lab = await ResumeLab.create("bench");
  try {
    const afterOutage: number[] = [];
    const outages: number[] = [];
    const noticed: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const outage = OUTAGES[i % OUTAGES.length];
      const from = lab.agent.reports.length;
      await lab.dropUdp();
      const dropped = Date.now();
      const call = await lab.call("count");
      // The outage's length is what is measured against, not a wait for an event.
      await new Promise((resolve) => setTimeout(resolve, outage - (Date.now() - dropped)));
      const back = await lab.restoreUdp();
      outages.push(back - dropped);
      afterOutage.push((await lab.result(call, WITHIN)).at - back);
      const { report } = await lab.agent.next((r) => r.kind === "lost", 0, from);
      noticed.push(report.at - dropped);
    }
    const afterMove: number[] = [];
    for (let i = 0; i < rounds; i++) {
      let call = 0;
      const up = await lab.move("agent", async () => (call = await lab.call("count")));
      afterMove.push((await lab.result(call, WITHIN)).at - up);
    }
    return {
      afterOutage: spread(afterOutage),
      outages,
      afterMove: spread(afterMove),
      noticed: spread(noticed),
      idleTimeout: RESUME_IDLE_TIMEOUT,
    };
  } finally {
    await lab.close();
  }
}

/** The figures as lines of text. */
export function renderResume(f: ResumeFigures | null): string {
  const title = "Sessions resumed after a lost path (network namespaces, `resume` on)";
  if (f === null) return `${title}: not measured (the benchmark failed)`;
  if (f.skipped !== undefined) return `${title}: skipped: ${f.skipped}`;
  const ms = (s: ResumeSpread) =>
    `median ${s.median} ms, p90 ${s.p90} ms, max ${s.max} ms (n=${s.n})`;
  return [
    title,
    `  all UDP dropped ${Math.min(...f.outages) / 1000}–${
      Math.max(...f.outages) / 1000
    } s, UDP back → first result:   ${ms(f.afterOutage)}`,
    `  agent's address moved, new address → first result:  ${ms(f.afterMove)}`,
    `  UDP dropped → path reported lost (idleTimeout ${f.idleTimeout} ms): ${ms(f.noticed)}`,
  ].join("\n");
}

if (import.meta.main) {
  const figures = await measureResume(Deno.args.includes("--quick"));
  console.log(Deno.args.includes("--json") ? JSON.stringify(figures) : renderResume(figures));
}
