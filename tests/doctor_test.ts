/**
 * `doctor` in the NAT lab (`tests/nat/lab.ts`): the command runs in the
 * desktop's namespace, behind a cone or a symmetric NAT, against the local
 * signalling worker and coturn on the lab's "public" addresses, with a second
 * STUN server on another address so that the NAT's mapping can be told.
 *
 * ```
 *   turn namespace: coturn (STUN, TURN) 203.0.113.10:3478, the worker 203.0.113.10:8787,
 *                   a STUN-only coturn 203.0.113.11:3478
 *                         │
 *   desktop NAT 203.0.113.2 (cone, or symmetric; UDP dropped in one test)
 *                         │
 *   desktop 10.77.1.2: mcp-webrtc doctor --json
 * ```
 *
 * Needs root, `ip`, `iptables` and coturn, as the NAT lab does (see `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { startLocalSignaling } from "../worker/local.ts";
import {
  doctor,
  type DoctorReport,
  mappingOf,
  type StunProbe,
  verdictOf,
} from "../src/cli/doctor.ts";
import { UsageError } from "../src/errors.ts";
import { SIGNAL_ENV } from "../src/cli/serve.ts";
import { ExitCode } from "../src/cli/exit.ts";
import { type Attachment, NatLab, TURN_ADDRESS, TURN_SECRET } from "./nat/lab.ts";
import { labTest, prepareLab, stopProcess } from "./_lab.ts";

const lab = await prepareLab({
  name: "the NAT lab",
  root: true,
  commands: { ip: "iproute2", iptables: "iptables", turnserver: "coturn" },
});

const ROOT = new URL("..", import.meta.url).pathname;
/** The second STUN server's address, beside coturn's on the lab's "internet". */
const SECOND_STUN = "203.0.113.11";
const SIGNAL_URL = `ws://${TURN_ADDRESS}:8787`;
/** How long a lab process may take to start (a `deno run` start and Miniflare's included). */
const START_WITHIN = 30_000;
/** The most `doctor` may take: its own bounds (a few seconds) and a `deno run` start. */
const DOCTOR_WITHIN = 20_000;

interface Setup {
  /** Whether the signalling worker runs (with TURN credentials for coturn). */
  signal: boolean;
  /** Drops every UDP packet at the desktop's NAT. */
  dropUdp?: boolean;
}

/** Builds a lab, runs `doctor --json` in the desktop's namespace, and returns its report. */
async function doctorBehind(
  name: string,
  desktop: Attachment,
  setup: Setup,
): Promise<{ report: DoctorReport; code: number; elapsed: number; stderr: string }> {
  const nat = await NatLab.create(name, { desktop, agent: "public" });
  const children: Deno.ChildProcess[] = [];
  try {
    // The lab's namespaces are named after a common tag: <tag>-desktop, <tag>-turn, ...
    const tag = nat.desktop.slice(0, -"-desktop".length);
    const turnNs = `${tag}-turn`;
    await run(["ip", "-n", turnNs, "addr", "add", `${SECOND_STUN}/24`, "dev", "eth0"]);
    const stun = spawnIn(turnNs, "turnserver", [
      "-n",
      "--stun-only",
      "--no-cli",
      "--log-file=stdout",
      `--listening-ip=${SECOND_STUN}`,
      "--listening-port=3478",
      "--no-tls",
      "--no-dtls",
      "--no-tcp",
      "--no-software-attribute",
      `--pidfile=/tmp/${tag}-stun.pid`,
      `--userdb=/tmp/${tag}-stun.db`,
    ]);
    children.push(stun);
    await firstLine(stun.stdout, (line) => line.includes("Total General servers"), "coturn");
    if (setup.signal) {
      const worker = spawnIn(turnNs, Deno.execPath(), [
        "run",
        "-A",
        "--cached-only",
        "worker/local.ts",
        "--port",
        "8787",
        "--host",
        TURN_ADDRESS,
      ], {
        TURN_URLS: `stun:${TURN_ADDRESS}:3478 ${nat.turnUrl}`,
        TURN_SECRET,
      });
      children.push(worker);
      await firstLine(worker.stdout, (line) => line.startsWith("ws://"), "the worker");
    }
    if (setup.dropUdp) {
      await run([
        "ip",
        "netns",
        "exec",
        `${nat.desktop}-nat`,
        "iptables",
        "-I",
        "FORWARD",
        "-p",
        "udp",
        "-j",
        "DROP",
      ]);
    }
    const started = performance.now();
    const doctor = spawnIn(nat.desktop, Deno.execPath(), [
      "run",
      "-A",
      "--cached-only",
      "src/cli/main.ts",
      "doctor",
      "--signal",
      SIGNAL_URL,
      "--ice-server",
      `stun:${SECOND_STUN}:3478`,
      "--json",
    ]);
    children.push(doctor);
    const timer = setTimeout(() => doctor.kill("SIGKILL"), DOCTOR_WITHIN);
    const [stdout, stderr, status] = await Promise.all([
      new Response(doctor.stdout).text(),
      new Response(doctor.stderr).text(),
      doctor.status,
    ]).finally(() => clearTimeout(timer));
    const elapsed = Math.round(performance.now() - started);
    assert.ok(stdout.trim(), `doctor printed nothing (exit ${status.code}); stderr:\n${stderr}`);
    return { report: JSON.parse(stdout), code: status.code, elapsed, stderr };
  } finally {
    await Promise.all(children.map((child) => stopProcess(child)));
    await nat.close();
  }
}

function spawnIn(
  ns: string,
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command("ip", {
    args: ["netns", "exec", ns, command, ...args],
    cwd: ROOT,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Reads `stream` until a line passes `test`; keeps draining it afterwards. */
async function firstLine(
  stream: ReadableStream<Uint8Array>,
  test: (line: string) => boolean,
  what: string,
): Promise<void> {
  const lines = stream.pipeThrough(new TextDecoderStream()).getReader();
  const seen: string[] = [];
  let buffer = "";
  const found = (async () => {
    while (true) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`${what} ended before it was ready:\n${seen.join("\n")}`);
      buffer += value;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      seen.push(...parts);
      if (parts.some(test)) return;
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      found,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} was not ready within ${START_WITHIN} ms`)),
          START_WITHIN,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  void (async () => {
    while (!(await lines.read()).done) { /* drained */ }
  })().catch(() => {});
}

async function run(command: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(`${command.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
}

function print(label: string, result: { report: DoctorReport; elapsed: number }): void {
  const { report } = result;
  console.log(
    `${label}: ${report.verdict} in ${report.elapsedMs} ms (process ${result.elapsed} ms); ` +
      `stun ${report.stun.map((s) => `${s.url} → ${s.mapped ?? s.error}`).join(", ")}; ` +
      `mapping ${report.mapping}; turn ${
        report.turn.map((t) => t.ok ? `relay ${t.relayed}` : t.error).join(", ")
      }; relay ${report.relay.ok ? `${report.relay.ms} ms` : report.relay.error}; ` +
      `TURN credentials ${
        report.signal.iceServers
          ? `asked: ${JSON.stringify(report.signal.iceServers)}`
          : "from the welcome"
      }\n  ${report.summary}`,
  );
}

labTest(lab, "doctor behind a cone NAT says agents will reach you directly", async () => {
  const result = await doctorBehind("dcone", "cone", { signal: true });
  print("cone NAT", result);
  const { report, code } = result;
  assert.equal(code, ExitCode.OK);
  assert.equal(report.verdict, "direct");
  assert.match(report.summary, /^Agents will reach you directly, because/);
  assert.equal(report.mapping, "endpoint-independent");
  // Both STUN servers (the room's and the one given) answered, with one public port.
  assert.deepEqual(report.stun.map((s) => s.url).sort(), [
    `stun:${TURN_ADDRESS}:3478`,
    `stun:${SECOND_STUN}:3478`,
  ]);
  assert.ok(report.stun.every((s) => s.ok && s.mapped?.startsWith("203.0.113.2:")));
  assert.equal(new Set(report.stun.map((s) => s.mapped)).size, 1);
  assert.equal(report.signal.http.status, 200);
  assert.equal(report.signal.websocket.ok, true);
  assert.equal(report.relay.ok, true);
  // TURN is reported as it is, even where the verdict does not need it.
  assert.equal(report.turn.length, 1);
  assert.equal(report.turn[0].ok, true, report.turn[0].error);
  assert.ok(report.elapsedMs < 10_000, `took ${report.elapsedMs} ms`);
});

labTest(
  lab,
  "doctor behind a symmetric NAT with the room's TURN says agents will reach you through TURN",
  async () => {
    const result = await doctorBehind("dsym", "symmetric", { signal: true });
    print("symmetric NAT", result);
    const { report, code } = result;
    assert.equal(code, ExitCode.OK);
    assert.equal(report.verdict, "turn");
    assert.match(report.summary, /^Agents will reach you through TURN, because/);
    assert.equal(report.mapping, "symmetric");
    const ports = new Set(report.stun.map((s) => s.mapped));
    assert.equal(ports.size, 2, `mapped: ${[...ports]}`);
    assert.equal(report.turn.length, 1);
    assert.equal(report.turn[0].credentials, "room");
    assert.equal(report.signal.handedOut, 2);
    // A room that hands out TURN credentials on request was asked once, and answered.
    if (report.signal.iceServers) assert.equal(report.signal.iceServers.ok, true);
    assert.equal(report.turn[0].ok, true, report.turn[0].error);
    assert.match(report.turn[0].relayed ?? "", /^203\.0\.113\.10:\d+$/);
  },
);

labTest(
  lab,
  "doctor with UDP dropped at the NAT says agents will reach you through the room's relay",
  async () => {
    const result = await doctorBehind("dudp", "cone", { signal: true, dropUdp: true });
    print("UDP dropped", result);
    const { report, code } = result;
    assert.equal(code, ExitCode.OK);
    assert.equal(report.verdict, "relay");
    assert.match(report.summary, /^Agents will reach you through the room's relay, because/);
    assert.equal(report.udp, false);
    assert.ok(report.stun.length === 2 && report.stun.every((s) => !s.ok));
    assert.equal(report.turn.length, 1);
    assert.equal(report.turn[0].ok, false);
    assert.equal(report.relay.ok, true, report.relay.error);
    assert.ok(report.relay.bytesPerSecond! > 0);
  },
);

labTest(
  lab,
  "doctor without a signalling service says agents will not reach you at all, and why",
  async () => {
    const result = await doctorBehind("dnosig", "cone", { signal: false });
    print("no signalling service", result);
    const { report, code } = result;
    assert.equal(code, ExitCode.SIGNALING);
    assert.equal(report.verdict, "none");
    assert.match(
      report.summary,
      new RegExp(
        `^Agents will not reach you at all, because the signalling service at ${SIGNAL_URL}`,
      ),
    );
    assert.equal(report.signal.http.ok, false);
    assert.equal(report.signal.websocket.ok, false);
    assert.match(report.signal.websocket.error ?? "", /Cannot join room/);
    // Without the room, only the STUN server given answered: one destination is too few to tell.
    assert.equal(report.mapping, "unknown");
    assert.match(report.mappingNote, /only one destination answered, too few to tell/);
    assert.equal(report.relay.ok, false);
  },
);

const answered = (url: string, destination: string, mapped: string): StunProbe => ({
  url,
  ok: true,
  ms: 1,
  destination,
  mapped,
});

Deno.test("mappingOf() compares the public ports that two destinations or more saw", () => {
  const a = answered("stun:a", "192.0.2.1:3478", "198.51.100.7:4000");
  const b = answered("stun:b", "192.0.2.2:3478", "198.51.100.7:4000");
  const c = answered("stun:c", "192.0.2.3:3478", "198.51.100.7:4444");
  assert.equal(mappingOf([a, b], []).mapping, "endpoint-independent");
  assert.equal(mappingOf([a, b, c], []).mapping, "symmetric");
  assert.match(mappingOf([a, b, c], []).mappingNote, /3 destinations saw 2 different public ports/);
  // One answer, or one answer and a failure: too few to tell.
  const lost: StunProbe = { url: "stun:d", ok: false, error: "no answer" };
  assert.equal(mappingOf([a, lost], []).mapping, "unknown");
  assert.match(mappingOf([a], []).mappingNote, /too few to tell/);
  assert.equal(mappingOf([lost], []).mappingNote, "no STUN server answered");
  // The STUN server sees this machine's own address: no NAT.
  assert.equal(mappingOf([a], ["198.51.100.7"]).mapping, "none");
});

Deno.test("verdictOf() picks the path ICE and the relay would end on, with the reason", () => {
  const signal = {
    url: "wss://signal.example",
    http: { ok: true },
    websocket: { ok: true },
    handedOut: 0,
  };
  const stun = [answered("stun:a", "192.0.2.1:3478", "198.51.100.7:4000")];
  const turnOk = [{
    url: "turn:t",
    credentials: "room" as const,
    ok: true,
    relayed: "192.0.2.9:1",
  }];
  const turnFailed = [{ url: "turn:t", credentials: "room" as const, ok: false, error: "refused" }];
  type Measured = Parameters<typeof verdictOf>[0];
  const base: Measured = {
    signal,
    udp: true,
    stun,
    mapping: "endpoint-independent",
    mappingNote: "",
    turn: [],
    relay: { ok: true },
  };
  const cases: [Partial<Measured>, string, RegExp][] = [
    [{}, "direct", /directly, because UDP reaches the STUN servers/],
    [
      { mapping: "none" },
      "direct",
      /directly, because no NAT stands between this machine and the STUN servers/,
    ],
    [{ mapping: "unknown", mappingNote: "only one" }, "direct", /\(only one\)/],
    [{ mapping: "symmetric", turn: turnOk }, "turn", /through TURN, because your NAT/],
    [{ udp: false, turn: turnOk }, "turn", /through TURN, because no STUN server answered/],
    [{ mapping: "symmetric", turn: turnFailed }, "relay", /no TURN server allocated a relay/],
    [{ udp: false, stun: [] }, "relay", /no STUN server was given or handed out/],
    [
      { udp: false, relay: { ok: false, error: "relay_disabled" } },
      "none",
      /not reach you at all, because no STUN server answered over UDP, the room hands out no TURN server, and the room's relay failed: relay_disabled/,
    ],
    [
      { signal: { ...signal, websocket: { ok: false, error: "Cannot join room" } } },
      "none",
      /not reach you at all, because the signalling service at wss:\/\/signal.example cannot be used: it answers HTTP, but its rooms do not: Cannot join room/,
    ],
  ];
  for (const [change, verdict, summary] of cases) {
    const result = verdictOf({ ...base, ...change });
    assert.equal(result.verdict, verdict, JSON.stringify(change));
    assert.match(result.summary, summary);
  }
});

Deno.test("doctor() refuses a command line it cannot run, saying what to pass", async () => {
  const saved = Deno.env.get(SIGNAL_ENV);
  Deno.env.delete(SIGNAL_ENV);
  try {
    await assert.rejects(doctor([]), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /no signalling service is given: pass --signal/);
      return true;
    });
    await assert.rejects(doctor(["--signal", "ftp://signal.example"]), UsageError);
    await assert.rejects(doctor(["--signal", "ws://127.0.0.1:1", "extra"]), /with arguments/);
    await assert.rejects(
      doctor(["--signal", "ws://127.0.0.1:1", "--ice-server", "http://x"]),
      /must be a stun:, stuns:, turn: or turns: URL/,
    );
    await assert.rejects(
      doctor(["--signal", "ws://127.0.0.1:1", "--ice-server", "turn:192.0.2.1:3478"]),
      /without credentials: pass --ice-username and --ice-credential/,
    );
  } finally {
    if (saved !== undefined) Deno.env.set(SIGNAL_ENV, saved);
  }
});

/** A STUN server on loopback that answers each binding request with `answer(request, from)`. */
async function fakeStun(
  address: string,
  answer: (request: Uint8Array, from: { address: string; port: number }) => Uint8Array,
): Promise<{ port: number; close: () => void }> {
  const socket = createSocket("udp4");
  socket.on(
    "message",
    (message, from) => socket.send(answer(message, from), from.port, from.address),
  );
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return { port: socket.address().port, close: () => socket.close() };
}

/** A binding success response that tells the client where it came from. */
function mappedResponse(request: Uint8Array, from: { address: string; port: number }): Uint8Array {
  const packet = new Uint8Array(32);
  const view = new DataView(packet.buffer);
  view.setUint16(0, 0x0101);
  view.setUint16(2, 12);
  packet.set(request.subarray(4, 20), 4);
  view.setUint16(20, 0x0020);
  view.setUint16(22, 8);
  view.setUint16(24, 0x0001);
  view.setUint16(26, from.port ^ 0x2112);
  const octets = from.address.split(".").map(Number);
  octets.forEach((octet, i) => packet[28 + i] = octet ^ packet[4 + i]);
  return packet;
}

/** A binding error response whose reason tries to act on the terminal. */
function hostileError(request: Uint8Array): Uint8Array {
  const reason = new TextEncoder().encode("Go away\x1b[2K\x1b]52;c;aGk=\x07\u202e");
  const size = 4 + reason.length;
  const packet = new Uint8Array(24 + size + ((4 - (size % 4)) % 4));
  const view = new DataView(packet.buffer);
  view.setUint16(0, 0x0111);
  view.setUint16(2, packet.length - 20);
  packet.set(request.subarray(4, 20), 4);
  view.setUint16(20, 0x0009);
  view.setUint16(22, size);
  packet.set([0, 0, 4, 3, ...reason], 24);
  return packet;
}

Deno.test(
  "doctor on loopback reads each STUN server's answer, shows a hostile one escaped, and sees no NAT",
  async () => {
    const worker = await startLocalSignaling({ onLog: () => {} });
    const honest = await fakeStun("127.0.0.1", mappedResponse);
    const hostile = await fakeStun("127.0.0.2", hostileError);
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "src/cli/main.ts",
          "doctor",
          "--signal",
          worker.url,
          "--ice-server",
          `stun:127.0.0.1:${honest.port}`,
          "--ice-server",
          `stun:127.0.0.2:${hostile.port}`,
        ],
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      console.log(stdout);
      assert.equal(output.code, ExitCode.OK, new TextDecoder().decode(output.stderr));
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(stdout, /[\x1b\x07\u202e]/);
      assert.match(
        stdout,
        /failed: Cannot read the STUN response as the server refused the request: 403 Go away\\x1b\[2K\\x1b\]52;c;aGk=\\x07\\u202e/,
      );
      assert.match(stdout, /mapped to 127\.0\.0\.1:\d+ in \d+ ms/);
      assert.match(stdout, /Mapping: none \(the STUN servers see this machine's own address/);
      assert.match(
        stdout,
        /\nAgents will reach you directly, because no NAT stands between this machine and the STUN servers/,
      );
    } finally {
      honest.close();
      hostile.close();
      await worker.close();
    }
  },
);
