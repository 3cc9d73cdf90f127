/**
 * What the lab tests (browser, NAT lab, Python reference) need from the
 * machine, and what happens without it. On Linux as root a lab test installs
 * its Debian packages itself; elsewhere it is reported as skipped, with the one
 * line that says what to install; with `CI=true` nothing is skipped: a lab that
 * cannot be prepared fails its tests.
 *
 * A skipped lab prints `skipped: <reason>` once; `tests/run.ts` counts the
 * ignored tests and repeats the reasons in its summary.
 */

/** What one lab needs. */
export interface LabNeeds {
  /** What the lab is, e.g. "the NAT lab". */
  name: string;
  /** Commands that must be on PATH, each with the Debian package that brings it. */
  commands?: Record<string, string>;
  /** Further Debian packages, each with a check that says whether it is usable. */
  packages?: Record<string, () => Promise<boolean>>;
  /** Whether to install the packages' recommended packages too (as Chromium needs). */
  recommends?: boolean;
  /** Whether the lab needs root (network namespaces). */
  root?: boolean;
  /** Preparation after the packages are in place (a virtual environment, say); throws if it fails. */
  prepare?: () => Promise<void>;
}

/** The outcome: run, skip (with the reason), or fail (with the reason; in CI). */
export interface Lab {
  skip?: string;
  failure?: string;
}

const isCI = Deno.env.get("CI") === "true";

/** Runs a command; resolves with whether it succeeded (false if it is not installed). */
export async function succeeds(command: string, args: string[] = []): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

function onPath(command: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return true;
    } catch {
      // Not here.
    }
  }
  return false;
}

async function missingPackages(needs: LabNeeds): Promise<string[]> {
  const missing = new Set<string>();
  for (const [command, pkg] of Object.entries(needs.commands ?? {})) {
    if (!onPath(command)) missing.add(pkg);
  }
  for (const [pkg, check] of Object.entries(needs.packages ?? {})) {
    if (!(await check())) missing.add(pkg);
  }
  return [...missing];
}

/** Installs Debian packages with apt-get; throws with apt-get's error output. */
async function aptInstall(packages: string[], recommends: boolean): Promise<void> {
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = ["install", "-y", "-qq", ...(recommends ? [] : ["--no-install-recommends"])];
  for (const args of [["update", "-qq"], [...install, ...packages]]) {
    const { success, stderr } = await new Deno.Command("apt-get", { args, env, stdin: "null" })
      .output();
    if (!success) {
      throw new Error(
        `apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(stderr).trim()}`,
      );
    }
  }
}

/**
 * Makes the lab ready if the machine allows it. Never throws: the outcome
 * says whether to run, skip or fail, and why.
 */
export async function prepareLab(needs: LabNeeds): Promise<Lab> {
  const isRoot = Deno.build.os === "linux" && Deno.uid() === 0;
  const outcome = (text: string): Lab => {
    // One line: what to do, not a tool's whole output.
    const reason = text.split("\n")[0].slice(0, 300);
    if (isCI) return { failure: `Cannot run ${needs.name} in CI: ${reason}` };
    console.log(`skipped: ${needs.name}: ${reason}`);
    return { skip: reason };
  };
  if (needs.root && !isRoot) {
    return outcome("it needs root on Linux (network namespaces); run the tests as root");
  }
  let missing = await missingPackages(needs);
  if (missing.length > 0) {
    const line = `apt-get install -y ${missing.join(" ")}`;
    if (!isRoot || !onPath("apt-get")) return outcome(`install its packages: ${line}`);
    try {
      await aptInstall(missing, needs.recommends ?? false);
    } catch (error) {
      return outcome(`${(error as Error).message}; install by hand: ${line}`);
    }
    missing = await missingPackages(needs);
    if (missing.length > 0) {
      return outcome(`still missing after apt-get: apt-get install -y ${missing.join(" ")}`);
    }
  }
  try {
    await needs.prepare?.();
  } catch (error) {
    return outcome((error as Error).message);
  }
  return {};
}

/** Registers a test of a lab: ignored when the lab is skipped, failing with the reason when it cannot run in CI. */
export function labTest(lab: Lab, name: string, fn: () => Promise<void>): void {
  Deno.test({
    name,
    ignore: lab.skip !== undefined,
    fn: lab.failure === undefined ? fn : () => Promise.reject(new Error(lab.failure)),
  });
}

/**
 * Stops a lab process: SIGTERM first, so that one that started others (the
 * local worker starts workerd) ends them, then SIGKILL after `graceMs`.
 *
 * @param child The process, as spawned.
 * @param graceMs How long it may take to end after SIGTERM.
 */
export async function stopProcess(child: Deno.ChildProcess, graceMs = 3_000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    return; // Already gone.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
  ]);
  clearTimeout(timer);
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone meanwhile.
    }
    await child.status;
  }
}

/**
 * Runs `ip` with `args` (the labs' namespaces and links) and gives what it
 * printed; fails with its error output when it fails.
 */
export async function ip(...args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("ip", { args, stdin: "null" })
    .output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  if (!success) throw new Error(`ip ${args.join(" ")} failed: ${decode(stderr)}`);
  return decode(stdout);
}
