/**
 * A NAT lab made of network namespaces, for the tests in `tests/nat_test.ts`.
 *
 * ```
 *          "internet" namespace: bridge br0, 203.0.113.0/24 (TEST-NET-3), 203.0.113.1
 *          is every public host's default route and drops all it is sent (blackhole)
 *        ┌──────────────────────────┼──────────────────────────┐
 *   turn 203.0.113.10     desktop NAT 203.0.113.2        agent NAT 203.0.113.3 (or the agent
 *   (coturn: STUN, TURN)    MASQUERADE [--random-fully]    itself, public, at 203.0.113.20)
 *                           + a firewall: replies only      │
 *                                   │                          │
 *                          desktop 10.77.1.2/24         agent 10.77.2.2/24
 * ```
 *
 * A cone NAT is Linux's plain MASQUERADE (it keeps the source port, so one
 * mapping serves every destination); a symmetric one adds `--random-fully`
 * (a new port per destination).
 *
 * Every namespace is new and named after the test process's pid; veth pairs
 * are created directly inside them, so nothing touches the host's own
 * interfaces, routes or forwarding, and nothing in the lab can reach out of
 * it. `close()` kills every process started in the lab and deletes every
 * namespace (which deletes their interfaces).
 *
 * The TURN host can also run the signalling worker (`startSignaling()`), so
 * that the CLI's `serve` and `connect` (`startCli()`) meet in a room there
 * and get TURN credentials from it, as from a deployed worker.
 *
 * Needs root, `ip` (iproute2), `iptables` (nft or legacy) and `turnserver`
 * (coturn).
 *
 * @module
 */
import type { IceServer } from "../../mod.ts";
import { type PeerOptions, type PeerReport, REPORT_PREFIX } from "./_peer.ts";

/** How a side reaches the "internet": directly, or through a NAT. */
export type Attachment = "public" | "cone" | "symmetric";

/** The STUN/TURN server's "public" address. */
export const TURN_ADDRESS = "203.0.113.10";
/** The "internet" namespace's own address: every public host's default route, a dead end. */
const INTERNET_GATEWAY = "203.0.113.1";
const TURN_PORT = 3478;
/**
 * coturn's shared secret (`use-auth-secret`): the TURN REST convention the
 * signalling worker mints credentials by, for its `TURN_SECRET`.
 */
export const TURN_SECRET = "lab-turn-shared-secret";

const PEER_SCRIPT = new URL("./_peer.ts", import.meta.url).pathname;
const SIGNAL_SCRIPT = new URL("./_signal.ts", import.meta.url).pathname;
const CLI_SCRIPT = new URL("../../src/cli/main.ts", import.meta.url).pathname;
/** The signalling worker's port on the TURN host (the namespace is the lab's own). */
const SIGNAL_PORT = 8787;
const ROOT = new URL("../..", import.meta.url).pathname;

/** A process running in the lab, with its stderr split into reports and log lines. */
export class LabProcess {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  readonly reports: PeerReport[] = [];
  readonly log: string[] = [];
  readonly exited: Promise<Deno.CommandStatus>;
  #waiters = new Set<() => void>();
  /** Whether the process exited and all it wrote was read. */
  #done = false;

  constructor(name: string, child: Deno.ChildProcess, output: ReadableStream<Uint8Array>) {
    this.name = name;
    this.child = child;
    this.exited = child.status;
    const read = readLines(output, (line) => {
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

  /** Resolves with the first report of one of `kinds`; rejects after `ms`, or once the process is gone. */
  async report<K extends PeerReport["kind"]>(
    kinds: K[],
    ms: number,
  ): Promise<Extract<PeerReport, { kind: K }>> {
    const found = await this.#until(
      () => this.reports.find((r) => (kinds as string[]).includes(r.kind)),
      ms,
      `no ${kinds.join(" or ")}`,
    );
    return found as Extract<PeerReport, { kind: K }>;
  }

  /**
   * Resolves with the first log line from the `from`-th on that `accept`
   * takes; rejects after `ms`, or once the process is gone.
   */
  line(accept: (line: string) => boolean, ms: number, from = 0): Promise<string> {
    return this.#until(() => this.log.slice(from).find(accept), ms, "no such line");
  }

  /** Sends the process a signal, if it still runs. */
  signal(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  async #until<T>(find: () => T | undefined, ms: number, what: string): Promise<T> {
    const deadline = Date.now() + ms;
    while (true) {
      const found = find();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.#done) {
        throw new Error(
          `${this.name} reported ${what} ${
            this.#done ? "before it exited" : `within ${ms} ms`
          }; its reports: ${JSON.stringify(this.reports)}; its log:\n${this.log.join("\n")}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, Math.min(left, 1_000));
        function wake() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.add(wake);
      });
    }
  }

  /** Waits for the process to exit, killing it if it still runs after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    const timer = setTimeout(() => this.#kill(), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  #kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }
}

/** One message relayed between the peers, with when and from whom. */
export interface RelayedSignal {
  at: number;
  from: "server" | "client";
  type: string;
  /** For a candidate, its type (`host`, `srflx`, `relay`). */
  candidateType?: string;
}

/** The namespaces of one lab, and the processes running in them. */
export class NatLab {
  readonly #tag: string;
  readonly #namespaces: string[] = [];
  readonly #processes: LabProcess[] = [];
  #turnDir?: string;
  #turn?: LabProcess;
  #nextPort = 0;
  /** The agent's address on the lab's "internet": its NAT's, or its own if public. */
  #agentAddress = "";
  /** The namespace of the desktop (MCP server). */
  readonly desktop: string;
  /** The namespace of the agent (MCP client). */
  readonly agent: string;

  private constructor(tag: string) {
    this.#tag = tag;
    this.desktop = `${tag}-desktop`;
    this.agent = `${tag}-agent`;
  }

  /**
   * Builds the lab and starts coturn in it.
   *
   * @param name A short name, unique within this process (it goes into the namespaces' names).
   */
  static async create(
    name: string,
    sides: { desktop: Attachment; agent: Attachment },
  ): Promise<NatLab> {
    const lab = new NatLab(`mcpnat-${Deno.pid}-${name}`);
    try {
      await lab.#build(sides);
      await lab.#startTurn();
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  /** The lab's STUN server, and its TURN server unless `turn` is false. */
  iceServers(turn?: { username: string; credential: string }): IceServer[] {
    const servers: IceServer[] = [{ urls: `stun:${TURN_ADDRESS}:${TURN_PORT}` }];
    if (turn) servers.push({ urls: this.turnUrl, ...turn });
    return servers;
  }

  /** The lab's TURN server, as a `turn:` URL (over UDP). */
  get turnUrl(): string {
    return `turn:${TURN_ADDRESS}:${TURN_PORT}?transport=udp`;
  }

  /**
   * Runs a desktop (MCP server) and an agent (MCP client) peer, relaying their
   * signalling; `signals` fills as messages pass.
   */
  startPeers(
    options: PeerOptions,
  ): { server: LabProcess; client: LabProcess; signals: RelayedSignal[] } {
    const server = this.#spawnPeer(this.desktop, "server", options);
    const client = this.#spawnPeer(this.agent, "client", options);
    const signals: RelayedSignal[] = [];
    const started = performance.now();
    const log = (from: "server" | "client") => (signal: Omit<RelayedSignal, "at" | "from">) => {
      signals.push({ ...signal, at: Math.round(performance.now() - started), from });
    };
    relay(client, server, log("client"));
    relay(server, client, log("server"));
    return { server, client, signals };
  }

  /**
   * Starts the signalling worker on the lab's public TURN host, with `vars`
   * (e.g. `TURN_URLS` and `TURN_SECRET`, so that rooms hand out credentials
   * for the lab's coturn); resolves with its `ws://` URL.
   */
  async startSignaling(vars: Record<string, string>): Promise<string> {
    const worker = this.#spawn("signalling", `${this.#tag}-turn`, Deno.execPath(), [
      "run",
      "-A",
      "--cached-only",
      SIGNAL_SCRIPT,
      TURN_ADDRESS,
      String(SIGNAL_PORT),
      JSON.stringify(vars),
    ], "merged");
    await worker.line((line) => line.startsWith("listening "), 30_000);
    return `ws://${TURN_ADDRESS}:${SIGNAL_PORT}`;
  }

  /**
   * Runs the CLI (`src/cli/main.ts`) in namespace `ns` (`desktop` or
   * `agent`), with stdout and stderr as one log and stdin open.
   */
  startCli(ns: string, args: string[]): LabProcess {
    return this.#spawn(
      args[0],
      ns,
      Deno.execPath(),
      [
        "run",
        "-A",
        "--cached-only",
        CLI_SCRIPT,
        ...args,
      ],
      "merged",
      true,
    );
  }

  /**
   * Runs a Deno script of the tests (a path) in namespace `ns` (`desktop` or
   * `agent`), with stdout and stderr as one log.
   */
  startScript(name: string, ns: string, script: string, args: string[]): LabProcess {
    return this.#spawn(name, ns, Deno.execPath(), [
      "run",
      "-A",
      "--cached-only",
      script,
      ...args,
    ], "merged");
  }

  /**
   * Drops all UDP that namespace `ns` (`desktop` or `agent`) sends or
   * receives, as a link that lost its way; TCP (the signalling) passes.
   * Resolves with the function that lets UDP through again.
   */
  async dropUdp(ns: string): Promise<() => Promise<void>> {
    const rules = [["INPUT"], ["OUTPUT"]].map(([chain]) => [chain, "-p", "udp", "-j", "DROP"]);
    for (const [chain, ...rule] of rules) await iptables(ns, ["-I", chain, "1", ...rule]);
    return async () => {
      for (const [chain, ...rule] of rules) await iptables(ns, ["-D", chain, ...rule]);
    };
  }

  /**
   * Holds back direct traffic between the two sides: the desktop's NAT router
   * drops what it would forward to or from the agent's public address (the
   * agent's NAT, or the agent itself), as a NAT whose mapping is not ready
   * drops the first checks; traffic through the TURN server passes. Dropped
   * packets leave no conntrack entry, so nothing is changed for later.
   * Resolves with the function that lets direct traffic through again.
   */
  async holdDirect(): Promise<() => Promise<void>> {
    const router = `${this.desktop}-nat`;
    const agent = this.#agentAddress;
    const rules = [["-s", agent, "-j", "DROP"], ["-d", agent, "-j", "DROP"]];
    for (const rule of rules) await iptables(router, ["-I", "FORWARD", "1", ...rule]);
    return async () => {
      for (const rule of rules) await iptables(router, ["-D", "FORWARD", ...rule]);
    };
  }

  /** What coturn logged so far. */
  get turnLog(): string[] {
    return this.#turn?.log ?? [];
  }

  /** Kills what still runs in the lab, then deletes its namespaces. */
  async close(): Promise<void> {
    // Every process is told to stop (the CLI, coturn and the signalling worker, which stops its
    // workerd child, run until told); one that is stuck is killed.
    for (const process of this.#processes) process.signal("SIGTERM");
    await Promise.all(this.#processes.map((process) => process.stop(3_000)));
    const failures: string[] = [];
    for (const ns of this.#namespaces.reverse()) {
      const result = await run("ip", ["netns", "del", ns], false);
      if (!result.ok) failures.push(`${ns}: ${result.stderr}`);
    }
    if (this.#turnDir) await Deno.remove(this.#turnDir, { recursive: true }).catch(() => {});
    const left = (await run("ip", ["netns", "list"])).stdout.split("\n")
      .filter((line) => line.startsWith(`${this.#tag}-`));
    if (failures.length > 0 || left.length > 0) {
      throw new Error(
        `Cannot tear the NAT lab down: ${failures.join("; ")} still there: ${left.join(", ")}`,
      );
    }
  }

  async #build(sides: { desktop: Attachment; agent: Attachment }): Promise<void> {
    const inet = await this.#namespace("inet");
    await ip(["-n", inet, "link", "add", "br0", "type", "bridge"]);
    await ip(["-n", inet, "link", "set", "br0", "up"]);
    // The "internet" drops what is sent to private addresses (a peer's host candidates) without a
    // word. With no route at all, sending would fail at once instead (ENETUNREACH), and coturn
    // closes a TURN allocation whose relay hits that.
    await ip(["-n", inet, "addr", "add", `${INTERNET_GATEWAY}/24`, "dev", "br0"]);
    await ip(["-n", inet, "route", "add", "blackhole", "default"]);
    await sysctl(inet, "net.ipv4.ip_forward=1");
    const turn = await this.#namespace("turn");
    await this.#attach(turn, "eth0", `${TURN_ADDRESS}/24`);
    await ip(["-n", turn, "route", "add", "default", "via", INTERNET_GATEWAY]);
    await this.#side(this.desktop, sides.desktop, { wan: "203.0.113.2", lan: 1, host: 21 });
    await this.#side(this.agent, sides.agent, { wan: "203.0.113.3", lan: 2, host: 20 });
    this.#agentAddress = sides.agent === "public" ? "203.0.113.20" : "203.0.113.3";
  }

  /** A side: public on the bridge, or behind its own NAT router namespace. */
  async #side(
    ns: string,
    attachment: Attachment,
    at: { wan: string; lan: number; host: number },
  ): Promise<void> {
    await this.#namespace(ns.slice(this.#tag.length + 1));
    if (attachment === "public") {
      await this.#attach(ns, "eth0", `203.0.113.${at.host}/24`);
      await ip(["-n", ns, "route", "add", "default", "via", INTERNET_GATEWAY]);
      return;
    }
    const router = await this.#namespace(`${ns.slice(this.#tag.length + 1)}-nat`);
    await this.#attach(router, "wan", `${at.wan}/24`);
    await ip(["-n", router, "route", "add", "default", "via", INTERNET_GATEWAY]);
    await ip(`link add lan netns ${router} type veth peer name eth0 netns ${ns}`.split(" "));
    await ip(["-n", router, "addr", "add", `10.77.${at.lan}.1/24`, "dev", "lan"]);
    await ip(["-n", router, "link", "set", "lan", "up"]);
    await ip(["-n", ns, "addr", "add", `10.77.${at.lan}.2/24`, "dev", "eth0"]);
    await ip(["-n", ns, "link", "set", "eth0", "up"]);
    await ip(["-n", ns, "route", "add", "default", "via", `10.77.${at.lan}.1`]);
    // Forwarding inside the router namespace only: between its LAN and the lab's bridge.
    await sysctl(router, "net.ipv4.ip_forward=1");
    // Linux MASQUERADE keeps the source port where it can: one mapping for every destination
    // (a port-restricted cone NAT). --random-fully picks a new port per destination: symmetric.
    const masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"];
    if (attachment === "symmetric") masquerade.push("--random-fully");
    await iptables(router, masquerade);
    // A router's firewall: from the WAN, only replies get in. Without it, a peer's check that
    // arrives before this side has sent anything to that peer leaves a conntrack entry that makes
    // this NAT give the mapping toward that peer a new port (hole punching then fails for good);
    // a packet dropped here leaves no entry.
    for (const chain of ["INPUT", "FORWARD"]) {
      const replies = "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT".split(" ");
      await iptables(router, ["-A", chain, "-i", "wan", ...replies]);
      await iptables(router, ["-A", chain, "-i", "wan", "-j", "DROP"]);
    }
  }

  async #namespace(suffix: string): Promise<string> {
    const ns = `${this.#tag}-${suffix}`;
    await ip(["netns", "add", ns]);
    this.#namespaces.push(ns);
    await ip(["-n", ns, "link", "set", "lo", "up"]);
    return ns;
  }

  /** Plugs `ns` into the lab's bridge through a new veth pair. */
  async #attach(ns: string, device: string, address: string): Promise<void> {
    const inet = `${this.#tag}-inet`;
    const port = `p${this.#nextPort++}`;
    await ip(`link add ${device} netns ${ns} type veth peer name ${port} netns ${inet}`.split(" "));
    await ip(["-n", inet, "link", "set", port, "master", "br0", "up"]);
    await ip(["-n", ns, "addr", "add", address, "dev", device]);
    await ip(["-n", ns, "link", "set", device, "up"]);
  }

  async #startTurn(): Promise<void> {
    this.#turnDir = await Deno.makeTempDir({ prefix: "mcpnat-turn-" });
    const turn = this.#turn = this.#spawn("coturn", `${this.#tag}-turn`, "turnserver", [
      "-n", // no configuration file
      "--no-cli",
      "--log-file=stdout",
      `--listening-ip=${TURN_ADDRESS}`,
      `--relay-ip=${TURN_ADDRESS}`,
      `--listening-port=${TURN_PORT}`,
      "--min-port=49152",
      "--max-port=49407",
      "--no-tls",
      "--no-dtls",
      "--no-tcp",
      "--use-auth-secret",
      `--static-auth-secret=${TURN_SECRET}`,
      "--realm=lab.test",
      "--fingerprint",
      "--no-software-attribute",
      "--max-allocate-lifetime=60",
      "--channel-lifetime=60",
      "--permission-lifetime=60",
      `--pidfile=${this.#turnDir}/turnserver.pid`,
      `--userdb=${this.#turnDir}/turndb`,
    ], "merged");
    const deadline = Date.now() + 5_000;
    while (!turn.log.some((line) => line.includes("Total General servers"))) {
      if (Date.now() > deadline) {
        throw new Error(`coturn did not start within 5 s; its log:\n${turn.log.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  #spawnPeer(ns: string, role: "server" | "client", options: PeerOptions): LabProcess {
    return this.#spawn(role, ns, Deno.execPath(), [
      "run",
      "-A",
      "--cached-only",
      PEER_SCRIPT,
      role,
      JSON.stringify(options),
    ], "stderr");
  }

  #spawn(
    name: string,
    ns: string,
    command: string,
    args: string[],
    output: "merged" | "stderr",
    stdin = output === "stderr",
  ): LabProcess {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, command, ...args],
      cwd: ROOT,
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // coturn logs to stdout; its stderr carries the odd warning.
    const stream: ReadableStream<Uint8Array> = output === "merged"
      ? mergeStreams(child.stdout, child.stderr)
      : child.stderr;
    const process = new LabProcess(name, child, stream);
    this.#processes.push(process);
    return process;
  }
}

/** Relays newline-delimited signalling from one peer's stdout to the other's stdin. */
function relay(
  from: LabProcess,
  to: LabProcess,
  onSignal: (signal: { type: string; candidateType?: string }) => void,
): void {
  const writer = to.child.stdin.getWriter();
  const encoder = new TextEncoder();
  void readLines(from.child.stdout, async (line) => {
    const message = JSON.parse(line) as { type: string; candidate?: { candidate?: string } };
    onSignal({
      type: message.type,
      candidateType: message.candidate?.candidate?.match(/ typ (\w+)/)?.[1],
    });
    await writer.write(encoder.encode(line + "\n")).catch(() => {});
  }).finally(() => writer.close().catch(() => {}));
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
    if (buffer.trim()) await onLine(buffer);
  } catch {
    // The process was killed mid-line.
  }
}

function mergeStreams(
  a: ReadableStream<Uint8Array>,
  b: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await writer.write(chunk);
  };
  Promise.allSettled([pump(a), pump(b)]).then(() => writer.close().catch(() => {}));
  return readable;
}

async function iptables(ns: string, args: string[]): Promise<void> {
  await run("ip", ["netns", "exec", ns, "iptables", ...args]);
}

async function sysctl(ns: string, setting: string): Promise<void> {
  await run("ip", ["netns", "exec", ns, "sysctl", "-qw", setting]);
}

async function ip(args: string[]): Promise<void> {
  await run("ip", args);
}

async function run(
  command: string,
  args: string[],
  check = true,
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const result = {
    ok: output.success,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr).trim(),
  };
  if (check && !result.ok) {
    throw new Error(`Cannot build the NAT lab: \`${command} ${args.join(" ")}\`: ${result.stderr}`);
  }
  return result;
}
