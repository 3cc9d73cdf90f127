/**
 * The cloud agent as a process: serves on 127.0.0.1 and prints `listening <url>`.
 *
 * Usage: `agent_main.ts [--port N] [--ticket <guest ticket>] [--t0 <wall-clock ms>]`
 */
import { startAgent } from "./agent.ts";
import { args, printStep } from "./common.ts";

const flags = args();
const agent = await startAgent({
  port: Number(flags.port ?? 0),
  ticket: flags.ticket || undefined,
  log: printStep("agent", flags.t0 ? Number(flags.t0) : undefined),
});
console.log(`listening ${agent.url}`);
