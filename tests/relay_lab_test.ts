/**
 * The relay where UDP cannot pass: a desktop in a network namespace whose
 * firewall drops every UDP packet, an agent and the signalling worker in a
 * second namespace, joined by one veth pair. Each runs as a `deno run` child
 * inside its namespace; nothing leaves the two namespaces the test makes.
 *
 * ```
 *   desktop namespace 10.78.<n>.2        worker + agent namespace 10.78.<n>.1
 *   iptables: drop all UDP, both ways  ── veth ──  worker (Miniflare) on :port, agent
 * ```
 *
 * Needs root, `ip` and `iptables` (`apt-get install -y iproute2 iptables`):
 * installed when missing on Linux as root, else skipped (see `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import { labTest, prepareLab, stopProcess } from "./_lab.ts";

const lab = await prepareLab({
  name: "the relay lab",
  root: true,
  commands: { ip: "iproute2", iptables: "iptables" },
});

const ROOT = new URL("..", import.meta.url).pathname;
/** How long a child may take to print its line (a `deno run` start and a 3 s ICE wait included). */
const LINE_WITHIN = 45_000;

async function run(command: string, args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command(command, { args, stdin: "null" }).output();
  if (!success) {
    throw new Error(`${command} ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
}

/** A child in a namespace whose stdout lines are read as they come. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly stderr: string[] = [];
  #wake?: () => void;

  constructor(ns: string, script: string, args: string[]) {
    this.process = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", script, ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    void this.#read(this.process.stdout, this.lines);
    void this.#read(this.process.stderr, this.stderr);
  }

  async #read(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      into.push(...lines);
      this.#wake?.();
    }
  }

  /** The first line that starts with `prefix`, without it; fails after `ms`. */
  async line(prefix: string, ms = LINE_WITHIN): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.find((line) => line.startsWith(prefix));
      if (found) return found.slice(prefix.length);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `No "${prefix}" line within ${ms} ms:\n${this.lines.join("\n")}\n${
            this.stderr.join("\n")
          }`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    await stopProcess(this.process);
  }
}

labTest(
  lab,
  "A desktop whose network drops all UDP reaches an agent over the relay, with the default settings",
  async () => {
    const tag = `mcprelay-${Deno.pid}`;
    const desktopNs = `${tag}-desktop`;
    const netNs = `${tag}-net`;
    const subnet = `10.78.${Deno.pid % 250}`;
    const children: Child[] = [];
    try {
      for (const ns of [desktopNs, netNs]) {
        await run("ip", ["netns", "add", ns]);
        await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
      }
      await run("ip", [
        ..."link add eth0 netns".split(" "),
        desktopNs,
        ..."type veth peer name eth0 netns".split(" "),
        netNs,
      ]);
      await run("ip", ["-n", desktopNs, "addr", "add", `${subnet}.2/24`, "dev", "eth0"]);
      await run("ip", ["-n", netNs, "addr", "add", `${subnet}.1/24`, "dev", "eth0"]);
      for (const ns of [desktopNs, netNs]) {
        await run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      }
      for (const chain of ["INPUT", "OUTPUT"]) {
        await run("ip", [
          "netns",
          "exec",
          desktopNs,
          "iptables",
          "-A",
          chain,
          "-p",
          "udp",
          "-j",
          "DROP",
        ]);
      }
      // The namespace is the test's own, so a fixed port cannot collide.
      const worker = new Child(netNs, "worker/local.ts", [
        "--host",
        `${subnet}.1`,
        "--port",
        "8787",
      ]);
      children.push(worker);
      await worker.line("ws://");
      const url = `ws://${subnet}.1:8787`;
      const desktop = new Child(desktopNs, "tests/relay_lab/_desktop.ts", [url]);
      children.push(desktop);
      const ticket = await desktop.line("ticket ");
      const agent = new Child(netNs, "tests/relay_lab/_agent.ts", [ticket]);
      children.push(agent);
      const report = JSON.parse(await agent.line("report "));
      assert.equal(report.error, undefined, `${report.error}\n${agent.stderr.join("\n")}`);
      assert.equal(report.text, "Hello, udp-less desktop!");
      assert.deepEqual(report.path, {
        localCandidateType: "relay-ws",
        remoteCandidateType: "relay-ws",
      });
      // Direct WebRTC was tried first: an offer went out, no ICE path formed.
      const steps = report.steps.join(" ");
      assert.match(steps, /offer@/);
      assert.doesNotMatch(steps, /ice@/);
      assert.deepEqual(JSON.parse(await desktop.line("path ")).localCandidateType, "relay-ws");
      console.log(`relay lab: ${steps}; called after ${report.ms} ms`);
    } finally {
      await Promise.all(children.map((child) => child.stop()));
      for (const ns of [desktopNs, netNs]) {
        await run("ip", ["netns", "del", ns]).catch(() => {});
      }
    }
  },
);
