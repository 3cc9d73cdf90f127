/**
 * Sessions that outlive a network change, in network namespaces: an agent
 * and a desktop, each a `deno run` child in its own namespace with `resume`
 * on, whose addresses move and whose UDP is dropped while calls are in
 * flight. See `tests/resume_lab/lab.ts` for the topology.
 *
 * Needs root, `ip` and `iptables` (`apt-get install -y iproute2 iptables`):
 * installed when missing on Linux as root, else skipped, saying so (see
 * `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import { labTest, prepareLab } from "./_lab.ts";
import { ResumeLab, type Side } from "./resume_lab/lab.ts";
import type { Report } from "./resume_lab/_peer.ts";

const lab = await prepareLab({
  name: "the resume lab",
  root: true,
  commands: { ip: "iproute2", iptables: "iptables" },
});

/** The bound: a session is back within 5 s of the new address being up. */
const BACK_WITHIN = 5_000;
/**
 * After an outage, calls flow again within this of the network being back: a
 * redial at most `RESUME_BACKOFF_MAX` (1 s) apart, each given up after
 * `RESUME_DIAL_TIMEOUT`, with room for a loaded machine.
 */
const AGAIN_WITHIN = 3_000;
/** How long one step may take at most (a call across a change, a child's start). */
const STEP = 20_000;

/** What the desktop's server counted. */
async function stats(resume: ResumeLab): Promise<Record<string, number>> {
  return JSON.parse((await resume.result(await resume.call("stats"), STEP)).text);
}

/** The agent's losses and ICE states, for a failure's message. */
function story(resume: ResumeLab): string {
  const line = (side: string, r: Report) => `${side} ${r.at % 100_000} ${JSON.stringify(r)}`;
  return [
    ...resume.agent.reports.map((r) => line("agent", r)),
    ...resume.desktop.reports.map((r) => line("desktop", r)),
  ].sort((x, y) => Number(x.split(" ")[1]) - Number(y.split(" ")[1])).join("\n");
}

async function moveDuringSlowCall(side: Side): Promise<void> {
  const resume = await ResumeLab.create(side);
  try {
    assert.equal((await resume.result(await resume.call("count"), STEP)).text, "1");
    const slow = await resume.call("slow");
    await resume.desktop.next((r) => r.kind === "slow-started", STEP);
    const before = resume.agent.reports.length;
    const up = await resume.move(side);
    const result = await resume.result(slow, STEP);
    const took = result.at - up;
    const { report: back } = await resume.agent.next(
      (r) => r.kind === "connected" && r.dials >= 2,
      0,
      before,
    );
    console.log(
      `${side}'s address moved: connected again ${back.at - up} ms and the 4 s call's result ` +
        `${took} ms after the new address was up`,
    );
    assert.equal(result.text, "slow done");
    assert.ok(took < BACK_WITHIN, `${took} ms:\n${story(resume)}`);
    // The same server, its state kept, no second initialize.
    assert.equal((await resume.result(await resume.call("count"), STEP)).text, "2");
    assert.deepEqual(
      { ...(await stats(resume)), echoRuns: 0, echoDistinct: 0 },
      { counter: 2, servers: 1, initializations: 1, echoRuns: 0, echoDistinct: 0 },
    );
  } finally {
    await resume.close();
  }
}

labTest(
  lab,
  "With resume on, a 4 s call in flight while the agent's address moves to another subnet completes, and the next call continues the same server's state, within 5 s of the new address",
  () => moveDuringSlowCall("agent"),
);

labTest(
  lab,
  "With resume on, a 4 s call in flight while the desktop's address moves to another subnet completes, and the next call continues the same server's state, within 5 s of the new address",
  () => moveDuringSlowCall("desktop"),
);

labTest(
  lab,
  "With resume on, a stream of calls across 8 s of all UDP dropped goes on once UDP is back, with no MCP error",
  async () => {
    const resume = await ResumeLab.create("drop");
    try {
      // Longer than the calls made before the drop is in place.
      const total = 3_000;
      const stream = await resume.stream(total, 10, 10);
      const { index } = await resume.agent.next(
        (r) => r.kind === "progress" && r.id === stream && r.done >= 100,
        STEP,
      );
      await resume.dropUdp();
      const dropped = Date.now();
      // The outage lasts 8 s by the clock: it is what is being tested, not a wait for an event.
      await new Promise((resolve) => setTimeout(resolve, 8_000 - (Date.now() - dropped)));
      const back = await resume.restoreUdp();
      const { report: after } = await resume.agent.next(
        (r) => r.kind === "progress" && r.id === stream && r.at > back,
        STEP,
        index,
      );
      console.log(`8 s without UDP: calls flowing again ${after.at - back} ms after it was back`);
      assert.ok(after.at - back < AGAIN_WITHIN, `${after.at - back} ms:\n${story(resume)}`);
      const { report } = await resume.agent.next(
        (r) => r.kind === "streamed" && r.id === stream,
        STEP,
      );
      const { results, errors } = report as Extract<Report, { kind: "streamed" }>;
      assert.deepEqual(errors, []);
      assert.deepEqual(
        results.sort((x, y) => x - y),
        Array.from({ length: total }, (_, i) => i),
      );
      assert.equal(
        resume.agent.reports.filter((r) => r.kind === "error" && r.message.startsWith("client"))
          .length,
        0,
      );
      assert.ok(
        resume.agent.reports.some((r) => r.kind === "lost"),
        `the path was never lost:\n${story(resume)}`,
      );
      const counted = await stats(resume);
      assert.deepEqual(
        [counted.echoRuns, counted.echoDistinct, counted.servers, counted.initializations],
        [total, total, 1, 1],
      );
    } finally {
      await resume.close();
    }
  },
);

labTest(
  lab,
  "With resume on, 1,000 calls with 5 address moves among them each run once and each result arrives once",
  async () => {
    const resume = await ResumeLab.create("thousand");
    try {
      const total = 1_000;
      // 20 calls every 100 ms at most: the 140 calls after the last cut outlast the move made at it.
      const stream = await resume.stream(total, 20, 20, 100);
      const sides: Side[] = ["agent", "desktop", "agent", "desktop", "agent"];
      let up = 0;
      for (const [i, cut] of [140, 320, 500, 700, 860].entries()) {
        // Calls that went through the path the last move made: each move is a loss of its own.
        await resume.agent.next(
          (r) => r.kind === "progress" && r.id === stream && r.done >= cut && r.at > up,
          STEP,
        );
        up = await resume.move(sides[i]);
      }
      const { report } = await resume.agent.next(
        (r) => r.kind === "streamed" && r.id === stream,
        60_000,
      );
      const { results, errors } = report as Extract<Report, { kind: "streamed" }>;
      assert.deepEqual(errors, []);
      assert.deepEqual(
        results.sort((x, y) => x - y),
        Array.from({ length: total }, (_, i) => i),
      );
      const counted = await stats(resume);
      assert.deepEqual(
        [counted.echoRuns, counted.echoDistinct, counted.servers, counted.initializations],
        [total, total, 1, 1],
      );
      const connections = resume.agent.reports.filter((r) => r.kind === "connected").length;
      assert.ok(connections >= 6, `${connections} connections:\n${story(resume)}`);
    } finally {
      await resume.close();
    }
  },
);
