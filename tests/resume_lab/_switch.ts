/**
 * A session's path moved from direct to the room's relay and back, by real
 * network events, run by `tests/resume_switch_test.ts` inside a network
 * namespace of its own that holds only `lo`.
 *
 * In this one process: the local signalling worker, a `WebRTCListener`
 * desktop (an `McpServer` with `count` and a `slow` tool held by a gate) and
 * an agent `WebRTCConnection` with `resume` on, no ICE servers and the
 * default `relayAfter`, dialling the listener's ticket, with an MCP `Client`.
 * The steps, each awaited on its event and bounded by {@linkcode STEP}:
 *
 * 1. connect: the path is direct (`host` candidates);
 * 2. a slow call in flight, then all UDP dropped (iptables, `INPUT`): the
 *    loss is noticed, the redial's ICE finds no path and it moves to the
 *    room's relay; the gate opens once the agent resumed; the next `count`;
 * 3. UDP allowed again, another slow call in flight, then the worker's TCP
 *    port dropped until the agent notices the relay path's loss, then let
 *    through: the redial goes direct again; the next `count`.
 *
 * It prints one line, after {@linkcode SWITCH_PREFIX}: a {@linkcode SwitchReport}
 * with what happened and when, for the test to judge. Changing iptables is
 * why it refuses to run where any interface but `lo` exists.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  type ConnectionPath,
  TicketSignaling,
  WebRTCConnection,
  WebRTCListener,
} from "../../mod.ts";
import { deadline } from "../../src/_async.ts";
import { LOCAL, text, withWorker } from "../_helpers.ts";

/** What starts the report line on stdout. */
export const SWITCH_PREFIX = "@switch-lab ";
/** The bound on each awaited event of the scenario. */
export const STEP = 15_000;

/** One resume, as each side reported it. */
export interface Resumed {
  /** The agent's `onresume`. */
  agent: { kind?: string; remote?: string; ms: number };
  /** The listener's `onagentresume`. */
  desktop: { kind?: string; remote?: string; ms: number };
  /** Milliseconds from the network event to the agent's resume. */
  afterEvent: number;
}

/** What the scenario saw. */
export interface SwitchReport {
  /** The path after connecting. */
  first?: { kind?: string; remote?: string };
  /** The resume after UDP was dropped, and after the TCP port was let through again. */
  toRelay?: Resumed;
  toDirect?: Resumed;
  /** Results of the calls, in order: count, slow, count, slow, count. */
  results: string[];
  /** Milliseconds from dropping the worker's TCP port to the agent noticing the loss. */
  tcpLossNoticed?: number;
  /** What the desktop's servers counted. */
  counts: { servers: number; initializations: number; slowCalls: number; closed: number };
  /** Errors the MCP client saw, resumes that failed, the agent's redial attempts (both resumes). */
  clientErrors: string[];
  resumeFailures: string[];
  attempts: number;
  /** The listener's errors (a lost connection's, say), for a failure's message. */
  desktopErrors: string[];
  /** The step that failed, if one did. */
  failure?: string;
}

const kind = (path?: ConnectionPath) => ({
  kind: path?.localCandidateType,
  remote: path?.remoteCandidateType,
});

async function iptables(...args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("iptables", { args, stdin: "null" })
    .output();
  if (!success) {
    throw new Error(`iptables ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
}

/** Runs the scenario and prints its report. */
async function main(): Promise<void> {
  const others = Deno.networkInterfaces().filter((i) => i.name !== "lo");
  if (others.length > 0) {
    throw new Error(
      `Cannot run the switch lab here as interfaces other than lo exist (${
        others.map((i) => i.name).join(", ")
      }): run it through tests/resume_switch_test.ts, which makes a namespace for it`,
    );
  }

  const report: SwitchReport = {
    results: [],
    counts: { servers: 0, initializations: 0, slowCalls: 0, closed: 0 },
    clientErrors: [],
    resumeFailures: [],
    attempts: 0,
    desktopErrors: [],
  };

  await withWorker(async (worker) => {
    const port = new URL(worker.url).port;
    let counter = 0;
    let gate = Promise.withResolvers<void>();
    let slowStarted = Promise.withResolvers<void>();
    const listener = await WebRTCListener.listen({
      url: worker.url,
      ...LOCAL,
      createServer: () => {
        report.counts.servers++;
        const server = new McpServer({ name: "switch-desktop", version: "1.0.0" });
        server.registerTool("count", {}, () => ({
          content: [{ type: "text", text: String(++counter) }],
        }));
        server.registerTool("slow", {}, async () => {
          report.counts.slowCalls++;
          slowStarted.resolve();
          await gate.promise;
          return { content: [{ type: "text", text: "slow done" }] };
        });
        server.server.oninitialized = () => report.counts.initializations++;
        server.server.onclose = () => report.counts.closed++;
        return server;
      },
    });
    listener.onerror = (error) => report.desktopErrors.push(error.message);
    let desktopResumed = Promise.withResolvers<Resumed["desktop"]>();
    listener.onagentresume = (_agent, _was, { path, ms }) =>
      desktopResumed.resolve({ ...kind(path), ms });
    const ticket = listener.ticket!;
    const connection = new WebRTCConnection({
      ...LOCAL,
      linger: 0,
      resume: true,
      signaling: () => new TicketSignaling(ticket, { hostTimeout: 5_000 }),
    });
    let agentResumed = Promise.withResolvers<Resumed["agent"]>();
    connection.onresume = ({ path, ms }) => agentResumed.resolve({ ...kind(path), ms });
    connection.onresumefail = (error) => report.resumeFailures.push(error.message);
    connection.onresumeattempt = () => report.attempts++;
    let pathLost = Promise.withResolvers<void>();
    connection.onpathlost = () => pathLost.resolve();
    const client = new Client({ name: "switch-agent", version: "1.0.0" });
    client.onerror = (error) => report.clientErrors.push(error.message);
    const call = async (name: string) =>
      report.results.push(text(await deadline(client.callTool({ name }), STEP)));

    /** Starts a slow call, makes the network event, and awaits both sides' resume. */
    const across = async (event: () => Promise<number>): Promise<Resumed> => {
      gate = Promise.withResolvers();
      slowStarted = Promise.withResolvers();
      agentResumed = Promise.withResolvers();
      desktopResumed = Promise.withResolvers();
      pathLost = Promise.withResolvers();
      const slow = client.callTool({ name: "slow" });
      // Awaited below; a step that fails first closes the client, which rejects it.
      slow.catch(() => {});
      await deadline(slowStarted.promise, STEP);
      const at = await event();
      const agent = await deadline(agentResumed.promise, STEP);
      const afterEvent = Date.now() - at;
      const desktop = await deadline(desktopResumed.promise, STEP);
      gate.resolve();
      report.results.push(text(await deadline(slow, STEP)));
      await call("count");
      return { agent, desktop, afterEvent };
    };

    let step = "connect";
    try {
      await deadline(client.connect(connection.openTransport()), STEP);
      report.first = kind(await connection.getConnectionPath());
      await call("count");
      step = "UDP dropped";
      report.toRelay = await across(async () => {
        await iptables("-I", "INPUT", "1", "-p", "udp", "-j", "DROP");
        return Date.now();
      });
      step = "the worker's TCP port dropped";
      await iptables("-D", "INPUT", "-p", "udp", "-j", "DROP");
      report.toDirect = await across(async () => {
        // Both directions of every connection to the worker: the room's and the relay's.
        const rules = ["--dport", "--sport"].map((end) => ["-p", "tcp", end, port, "-j", "DROP"]);
        for (const rule of rules) await iptables("-I", "INPUT", "1", ...rule);
        const dropped = Date.now();
        await deadline(pathLost.promise, STEP);
        report.tcpLossNoticed = Date.now() - dropped;
        for (const rule of rules) await iptables("-D", "INPUT", ...rule);
        return Date.now();
      });
    } catch (error) {
      report.failure = `${step}: ${(error as Error).message}`;
    } finally {
      gate.resolve();
      await client.close().catch(() => {});
      await connection.close().catch(() => {});
      await listener.close().catch(() => {});
    }
  });
  console.log(SWITCH_PREFIX + JSON.stringify(report));
}

if (import.meta.main) await main();
