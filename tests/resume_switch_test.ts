/**
 * A resumable session's path moves from direct to the room's relay and back,
 * by real network events (iptables), in a network namespace the test makes
 * that holds only `lo`: the signalling worker, a listener and an agent run in
 * one `deno run` child inside it (`tests/resume_lab/_switch.ts`).
 *
 * Needs root, `ip` and `iptables` (`apt-get install -y iproute2 iptables`):
 * installed when missing on Linux as root, else skipped, saying so (see
 * `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import { ip, labTest, prepareLab, stopProcess } from "./_lab.ts";
import { deadline } from "../src/_async.ts";
import { SWITCH_PREFIX, type SwitchReport } from "./resume_lab/_switch.ts";

const lab = await prepareLab({
  name: "the path switch lab",
  root: true,
  commands: { ip: "iproute2", iptables: "iptables" },
});

const SCRIPT = new URL("./resume_lab/_switch.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
/** The whole scenario, the worker's start included. */
const WHOLE = 50_000;
/**
 * From UDP dropped to the agent's resume on the relay: the loss noticed
 * (`RESUME_IDLE_TIMEOUT`, 3 s), the first redial (`RESUME_BACKOFF_FIRST`),
 * ICE given up for the relay (`relayAfter`, 3 s), with room for a loaded machine.
 */
const TO_RELAY_WITHIN = 10_000;
/**
 * From the worker's TCP port let through again to the agent's resume on the
 * direct path: a redial at most `RESUME_BACKOFF_MAX` (1 s) away, the
 * listener's room socket back from TCP's retransmission backoff, ICE on
 * loopback, with room for a loaded machine.
 */
const TO_DIRECT_WITHIN = 8_000;
/** From the worker's TCP port dropped to the relay path's loss noticed (`RESUME_IDLE_TIMEOUT`, 3 s). */
const RELAY_LOSS_WITHIN = 6_000;

async function runInNamespace(): Promise<{ report?: SwitchReport; output: string }> {
  const ns = `mcp-switch-${Deno.pid}`;
  await ip("netns", "add", ns);
  try {
    await ip("-n", ns, "link", "set", "lo", "up");
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", "--cached-only", SCRIPT],
      cwd: ROOT,
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    try {
      const { stdout, stderr } = await deadline(output, WHOLE);
      const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
      const line = decode(stdout).split("\n").find((l) => l.startsWith(SWITCH_PREFIX));
      return {
        report: line ? JSON.parse(line.slice(SWITCH_PREFIX.length)) : undefined,
        output: `${decode(stdout)}\n${decode(stderr)}`.slice(-4_000),
      };
    } finally {
      await stopProcess(child);
      await output.catch(() => {});
    }
  } finally {
    await ip("netns", "del", ns);
  }
}

labTest(
  lab,
  "With resume on, a session's path moves from direct to the room's relay when UDP is dropped and back to direct once the relay's TCP port was lost and let through, each with a call in flight that completes on the same server",
  async () => {
    const { report, output } = await runInNamespace();
    assert.ok(report, `no report:\n${output}`);
    const facts = JSON.stringify(report);
    assert.equal(report.failure, undefined, `${facts}\n${output}`);
    console.log(
      `direct → relay: resumed ${report.toRelay!.afterEvent} ms after UDP was dropped; ` +
        `relay lost ${report.tcpLossNoticed} ms after its TCP port was; ` +
        `relay → direct: resumed ${report.toDirect!.afterEvent} ms after it was let through ` +
        `(lost to resumed ${report.toRelay!.agent.ms} and ${report.toDirect!.agent.ms} ms, ` +
        `${report.attempts} redials; the listener said ${JSON.stringify(report.desktopErrors)})`,
    );
    assert.deepEqual(report.first, { kind: "host", remote: "host" }, facts);
    assert.equal(report.toRelay!.agent.kind, "relay-ws", facts);
    assert.equal(report.toRelay!.desktop.kind, "relay-ws", facts);
    assert.equal(report.toDirect!.agent.kind, "host", facts);
    assert.equal(report.toDirect!.desktop.kind, "host", facts);
    assert.deepEqual(report.results, ["1", "slow done", "2", "slow done", "3"], facts);
    assert.deepEqual(
      report.counts,
      { servers: 1, initializations: 1, slowCalls: 2, closed: 1 },
      facts,
    );
    assert.deepEqual(report.clientErrors, [], facts);
    assert.deepEqual(report.resumeFailures, [], facts);
    assert.ok(report.toRelay!.afterEvent < TO_RELAY_WITHIN, facts);
    assert.ok(report.tcpLossNoticed! < RELAY_LOSS_WITHIN, facts);
    assert.ok(report.toDirect!.afterEvent < TO_DIRECT_WITHIN, facts);
  },
);
