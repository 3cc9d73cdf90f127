/**
 * Interoperability with the Python reference implementation (`mcp-webrtc`
 * 0.1.0 on aiortc), both ways: its README's greeter server (with a
 * `call_tool` handler) and its README's client, run as they are, against this
 * module over aiortc's TCP signalling. The reference offers from its server
 * and answers from its client; its client also offers when made the
 * initiator, as a client of another stack that dials a server of this module
 * does. Each way is paired 50 times: the failures this guards against were
 * races that showed in 1 of 5 to 10 pairings.
 *
 * The reference looks up a public STUN server that cannot be configured, so
 * every process runs in a network namespace of the test's own that holds only
 * `lo` (with one test address on it: aiortc gathers no 127.0.0.1 candidate).
 *
 * The reference is installed into a virtual environment by the `setup.sh` in
 * the folder named by `MCP_WEBRTC_REFERENCE` (default
 * `../shared/reference/python` beside the repository), else from the package
 * index pip is configured with.
 */
import assert from "node:assert/strict";
import { blobText } from "./_helpers.ts";
import { labTest, prepareLab, succeeds } from "./_lab.ts";

const root = new URL("..", import.meta.url).pathname;
const VENV = `${Deno.env.get("TMPDIR") ?? "/tmp"}/mcp-webrtc-reference`;
const PYTHON = `${VENV}/bin/python`;
/** A documentation address (RFC 5737) on the namespace's `lo`. */
const TEST_ADDRESS = "192.0.2.1/32";
/**
 * How long one side of a pairing may take, a `deno run` or Python start-up
 * included (and, for the side that listens, the other side's): a bound for a
 * hang. On two cores shared with other work a Python start-up alone took 7 s
 * and a whole pairing over 30 s, so the bound leaves room for that.
 */
const PROCESS_TIMEOUT = 60_000;
/** Pairings in which the reference offers, and in which this module offers. */
const PAIRINGS_EACH_WAY = 50;

async function run(command: string, args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  const text = new TextDecoder().decode(success ? stdout : stderr).trim();
  if (!success) throw new Error(`${command} ${args.join(" ")} failed: ${text}`);
  return text;
}

/** Makes the reference's virtual environment (idempotent). */
async function installReference(): Promise<void> {
  const folder = Deno.env.get("MCP_WEBRTC_REFERENCE") ?? `${root}../shared/reference/python`;
  const setup = `${folder}/setup.sh`;
  try {
    Deno.statSync(setup);
    await run("bash", [setup, VENV]);
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  // No local copy: from the configured package index, the versions the reference needs.
  if (!(await succeeds(PYTHON, ["-c", "import mcp_webrtc"]))) {
    await run("python3", ["-m", "venv", VENV]);
    const pip = [PYTHON, "-m", "pip", "install", "-q", "--retries", "0", "--timeout", "10"];
    await run(pip[0], [...pip.slice(1), "mcp-webrtc==0.1.0", "mcp==1.29.0", "aiortc==1.13.0"])
      .catch(() => {
        throw new Error(
          "pip cannot install mcp-webrtc 0.1.0 from its index: set MCP_WEBRTC_REFERENCE to a folder with the reference's setup.sh and wheels",
        );
      });
  }
}

const lab = await prepareLab({
  name: "the Python reference tests",
  root: true,
  commands: { ip: "iproute2", python3: "python3" },
  packages: {
    "python3-venv": () => succeeds("python3", ["-c", "import ensurepip, venv"]),
    "libsrtp2-1": async () =>
      (await run("ldconfig", ["-p"]).catch(() => "")).includes("libsrtp2.so.1"),
  },
  prepare: installReference,
});

/** A network namespace holding only `lo`, removed by `remove()`. */
async function namespace(): Promise<{ name: string; remove: () => Promise<void> }> {
  const name = `mcpw-peer-ref-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await run("ip", ["netns", "add", name]);
  const remove = () => run("ip", ["netns", "del", name]).then(() => {});
  try {
    await run("ip", ["-n", name, "link", "set", "lo", "up"]);
    await run("ip", ["-n", name, "addr", "add", TEST_ADDRESS, "dev", "lo"]);
    const links = await run("ip", ["-n", name, "-o", "link", "show"]);
    assert.match(links, /^1: lo:[^\n]*$/, `the namespace must hold only lo: ${links}`);
  } catch (error) {
    await remove();
    throw error;
  }
  return { name, remove };
}

/** A process in the namespace, its output collected, killed if it outlives its time. */
class NsProcess {
  readonly #child: Deno.ChildProcess;
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly lines: string[] = [];
  readonly stderr: Promise<string>;
  readonly #waiters: { accept: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  readonly done: Promise<{ code: number; stdout: string; stderr: string; timedOut: boolean }>;
  #timedOut = false;

  constructor(ns: string, command: string, args: string[]) {
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, command, ...args],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#child.kill("SIGKILL");
    }, PROCESS_TIMEOUT);
    const stdout = this.#read(this.#child.stdout, true);
    this.stderr = this.#read(this.#child.stderr, false);
    this.done = Promise.all([this.#child.status, stdout, this.stderr]).then(
      ([status, out, err]) => {
        clearTimeout(this.#timer);
        return { code: status.code, stdout: out, stderr: err, timedOut: this.#timedOut };
      },
    );
  }

  /** Resolves with the first stdout line `accept` takes; rejects if the process ends first. */
  line(accept: (line: string) => boolean): Promise<string> {
    const seen = this.lines.find(accept);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ accept, resolve });
      this.done.then((result) =>
        reject(new Error(`the process ended (${result.code}) first:\n${result.stderr}`))
      );
    });
  }

  async #read(stream: ReadableStream<Uint8Array>, lines: boolean): Promise<string> {
    let text = "";
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (!lines) continue;
      pending += chunk;
      let end: number;
      while ((end = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        this.lines.push(line);
        for (const waiter of this.#waiters.filter((w) => w.accept(line))) waiter.resolve(line);
      }
    }
    return text;
  }
}

function ours(
  ns: string,
  mode: "client" | "client-large" | "server" | "answering-server",
): NsProcess {
  return new NsProcess(ns, Deno.execPath(), ["run", "-A", "tests/reference/_ours.ts", mode]);
}

/** The JSON report a process printed last. */
// deno-lint-ignore no-explicit-any -- each side's report has its own shape
function lastReport(run: { stdout: string }): any {
  return JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}");
}

/** Runs `pairing` in a namespace of its own, removed after. */
async function inNamespace(pairing: (ns: string) => Promise<void>): Promise<void> {
  const ns = await namespace();
  try {
    await pairing(ns.name);
  } finally {
    await ns.remove();
  }
}

/** The output of a pairing, with any run of one repeated text cut short, for a failure's message. */
function brief(output: string): string {
  return output.replace(/(.{20,200}?)\1{3,}/g, (_run, unit: string) => `${unit}[…]`).slice(0, 6000);
}

function reference(ns: string, script: string): NsProcess {
  return new NsProcess(ns, PYTHON, [`tests/reference/${script}`]);
}

interface OursReport {
  tools?: string[];
  result?: { content: { type: string; text: string }[] };
  error?: string;
  sent: string[];
  /** Each message each way, in order: `sent:offer`, `received:bye`. */
  log?: string[];
  errors: string[];
}

/**
 * Runs `pairing` `count` times, each in a namespace of its own; resolves with
 * what failed (the round and its error), every round run.
 */
async function pairings(
  count: number,
  pairing: (ns: string, round: number) => Promise<void>,
): Promise<string[]> {
  const failures: string[] = [];
  for (let round = 1; round <= count; round++) {
    await inNamespace((ns) => pairing(ns, round)).catch((error) =>
      failures.push(`round ${round}: ${brief(String(error))}`)
    );
  }
  return failures;
}

/** Asserts that every pairing connected, listing those that did not. */
function allConnected(failures: string[], count: number): void {
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${count} pairings failed:\n${failures.join("\n")}`,
  );
}

labTest(
  lab,
  "A client of this module reaches the reference's greeter server, which offers, and calls greet, every time",
  async () => {
    // Half of the pairings in which the reference offers (the other half: its client offers).
    const count = PAIRINGS_EACH_WAY / 2;
    const failures = await pairings(count, async (ns, round) => {
      const server = reference(ns, "greeter_server.py");
      // Ours connects, retrying while the server is not listening yet.
      const client = ours(ns, "client");
      const [clientRun, serverRun] = await Promise.all([client.done, server.done]);
      const detail = `round ${round}\nours: ${clientRun.stdout}${clientRun.stderr}\n` +
        `reference: ${serverRun.stdout}${serverRun.stderr}`;
      const report = lastReport(clientRun) as OursReport;
      assert.equal(report.error, undefined, detail);
      assert.deepEqual(report.tools, ["greet"], detail);
      assert.equal(report.result?.content[0].text, "Hello from Python!", detail);
      // Our answer went before any candidate of ours: aiortc crashes otherwise.
      assert.equal(report.sent[0], "answer", detail);
      // Nothing retried and nothing was reported: the user saw a plain connect.
      assert.deepEqual(report.errors, [], detail);
      assert.equal(clientRun.code, 0, detail);
      // The reference server ends once we said goodbye: it did not spin.
      assert.ok(!serverRun.timedOut, `the reference server did not end: ${detail}`);
    });
    allConnected(failures, count);
  },
);

labTest(
  lab,
  "The reference's client, made the offerer, reaches a server of this module, which answers, every time",
  async () => {
    const count = PAIRINGS_EACH_WAY / 2;
    const failures = await pairings(count, async (ns, round) => {
      const client = reference(ns, "offering_client.py");
      // Ours connects, retrying while the reference's client is not listening yet.
      const server = ours(ns, "answering-server");
      const [clientRun, serverRun] = await Promise.all([client.done, server.done]);
      const detail = `round ${round}\nreference: ${clientRun.stdout}${clientRun.stderr}\n` +
        `ours: ${serverRun.stdout}${serverRun.stderr}`;
      assert.equal(clientRun.code, 0, detail);
      assert.match(clientRun.stdout, /Tool\(name='greet'/, detail);
      const report = lastReport(serverRun) as OursReport;
      assert.equal(report.sent[0], "answer", detail);
      assert.deepEqual(report.errors, [], detail);
      assert.ok(!serverRun.timedOut, `our server did not end with its client: ${detail}`);
    });
    allConnected(failures, count);
  },
);

labTest(
  lab,
  "The reference's client reaches a server of this module, which offers, and lists its tools, every time",
  async () => {
    const failures = await pairings(PAIRINGS_EACH_WAY, async (ns, round) => {
      const server = ours(ns, "server");
      // The reference connects once, without retrying: only once we listen.
      await server.line((line) => line.includes('"listening"'));
      const client = reference(ns, "greeter_client.py");
      const [clientRun, serverRun] = await Promise.all([client.done, server.done]);
      const detail = `round ${round}\nreference: ${clientRun.stdout}${clientRun.stderr}\n` +
        `ours: ${serverRun.stdout}${serverRun.stderr}`;
      assert.equal(clientRun.code, 0, detail);
      assert.match(clientRun.stdout, /Tool\(name='greet'/, detail);
      assert.match(clientRun.stdout, /Tool\(name='blob'/, detail);
      const report = lastReport(serverRun) as OursReport;
      assert.equal(report.sent[0], "offer", detail);
      // Ours says goodbye as it ends, unless the reference said it first:
      // then nothing more (it has left).
      const log = report.log ?? [];
      const theirs = log.indexOf("received:bye");
      if (theirs === -1) assert.equal(log.at(-1), "sent:bye", detail);
      else {
        assert.deepEqual(
          log.slice(theirs).filter((entry) => entry.startsWith("sent:")),
          [],
          detail,
        );
      }
      assert.deepEqual(report.errors, [], detail);
      assert.ok(!serverRun.timedOut, `our server did not end with its client: ${detail}`);
    });
    allConnected(failures, PAIRINGS_EACH_WAY);
  },
);

labTest(
  lab,
  "A client of this module takes a 40 KB result with escapes from the reference, and is refused a request too large for it at once",
  () =>
    inNamespace(async (ns) => {
      const server = reference(ns, "large_server.py");
      const client = ours(ns, "client-large");
      const [clientRun, serverRun] = await Promise.all([client.done, server.done]);
      const detail = brief(
        `ours: ${clientRun.stdout}${clientRun.stderr}\n` +
          `reference: ${serverRun.stdout}${serverRun.stderr}`,
      );
      const got = lastReport(clientRun);
      // One text frame of the reference's, every escape in it, read whole.
      assert.deepEqual(got.large, { length: 40_280, same: true }, detail);
      // The reference reads one message per text frame of at most 64 KiB: a
      // larger request cannot reach it, and the caller is told so, not left waiting.
      assert.match(got.refused, /^MessageSizeError: .*does not reassemble chunks/, detail);
      assert.equal(got.result?.content[0].text, "Hello from Python!", detail);
      assert.equal(clientRun.code, 0, detail);
    }),
);

labTest(
  lab,
  "The reference's client takes a 51 KB result from a server of this module, and an error at once for one too large for it",
  () =>
    inNamespace(async (ns) => {
      const server = ours(ns, "server");
      await server.line((line) => line.includes('"listening"'));
      const client = reference(ns, "large_client.py");
      const [clientRun, serverRun] = await Promise.all([client.done, server.done]);
      const detail = brief(
        `reference: ${clientRun.stdout}${clientRun.stderr}\n` +
          `ours: ${serverRun.stdout}${serverRun.stderr}`,
      );
      assert.equal(clientRun.code, 0, detail);
      const theirs = lastReport(clientRun);
      assert.equal(theirs.fits.text, blobText(40_000), detail);
      // 100 000 characters are about 129 KB: an error response, not a hang (10 s).
      assert.equal(theirs.tooLarge.error, "McpError", detail);
      assert.match(theirs.tooLarge.message, /does not reassemble chunks/, detail);
      assert.equal(theirs.after.text, blobText(10), detail);
      // Our server reports the refusal as well.
      const { errors } = lastReport(serverRun) as OursReport;
      assert.equal(errors.length, 1, detail);
      assert.match(errors[0], /MessageSizeError/, detail);
    }),
);
