/**
 * The desktop as a process: asks the agent at `--agent <url>` about a file
 * under `--root <folder>`, serving the folder read-only over WebRTC while the
 * agent answers, prints the answer and exits.
 *
 * Usage: `desktop_main.ts --agent <url> --root <folder> [--question <text>]
 * [--ticket <host ticket>] [--t0 <wall-clock ms>]`
 */
import process from "node:process";
import { args, printStep } from "./common.ts";
import { askAgent } from "./desktop.ts";

const flags = args();
if (!flags.agent || !flags.root) {
  console.error("Usage: desktop_main.ts --agent <url> --root <folder> [--question <text>]");
  process.exit(2);
}
const result = await askAgent(flags.agent, flags.question || "What does notes.txt say?", {
  root: flags.root,
  ticket: flags.ticket || undefined,
  log: printStep("desktop", flags.t0 ? Number(flags.t0) : undefined),
});
console.log(`answer ${JSON.stringify(result.answer)}`);
process.exitCode = result.connected && result.answer !== "" ? 0 : 1;
