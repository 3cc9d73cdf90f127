/**
 * A browser page as an MCP client and as an MCP server: headless Chromium
 * loads a page whose bundled script uses the root entry with the browser's
 * own RTCPeerConnection and WebSocket, and reaches Deno desktops through the
 * local signalling worker with tickets.
 *
 * Chromium talks to outside hosts at start-up whatever its flags, so it runs
 * only in a network namespace of its own that holds nothing but `lo`, with
 * everything it talks to (`tests/browser/run_in_netns.ts`). Needs root, `ip`
 * (iproute2) and `chromium`: installed when missing on Linux as root, else the
 * test is skipped, saying so (see `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import type { Outcome } from "./browser/exercise.ts";
import { labTest, prepareLab } from "./_lab.ts";

const root = new URL("..", import.meta.url);
const CHILD_TIMEOUT_MS = 30_000;

/** The full path of `name` on PATH, or a failed assertion saying how to install it. */
function requireCommand(name: string, install: string): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${name}`;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not here.
    }
  }
  assert.fail(`'${name}' must be installed to run the browser test: ${install}`);
}

async function ip(...args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("ip", { args, stdin: "null" })
    .output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  if (!success) throw new Error(`ip ${args.join(" ")} failed: ${decode(stderr)}`);
  return decode(stdout);
}

/** Runs the browser's world in a fresh network namespace with only `lo`, then removes it. */
async function runInNetns(chromium: string): Promise<Record<string, unknown>> {
  const ns = `mcpw-browser-${Deno.pid}`;
  await ip("netns", "add", ns).catch((error) => {
    throw new Error(`Cannot create a network namespace (run as root): ${error.message}`);
  });
  try {
    await ip("-n", ns, "link", "set", "lo", "up");
    const links = await ip("-n", ns, "-o", "link", "show");
    assert.match(links, /^1: lo:[^\n]*$/, `the namespace must hold only lo: ${links}`);
    const child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "-A",
        "tests/browser/run_in_netns.ts",
        chromium,
      ],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(timer);
    const lines = new TextDecoder().decode(stdout).trim().split("\n");
    const detail = `exit ${code}\n${lines.join("\n")}\n${new TextDecoder().decode(stderr)}`;
    try {
      return JSON.parse(lines.at(-1) ?? "");
    } catch {
      throw new Error(
        `The browser run did not report (killed after ${CHILD_TIMEOUT_MS} ms?): ${detail}`,
      );
    }
  } finally {
    // Whatever is left in the namespace is ours: Chromium's helpers, a hung child.
    const pids = await ip("netns", "pids", ns).catch(() => "");
    for (const pid of pids.split("\n").filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    await ip("netns", "delete", ns);
  }
}

const lab = await prepareLab({
  name: "the browser test",
  root: true,
  commands: { chromium: "chromium", ip: "iproute2" },
  recommends: true,
});

labTest(
  lab,
  "A browser page is an MCP client and server of Deno peers, through the worker with tickets",
  async () => {
    const chromium = requireCommand("chromium", "apt-get install -y chromium");
    const report = await runInNetns(chromium);
    const show = JSON.stringify(report, null, 1);
    assert.equal(report.error, undefined, show);
    const page = report.page as Record<string, Outcome | boolean | undefined>;
    assert.equal(page.RTCPeerConnection, true, show);
    assert.equal(page.Deno, false, show);
    // The page dials and makes the offer; then the desktop makes it.
    for (const key of ["offerer", "answerer"]) {
      const outcome = page[key] as Outcome & { ok: true };
      assert.equal(outcome?.ok, true, `${key}: ${show}`);
      assert.deepEqual(outcome.tools, ["blob", "greet"], show);
      assert.equal(outcome.greeting, "Hello, browser!", show);
    }
    assert.equal(report.sessions, 2, show);
    // A ticket with another secret: refused by the room, and the page is told why.
    const wrong = page.wrong as Outcome & { ok: false };
    assert.equal(wrong?.ok, false, show);
    assert.equal(wrong.name, "ConnectError", show);
    assert.match(wrong.message, /key was refused/, show);
    // The page listens as a desktop; a Deno agent dials its ticket.
    const served = page.serve as Outcome & { ok: true };
    assert.equal(served?.ok, true, show);
    assert.deepEqual(served.tools, ["greet"], show);
    assert.equal(served.greeting, "Hello from the browser, deno!", show);
  },
);
