/**
 * Nothing is fetched at run time: after `deno install --frozen`, the demo and
 * the local signalling worker run in a network namespace that holds only
 * `lo`, with an empty `DENO_DIR`. So whatever they load comes from the
 * checkout and its `node_modules`, which `deno install` filled, and not from
 * a cache that an earlier run with a network left behind (as `deno bundle`'s
 * esbuild would be).
 */
import assert from "node:assert/strict";
import { ip, labTest, prepareLab } from "./_lab.ts";

const root = new URL("..", import.meta.url);
const RUN_TIMEOUT_MS = 120_000;

const lab = await prepareLab({
  name: "the offline run",
  commands: { ip: "iproute2" },
  root: true,
});

/** Runs `fn` with a fresh namespace holding only `lo` and an empty DENO_DIR, then removes both. */
async function offline(
  fn: (run: (args: string[]) => Deno.ChildProcess) => Promise<void>,
): Promise<void> {
  const ns = `mcpw-offline-${Deno.pid}`;
  const denoDir = await Deno.makeTempDir({ prefix: "mcpw-deno-dir-" });
  await ip("netns", "add", ns);
  const children: Deno.ChildProcess[] = [];
  try {
    await ip("-n", ns, "link", "set", "lo", "up");
    const run = (args: string[]) => {
      const child = new Deno.Command("ip", {
        args: ["netns", "exec", ns, Deno.execPath(), ...args],
        cwd: root,
        env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      children.push(child);
      return child;
    };
    await fn(run);
  } finally {
    // `deno task` runs its command in a child: end everything in the namespace.
    const { stdout } = await new Deno.Command("ip", { args: ["netns", "pids", ns] }).output();
    for (const pid of new TextDecoder().decode(stdout).split("\n").filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    for (const child of children) await child.status;
    await ip("netns", "delete", ns);
    await Deno.remove(denoDir, { recursive: true });
  }
}

/** Waits for a child with a deadline; resolves its exit code and output. */
async function finish(child: Deno.ChildProcess): Promise<{ code: number; output: string }> {
  const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, output: `${decode(stdout)}\n${decode(stderr)}` };
}

labTest(lab, "The demo runs with no network and an empty DENO_DIR", async () => {
  await offline(async (run) => {
    const { code, output } = await finish(run(["task", "demo"]));
    assert.equal(code, 0, output);
    assert.match(output, /read_file large\.log → 2\.0 MiB/);
    assert.match(output, /signalling worker stopped/);
  });
});

labTest(lab, "deno task signal serves rooms with no network and an empty DENO_DIR", async () => {
  await offline(async (run) => {
    const signal = run(["task", "signal", "--port", "0"]);
    const timer = setTimeout(() => signal.kill("SIGKILL"), RUN_TIMEOUT_MS);
    const lines = signal.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await lines.read();
    clearTimeout(timer);
    lines.releaseLock();
    const url = first.value?.split("\n")[0].trim() ?? "";
    if (!url.startsWith("ws://127.0.0.1:")) {
      signal.kill("SIGKILL");
      const { stderr } = await signal.output();
      assert.fail(`deno task signal printed no URL: ${new TextDecoder().decode(stderr)}`);
    }
    // The namespace's loopback is its own: ask for the health from inside it.
    const health = url.replace(/^ws:/, "http:") + "/health";
    const { code, output } = await finish(run([
      "eval",
      `const r = await fetch(${JSON.stringify(health)}); console.log(r.status, await r.text());`,
    ]));
    assert.equal(code, 0, output);
    assert.match(output, /^200 \{"ok":true\}/);
  });
});
