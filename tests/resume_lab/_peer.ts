/**
 * One side of the resume lab, run by `lab.ts` inside its network namespace:
 * `agent` (an MCP client on a `WebRTCConnection` with `resume` on) or
 * `desktop` (an MCP server on one, answering).
 *
 * Signalling goes through the parent as newline-delimited JSON, stdout to the
 * other side's stdin, each line tagged with its dial (`{ dial, message }`, or
 * `{ dial, closed: true }` once that dial's signalling closed): the agent
 * makes dial 1, 2, … as it dials again, and the desktop answers each new one.
 * Commands come on the agent's stdin too (`{ cmd: … }`); reports go to
 * stderr, one JSON object a line after {@linkcode REPORT_PREFIX}, with the
 * wall-clock time they were made.
 *
 * The desktop's server has `slow` (4 s), `count` (a counter), `echo` (`n`,
 * counting each run of each `n`) and `stats` (what it counted).
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { RTCPeerConnection as PolyfillPeerConnection } from "node-datachannel/polyfill";
import { z } from "zod";
import { type Signaling, type SignalingMessage, WebRTCConnection } from "../../mod.ts";
import type { PeerConnectionConstructor } from "../../src/peer.ts";
import { SignalingBase } from "../../src/signaling/_signaling_base.ts";

/** What starts a report line on stderr. */
export const REPORT_PREFIX = "@resume-lab ";
/** How long the `slow` tool takes. */
export const SLOW_TOOL_MS = 4_000;

/** A command to the agent. */
export type Command =
  | { cmd: "call"; id: number; tool: string; args?: Record<string, unknown> }
  | { cmd: "stream"; id: number; total: number; window: number; every: number; pace: number };

/** A report from either side. */
export type Report =
  & { at: number }
  & (
    | { kind: "ready" }
    | { kind: "result"; id: number; text: string }
    | { kind: "failed"; id: number; message: string }
    | { kind: "progress"; id: number; done: number }
    | { kind: "streamed"; id: number; results: number[]; errors: string[] }
    | { kind: "slow-started" }
    | { kind: "lost"; message: string }
    | { kind: "connected"; dials: number }
    | { kind: "ice"; state: string }
    | { kind: "error"; message: string }
  );

const role = Deno.args[0] as "agent" | "desktop";

function report(fields: Record<string, unknown> & { kind: Report["kind"] }): void {
  console.error(REPORT_PREFIX + JSON.stringify({ ...fields, at: Date.now() }));
}

const out = Deno.stdout.writable.getWriter();
const encoder = new TextEncoder();
let writing = Promise.resolve();
function emit(line: object): Promise<void> {
  writing = writing.then(() => out.write(encoder.encode(JSON.stringify(line) + "\n")));
  return writing;
}

/** One dial's signalling, carried by the parent. */
class DialSignaling extends SignalingBase {
  readonly dial: number;

  constructor(dial: number) {
    super();
    this.dial = dial;
  }

  send(message: SignalingMessage): Promise<void> {
    if (this.closing) {
      return Promise.reject(new Error(`Cannot send on dial ${this.dial} as it is closed`));
    }
    return emit({ dial: this.dial, message });
  }

  deliver(message: SignalingMessage): void {
    this.accept(message);
  }

  protected override closeCarrier(): void {
    dials.delete(this.dial);
    void emit({ dial: this.dial, closed: true });
  }
}

const dials = new Map<number, DialSignaling>();
let lastDial = 0;
/** The desktop's dials not yet answered, and who waits for the next. */
const unanswered: DialSignaling[] = [];
let waiting: ((signaling: Signaling) => void) | undefined;

/** An `RTCPeerConnection` that reports its ICE states. */
const Watched = class extends PolyfillPeerConnection {
  constructor(config?: ConstructorParameters<typeof PolyfillPeerConnection>[0]) {
    super(config);
    this.addEventListener(
      "iceconnectionstatechange",
      () => report({ kind: "ice", state: this.iceConnectionState }),
    );
  }
} as unknown as PeerConnectionConstructor;

const connection = new WebRTCConnection({
  // No bindAddress: ICE gathers the namespace's addresses, as on a laptop.
  iceServers: [],
  resume: true,
  linger: 0,
  RTCPeerConnection: Watched,
  initiator: role === "agent",
  signaling: role === "agent"
    ? () => {
      const signaling = new DialSignaling(++lastDial);
      dials.set(signaling.dial, signaling);
      return signaling;
    }
    : () => {
      const next = unanswered.shift();
      if (next) return next;
      return new Promise<Signaling>((resolve) => (waiting = resolve));
    },
});
connection.ondisconnect = (error) => report({ kind: "lost", message: error?.message ?? "" });
connection.onerror = (error) => report({ kind: "error", message: error.message });
connection.onconnectstep = (step) => {
  if (step === "channel") report({ kind: "connected", dials: connection.dials });
};

async function readStdin(onLine: (line: Record<string, unknown>) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of Deno.stdin.readable) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim()) onLine(JSON.parse(line));
    }
  }
}

function onSignal(line: { dial: number; message?: SignalingMessage; closed?: boolean }): void {
  let signaling = dials.get(line.dial);
  if (!signaling && role === "desktop" && line.dial > lastDial && !line.closed) {
    // A new dial of the agent: answered next.
    lastDial = line.dial;
    signaling = new DialSignaling(line.dial);
    dials.set(line.dial, signaling);
    if (waiting) {
      waiting(signaling);
      waiting = undefined;
    } else unanswered.push(signaling);
  }
  if (!signaling) return;
  if (line.closed) void signaling.close();
  else if (line.message) signaling.deliver(line.message);
}

if (role === "desktop") {
  let counter = 0;
  let servers = 0;
  let initializations = 0;
  const runs = new Map<number, number>();
  connection.ontransport = (transport) => {
    servers++;
    const server = new McpServer({ name: "lab-desktop", version: "1.0.0" });
    server.registerTool("slow", {}, async () => {
      report({ kind: "slow-started" });
      await new Promise((resolve) => setTimeout(resolve, SLOW_TOOL_MS));
      return { content: [{ type: "text", text: "slow done" }] };
    });
    server.registerTool("count", {}, () => ({
      content: [{ type: "text", text: String(++counter) }],
    }));
    server.registerTool("echo", { inputSchema: { n: z.number() } }, ({ n }) => {
      runs.set(n, (runs.get(n) ?? 0) + 1);
      return { content: [{ type: "text", text: String(n) }] };
    });
    server.registerTool("stats", {}, () => ({
      content: [{
        type: "text",
        text: JSON.stringify({
          counter,
          servers,
          initializations,
          echoRuns: [...runs.values()].reduce((sum, count) => sum + count, 0),
          echoDistinct: runs.size,
        }),
      }],
    }));
    server.server.oninitialized = () => initializations++;
    void server.connect(transport);
  };
  void connection.connect().catch(() => {});
  report({ kind: "ready" });
  await readStdin((line) => onSignal(line as Parameters<typeof onSignal>[0]));
} else {
  const client = new Client({ name: "lab-agent", version: "1.0.0" });
  client.onerror = (error) => report({ kind: "error", message: `client: ${error.message}` });
  const connected = client.connect(connection.openTransport());
  const text = (result: unknown) => (result as { content: { text: string }[] }).content[0].text;
  const call = (tool: string, args?: Record<string, unknown>) =>
    client.callTool({ name: tool, arguments: args }, undefined, { timeout: 120_000 });
  const run = async (command: Command) => {
    await connected;
    if (command.cmd === "call") {
      try {
        report({
          kind: "result",
          id: command.id,
          text: text(await call(command.tool, command.args)),
        });
      } catch (error) {
        report({ kind: "failed", id: command.id, message: (error as Error).message });
      }
      return;
    }
    const results: number[] = [];
    const errors: string[] = [];
    for (let start = 0; start < command.total; start += command.window) {
      const windowStart = Date.now();
      const calls = [];
      for (let n = start; n < Math.min(start + command.window, command.total); n++) {
        calls.push(
          call("echo", { n }).then(
            (result) => void results.push(Number(text(result))),
            (error) => void errors.push((error as Error).message),
          ),
        );
      }
      await Promise.all(calls);
      const done = Math.min(start + command.window, command.total);
      if (done % command.every === 0) report({ kind: "progress", id: command.id, done });
      // The client's pace between windows: a scenario parameter, not a wait for an event.
      const rest = command.pace - (Date.now() - windowStart);
      if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    }
    report({ kind: "streamed", id: command.id, results, errors });
  };
  connected.then(
    () => report({ kind: "ready" }),
    (error) => report({ kind: "error", message: `connect: ${error.message}` }),
  );
  await readStdin((line) => {
    if ("cmd" in line) void run(line as Command);
    else onSignal(line as Parameters<typeof onSignal>[0]);
  });
}
await connection.close();
