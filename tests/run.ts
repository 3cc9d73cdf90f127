/**
 * Runs the whole test suite: `deno task test`.
 *
 * node-datachannel keeps native state per process that does not survive the
 * isolate that loaded it: a second test module that opens a peer connection
 * in the same `deno test` process crashes Deno ("attempt to access Handle
 * hosted by disposed Isolate"). So every module that may open a peer
 * connection (the two-peer tests in `tests/`, and the doc examples of each
 * source file) runs in a process of its own; the unit tests, which never do,
 * run together.
 *
 * The lab tests (browser, NAT lab, Python reference) install what they need
 * when run as root on Linux; elsewhere they are skipped, each lab printing one
 * `… skipped: …` line that says what to install (see `tests/_lab.ts`). The
 * summary at the end repeats those lines and counts: `N passed, M failed,
 * K skipped`. With `CI=true` a skipped test fails the run.
 *
 * Usage: `deno run -A tests/run.ts [--filter <substring of a file path>]`
 *
 * @module
 */

const root = new URL("..", import.meta.url);
const PER_RUN_TIMEOUT_MS = 300_000;

function walk(dir: string, accept: (path: string) => boolean): string[] {
  const found: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(new URL(dir, root))];
  } catch {
    return found;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory && entry.name !== "node_modules") found.push(...walk(path, accept));
    else if (entry.isFile && accept(path)) found.push(path);
  }
  return found;
}

const isTest = (path: string) => path.endsWith("_test.ts");
const unitTests = [...walk("src", isTest), ...walk("worker", isTest)];
const peerTests = walk("tests", isTest);
const documented = [
  "mod.ts",
  ...walk("src", (path) => path.endsWith(".ts") && !isTest(path)),
];

const filterIndex = Deno.args.indexOf("--filter");
const filter = filterIndex >= 0 ? Deno.args[filterIndex + 1] : undefined;
const selected = (paths: string[]) => filter ? paths.filter((p) => p.includes(filter)) : paths;

const runs: { label: string; args: string[] }[] = [];
if (selected(unitTests).length > 0) {
  runs.push({ label: "unit tests", args: ["test", "-A", ...selected(unitTests)] });
}
for (const file of selected(peerTests)) runs.push({ label: file, args: ["test", "-A", file] });
for (const file of selected(documented)) {
  runs.push({ label: `examples in ${file}`, args: ["test", "-A", "--doc", file] });
}

// deno-lint-ignore no-control-regex
const ansi = /\x1b\[[0-9;]*m/g;
let passed = 0;
let failed = 0;
let skipped = 0;
const skipReasons: string[] = [];
const failures: string[] = [];
for (const run of runs) {
  console.log(`\n=== ${run.label}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: run.args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), PER_RUN_TIMEOUT_MS);
  const output = await child.output();
  clearTimeout(timer);
  const text = (new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr))
    .replace(ansi, "");
  const summary = text.match(
    /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \| (\d+) ignored)?/,
  );
  const runPassed = summary ? Number(summary[1]) : 0;
  const runFailed = summary ? Number(summary[3]) : 0;
  const runSkipped = summary?.[4] ? Number(summary[4]) : 0;
  passed += runPassed;
  failed += runFailed;
  skipped += runSkipped;
  // "skipped: <why>" (tests/_lab.ts) or "<what> skipped: <why>".
  for (const line of text.split("\n").filter((line) => /^(?:[\w ]+ )?skipped: /.test(line))) {
    skipReasons.push(`${run.label}: ${line.replace(/^skipped: /, "")}`);
  }
  const emptyDocRun = run.args.includes("--doc") && !summary && output.code === 0;
  if (output.code !== 0 || (!summary && !emptyDocRun)) {
    failures.push(run.label);
    if (runFailed === 0) failed += 1;
    console.log(text);
  } else {
    console.log(summary ? summary[0] : "no examples");
  }
}

if (skipped > 0 && Deno.env.get("CI") === "true") {
  failures.push(`${skipped} skipped tests (with CI=true nothing may be skipped)`);
}
console.log(`\n${failures.length === 0 ? "All runs passed" : `Failed: ${failures.join(", ")}`}`);
for (const reason of skipReasons) console.log(`Skipped ${reason}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
Deno.exit(failures.length === 0 ? 0 : 1);
