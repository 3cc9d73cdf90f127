/**
 * What the browser tests share: headless Chromium talks to outside hosts at
 * start-up whatever its flags, so a test runs the browser's whole world (the
 * worker, the desktops, the page server, Chromium) in a child process inside
 * a network namespace of its own that holds nothing but `lo`. Needs root (or
 * CAP_SYS_ADMIN and CAP_NET_ADMIN), `ip` (iproute2) and `chromium`, which
 * {@linkcode browserTools} installs when they are missing and it can.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ip } from "../_lab.ts";

const root = new URL("../../", import.meta.url);

/**
 * Chromium's flags for a namespace with only `lo`: nothing in the background,
 * loopback allowed in peer connections, real addresses in candidates (no mDNS
 * names), and no DNS look-ups but of 127.0.0.1.
 */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
];

/** The full path of `name` on PATH, if it is there. */
function findCommand(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${name}`;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** What the browser tests need: the command, and the Debian package that has it. */
const TOOLS = [["chromium", "chromium"], ["ip", "iproute2"]] as const;

/**
 * Makes sure Chromium and `ip` are there: when missing, installs them with
 * apt-get if this is Linux and root. Call it at the top of a test module.
 *
 * @returns Chromium's path, or the one line saying what to install when the
 * test cannot run here (no root, not Linux); with `CI=true` that is an error.
 */
export async function browserTools(): Promise<{ chromium: string } | { skip: string }> {
  let missing = TOOLS.filter(([command]) => !findCommand(command)).map(([, apt]) => apt);
  if (missing.length > 0 && Deno.build.os === "linux" && Deno.uid() === 0) {
    const apt = (...args: string[]) =>
      new Deno.Command("apt-get", {
        args,
        env: { DEBIAN_FRONTEND: "noninteractive" },
        stdin: "null",
        stdout: "null",
      }).output();
    try {
      await apt("update", "-qq");
      await apt("install", "-y", "-qq", ...missing);
    } catch (error) {
      // No apt-get: said below as what to install.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    missing = TOOLS.filter(([command]) => !findCommand(command)).map(([, apt]) => apt);
  }
  if (missing.length === 0) return { chromium: findCommand("chromium")! };
  const skip = `Browser tests skipped: install ${missing.join(" and ")} ` +
    `(apt-get install -y ${missing.join(" ")}) and run them as root`;
  assert.notEqual(Deno.env.get("CI"), "true", `${skip}; with CI=true nothing may be skipped`);
  return { skip };
}

/**
 * Runs `deno run -A <script> <args>` in a fresh network namespace that holds
 * only `lo`, killed after `timeout` ms, then removes the namespace and
 * everything left in it. The script prints one JSON line last: its report.
 *
 * @param prefix The namespace's name prefix; the pid is appended.
 * @param script The script's path from the repository root.
 * @param args The script's arguments.
 * @param timeout Milliseconds before the script is killed.
 * @param options `link`: also a veth pair inside the namespace, one end at
 * 10.231.0.1/24, as a machine's network card would be (nothing is behind it).
 * @returns The script's report.
 */
export async function runInNetns(
  prefix: string,
  script: string,
  args: string[],
  timeout: number,
  options: { link?: boolean } = {},
): Promise<Record<string, unknown>> {
  const ns = `${prefix}-${Deno.pid}`;
  await ip("netns", "add", ns).catch((error) => {
    throw new Error(`Cannot create a network namespace (run as root): ${error.message}`);
  });
  try {
    await ip("-n", ns, "link", "set", "lo", "up");
    if (options.link) {
      await ip("-n", ns, "link", "add", "mcpw0", "type", "veth", "peer", "name", "mcpw1");
      await ip("-n", ns, "addr", "add", "10.231.0.1/24", "dev", "mcpw0");
      await ip("-n", ns, "link", "set", "mcpw0", "up");
      await ip("-n", ns, "link", "set", "mcpw1", "up");
    }
    const links = (await ip("-n", ns, "-o", "link", "show")).split("\n")
      .map((line) => line.split(":")[1].trim().replace(/@.*/, "")).sort();
    assert.deepEqual(
      links,
      options.link ? ["lo", "mcpw0", "mcpw1"] : ["lo"],
      "the namespace's links",
    );
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, Deno.execPath(), "run", "-A", script, ...args],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(timer);
    const lines = new TextDecoder().decode(stdout).trim().split("\n");
    const detail = `exit ${code}\n${lines.join("\n")}\n${new TextDecoder().decode(stderr)}`;
    try {
      return JSON.parse(lines.at(-1) ?? "");
    } catch {
      throw new Error(`The browser run did not report (killed after ${timeout} ms?): ${detail}`);
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
