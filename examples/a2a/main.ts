/**
 * The A2A demo: two processes on 127.0.0.1, the cloud agent (an A2A server)
 * and the desktop (an A2A client and an MCP server sharing a folder
 * read-only). The desktop asks the agent what a file says; the agent reaches
 * the desktop's MCP server over WebRTC, the signalling inside the task, reads
 * the file and answers. Every step is printed with its time since the start.
 *
 * Usage: `deno task demo:a2a [--sealed] [--node]`
 * - `--sealed`: the two are paired with a signalling-only ticket and seal
 *   their signalling end to end;
 * - `--node`: both processes run under Node (bundled first) instead of Deno.
 *
 * @module
 */
import { createGuestTicket, createTicket, formatTicket } from "../../mod.ts";
import { printStep, wallClock } from "./common.ts";
import { bundle } from "../../scripts/bundle.ts";

const root = new URL("../../", import.meta.url);
const sealed = Deno.args.includes("--sealed");
const node = Deno.args.includes("--node");
const t0 = wallClock();
const log = printStep("demo", t0);

/** npm packages Node resolves from node_modules instead of the bundle. */
const EXTERNAL = [
  "@modelcontextprotocol/*",
  "@a2a-js/*",
  "node-datachannel",
  "node-datachannel/*",
  "ws",
  "zod",
  "express",
];

/** Bundles an entry point for Node into the repository root (so Node finds node_modules). */
async function bundleForNode(entry: string): Promise<string> {
  const out = await Deno.makeTempFile({ dir: root.pathname, prefix: ".a2a-", suffix: ".mjs" });
  const code = await bundle(new URL(entry, root), {
    what: entry,
    platform: "node",
    external: EXTERNAL,
  });
  await Deno.writeTextFile(out, code);
  return out;
}

/** The command that runs an entry point under the chosen runtime. */
async function command(entry: string): Promise<{ program: string; args: string[] }> {
  if (node) return { program: "node", args: [await bundleForNode(entry)] };
  return { program: Deno.execPath(), args: ["run", "-A", entry] };
}

/** Prints a process's output lines; resolves the first line that `match` accepts. */
function relay(stream: ReadableStream<Uint8Array>, match?: (line: string) => boolean) {
  let found: (line: string) => void = () => {};
  const first = new Promise<string>((resolve) => (found = resolve));
  (async () => {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (match?.(line)) found(line);
        else console.log(line);
      }
    }
  })();
  return first;
}

const folder = await Deno.makeTempDir({ prefix: "a2a-demo-" });
const bundles: string[] = [];
let agent: Deno.ChildProcess | undefined;
try {
  await Deno.writeTextFile(`${folder}/notes.txt`, "Buy milk. Call Ada.");
  const host = sealed ? await createTicket() : undefined;
  const tickets = host
    ? { host: formatTicket(host), guest: formatTicket(await createGuestTicket(host)) }
    : undefined;
  log(`runtime ${node ? "node" : "deno"}, signalling ${sealed ? "sealed" : "not sealed"}`);
  const agentCommand = await command("examples/a2a/agent_main.ts");
  const desktopCommand = await command("examples/a2a/desktop_main.ts");
  bundles.push(...[agentCommand, desktopCommand].filter(() => node).map((c) => c.args[0]!));
  agent = new Deno.Command(agentCommand.program, {
    args: [
      ...agentCommand.args,
      "--t0",
      String(t0),
      ...(tickets ? ["--ticket", tickets.guest] : []),
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const listening = relay(agent.stdout, (line) => line.startsWith("listening "));
  let startTimer: ReturnType<typeof setTimeout> | undefined;
  const url = await Promise.race([
    listening,
    new Promise<never>((_, reject) =>
      startTimer = setTimeout(() => reject(new Error("The agent did not start in 30 s")), 30_000)
    ),
  ]).finally(() => clearTimeout(startTimer));
  const agentUrl = url.slice("listening ".length);
  log("agent listening", { url: agentUrl });
  const desktop = new Deno.Command(desktopCommand.program, {
    args: [
      ...desktopCommand.args,
      "--agent",
      agentUrl,
      "--root",
      folder,
      "--t0",
      String(t0),
      ...(tickets ? ["--ticket", tickets.host] : []),
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const killer = setTimeout(() => desktop.kill("SIGKILL"), 30_000);
  void relay(desktop.stdout);
  const status = await desktop.status;
  clearTimeout(killer);
  log(status.success ? "desktop got its answer" : `desktop failed (exit ${status.code})`);
  Deno.exitCode = status.success ? 0 : 1;
} finally {
  agent?.kill("SIGTERM");
  await agent?.status;
  await Deno.remove(folder, { recursive: true });
  for (const bundle of bundles) await Deno.remove(bundle).catch(() => {});
}
