/**
 * A lab of network namespaces whose paths move under a resumable session, for
 * `tests/resume_lab_test.ts` and `bench/resume.ts`:
 *
 * ```
 *   agent namespace            router namespace                                 desktop namespace
 *   eth0 10.91.1.2/24 ── veth ── to-agent: 10.91.1.1, 10.91.3.1
 *                                to-desktop: 10.91.2.1, 10.91.4.1 ── veth ── eth0 10.91.2.2/24
 *   (or 10.91.3.2/24)              forwards; FORWARD drops UDP while `dropUdp()`       (or 10.91.4.2/24)
 * ```
 *
 * Each side is a `deno run` child (`_peer.ts`) in its own namespace, with no
 * `bindAddress` (ICE gathers the namespace's address) and no ICE servers;
 * their signalling goes through this process, over their stdin and stdout,
 * so it never crosses the lab's network. `move(side)` takes a side's address
 * away and gives it one in the other subnet of its link `MOVE_GAP` later, as
 * a laptop that changes networks; `dropUdp()` drops every UDP packet the
 * router would forward, until `restoreUdp()`.
 *
 * Every namespace is new and named after the test process's pid; the veth
 * pairs are created inside them, so nothing touches the host's interfaces.
 * `close()` stops both children and deletes the namespaces.
 *
 * @module
 */
import { ip, stopProcess } from "../_lab.ts";
import { type Command, type Report, REPORT_PREFIX } from "./_peer.ts";

const PEER_SCRIPT = new URL("./_peer.ts", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;
/** How long after a side's address is taken away its new one comes. */
export const MOVE_GAP = 500;

/** Which side of the lab. */
export type Side = "agent" | "desktop";

/** A side's two subnets: the third octet of each. */
const SUBNETS: Record<Side, [number, number]> = { agent: [1, 3], desktop: [2, 4] };

/** One side's process, its reports as they come. */
export class LabPeer {
  readonly name: Side;
  readonly child: Deno.ChildProcess;
  readonly reports: Report[] = [];
  readonly log: string[] = [];
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiters = new Set<() => void>();
  #done = false;

  constructor(name: Side, child: Deno.ChildProcess) {
    this.name = name;
    this.child = child;
    this.#writer = child.stdin.getWriter();
    const read = readLines(child.stderr, (line) => {
      if (line.startsWith(REPORT_PREFIX)) {
        this.reports.push(JSON.parse(line.slice(REPORT_PREFIX.length)));
      } else this.log.push(line);
      this.#wake();
    });
    Promise.all([child.status, read]).finally(() => {
      this.#done = true;
      this.#wake();
    });
  }

  /** Writes one line to the process's stdin. */
  async send(line: object): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(line) + "\n"));
  }

  /**
   * Resolves with the first report from the `from`-th on that `accept` takes,
   * and its index; rejects after `ms`, or once the process is gone.
   */
  async next(
    accept: (report: Report) => boolean,
    ms: number,
    from = 0,
  ): Promise<{ report: Report; index: number }> {
    const deadline = Date.now() + ms;
    while (true) {
      const index = this.reports.findIndex((report, i) => i >= from && accept(report));
      if (index >= 0) return { report: this.reports[index], index };
      const left = deadline - Date.now();
      if (left <= 0 || this.#done) {
        throw new Error(
          `The ${this.name} reported nothing awaited ${
            this.#done ? "before it exited" : `within ${ms} ms`
          }; its reports:\n${this.reports.map((r) => JSON.stringify(r)).join("\n")}\n` +
            `its log:\n${this.log.join("\n")}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await stopProcess(this.child);
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }
}

/** The lab's namespaces and the two sides running in them. */
export class ResumeLab {
  readonly #tag: string;
  readonly #namespaces: string[] = [];
  readonly #subnet: Record<Side, number> = { agent: 0, desktop: 0 };
  #nextId = 0;
  agent!: LabPeer;
  desktop!: LabPeer;

  private constructor(tag: string) {
    this.#tag = tag;
  }

  /** Builds the lab and starts both sides; resolves once the agent's session is up. */
  static async create(name: string, within = 30_000): Promise<ResumeLab> {
    const lab = new ResumeLab(`mcpres-${Deno.pid}-${name}`);
    try {
      await lab.#build();
      lab.desktop = lab.#spawn("desktop");
      lab.agent = lab.#spawn("agent");
      lab.#relay(lab.agent, lab.desktop);
      lab.#relay(lab.desktop, lab.agent);
      await lab.agent.next((r) => r.kind === "ready", within);
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  /** The namespace of a side. */
  namespace(side: Side | "router"): string {
    return `${this.#tag}-${side}`;
  }

  /** Asks the agent to call `tool`; resolves with the index from which its answer is to be sought. */
  async call(tool: string, args?: Record<string, unknown>): Promise<number> {
    const id = ++this.#nextId;
    await this.agent.send({ cmd: "call", id, tool, args } satisfies Command);
    return id;
  }

  /** The agent's answer to call `id`: its text, or an error naming its failure. */
  async result(id: number, ms: number): Promise<{ text: string; at: number }> {
    const { report } = await this.agent.next(
      (r) => (r.kind === "result" || r.kind === "failed") && r.id === id,
      ms,
    );
    if (report.kind === "failed") throw new Error(`call ${id} failed: ${report.message}`);
    return { text: (report as { text: string }).text, at: report.at };
  }

  /**
   * Asks the agent to call `echo` `total` times, `window` at once, reporting
   * every `every`; with `pace`, it starts a window at most every `pace` ms (a
   * client's own pace, so that the calls outlast the moves made among them).
   */
  async stream(total: number, window: number, every: number, pace = 0): Promise<number> {
    const id = ++this.#nextId;
    await this.agent.send({ cmd: "stream", id, total, window, every, pace } satisfies Command);
    return id;
  }

  /** The address a side has now. */
  address(side: Side): string {
    return `10.91.${SUBNETS[side][this.#subnet[side]]}.2`;
  }

  /**
   * Takes `side`'s address away and, `MOVE_GAP` later, gives it one in its
   * link's other subnet with the default route through it; `whileGone` runs
   * once the old address is gone. Resolves with the time the new address was
   * up (wall clock, as the reports).
   */
  async move(side: Side, whileGone?: () => Promise<unknown>): Promise<number> {
    const ns = this.namespace(side);
    await ip("-n", ns, "addr", "del", `${this.address(side)}/24`, "dev", "eth0");
    const gone = Date.now();
    await whileGone?.();
    // The gap between the two networks is the scenario's, not a wait for an event.
    await new Promise((resolve) => setTimeout(resolve, MOVE_GAP - (Date.now() - gone)));
    this.#subnet[side] = 1 - this.#subnet[side];
    const subnet = SUBNETS[side][this.#subnet[side]];
    await ip("-n", ns, "addr", "add", `10.91.${subnet}.2/24`, "dev", "eth0");
    await ip("-n", ns, "route", "replace", "default", "via", `10.91.${subnet}.1`);
    return Date.now();
  }

  /** Drops every UDP packet between the sides, until {@linkcode restoreUdp}. */
  async dropUdp(): Promise<void> {
    await iptables(this.namespace("router"), ["-I", "FORWARD", "1", "-p", "udp", "-j", "DROP"]);
  }

  /** Lets UDP through again; resolves with the time it was. */
  async restoreUdp(): Promise<number> {
    await iptables(this.namespace("router"), ["-D", "FORWARD", "-p", "udp", "-j", "DROP"]);
    return Date.now();
  }

  /** Stops both sides and deletes the namespaces. */
  async close(): Promise<void> {
    await Promise.all([this.agent?.stop(), this.desktop?.stop()]);
    const failures: string[] = [];
    for (const ns of this.#namespaces.reverse()) {
      await ip("netns", "del", ns).catch((error) => failures.push((error as Error).message));
    }
    if (failures.length > 0) {
      throw new Error(`Cannot tear the resume lab down: ${failures.join("; ")}`);
    }
  }

  async #build(): Promise<void> {
    const router = await this.#namespace("router");
    await sysctl(router, "net.ipv4.ip_forward=1");
    for (const side of ["agent", "desktop"] as const) {
      const ns = await this.#namespace(side);
      const port = `to-${side}`;
      await ip(
        ...`link add name ${port} netns ${router} type veth peer name eth0 netns ${ns}`.split(" "),
      );
      for (const subnet of SUBNETS[side]) {
        await ip("-n", router, "addr", "add", `10.91.${subnet}.1/24`, "dev", port);
      }
      await ip("-n", router, "link", "set", port, "up");
      const [first] = SUBNETS[side];
      await ip("-n", ns, "addr", "add", `10.91.${first}.2/24`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await ip("-n", ns, "route", "add", "default", "via", `10.91.${first}.1`);
    }
  }

  async #namespace(suffix: string): Promise<string> {
    const ns = `${this.#tag}-${suffix}`;
    await ip("netns", "add", ns);
    this.#namespaces.push(ns);
    await ip("-n", ns, "link", "set", "lo", "up");
    return ns;
  }

  #spawn(side: Side): LabPeer {
    const child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        this.namespace(side),
        Deno.execPath(),
        "run",
        "-A",
        "--cached-only",
        PEER_SCRIPT,
        side,
      ],
      cwd: ROOT,
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new LabPeer(side, child);
  }

  /** Carries one side's signalling lines to the other. */
  #relay(from: LabPeer, to: LabPeer): void {
    void readLines(from.child.stdout, (line) => to.send(JSON.parse(line)).catch(() => {}));
  }
}

async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void | Promise<void>,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of stream) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim()) await onLine(line);
      }
    }
  } catch {
    // The process was killed mid-line.
  }
}

async function iptables(ns: string, args: string[]): Promise<void> {
  await ip("netns", "exec", ns, "iptables", ...args);
}

async function sysctl(ns: string, setting: string): Promise<void> {
  await ip("netns", "exec", ns, "sysctl", "-qw", setting);
}
