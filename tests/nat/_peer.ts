/**
 * One peer of the NAT lab, run inside a network namespace by `lab.ts`:
 * `deno run -A tests/nat/_peer.ts <server|client> <options as JSON>`.
 *
 * It signals over stdin and stdout (newline-delimited JSON, relayed by the
 * test process) and reports what happened on stderr, one line per event,
 * each `@@report ` followed by a JSON object (see {@linkcode PeerReport}).
 *
 * The server answers with an MCP server whose tool `connection_path` returns
 * the path as the server sees it; the client connects, calls that tool once,
 * and exits. Both report each path `onpathchange` gives.
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  type ConnectionPath,
  type ConnectStep,
  type IceServer,
  WebRTCClientTransport,
  WebRTCServerTransport,
} from "../../mod.ts";
import { StreamSignaling } from "../_stdio_signaling.ts";

/** What a lab peer is told to do. */
export interface PeerOptions {
  iceServers: IceServer[];
  connectTimeout: number;
  /**
   * Milliseconds each side waits for its own `onpathchange` to give a path
   * with no TURN relay at either end: the client, once connected, before it
   * calls the tool; the server, when called, before it answers (so that both
   * sides have reported the direct path before the call ends the scenario).
   */
  awaitDirect?: number;
}

/** One event a lab peer reports. `at` is milliseconds since the peer began to connect. */
export type PeerReport =
  | { kind: "step"; step: ConnectStep; at: number }
  | {
    kind: "connected";
    /** When the data channel opened. */
    at: number;
    path?: ConnectionPath;
  }
  | {
    kind: "called";
    /** When `tools/call` returned, and how long it took. */
    at: number;
    callMs: number;
    /** The path as the server saw it, from the tool's result. */
    serverPath?: ConnectionPath;
  }
  | {
    kind: "path";
    /** When `onpathchange` gave this path. */
    at: number;
    path: ConnectionPath;
  }
  | { kind: "error"; at: number; name: string; stage?: string; message: string }
  | { kind: "closed"; at: number };

/** The prefix of a report line on stderr. */
export const REPORT_PREFIX = "@@report ";

if (import.meta.main) {
  const [role, json] = Deno.args;
  const options = JSON.parse(json ?? "{}") as PeerOptions;
  if (role === "server") await serve(options);
  else if (role === "client") await dial(options);
  else throw new TypeError(`Cannot run lab peer as its role must be server or client: ${role}`);
}

function report(event: PeerReport): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${REPORT_PREFIX}${JSON.stringify(event)}\n`));
}

function describe(error: unknown): { name: string; stage?: string; message: string } {
  const e = error as { name?: string; stage?: string; message?: string };
  return { name: String(e?.name), stage: e?.stage, message: String(e?.message ?? error) };
}

/** Resolves with `promise`, or after `ms` (close() can deadlock in libdatachannel). */
function bounded(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]).finally(() => clearTimeout(timer));
}

/** Reports each path `onpathchange` gives; resolves once one has no TURN relay at either end. */
function watchDirect(
  transport: WebRTCClientTransport | WebRTCServerTransport,
  at: () => number,
): Promise<void> {
  return new Promise((direct) => {
    transport.onpathchange = (path) => {
      report({ kind: "path", at: at(), path });
      if (path.localCandidateType !== "relay" && path.remoteCandidateType !== "relay") direct();
    };
  });
}

async function serve(options: PeerOptions): Promise<void> {
  const signaling = new StreamSignaling(Deno.stdin.readable, Deno.stdout.writable);
  const transport = new WebRTCServerTransport({ signaling, ...options });
  const started = performance.now();
  const at = () => Math.round(performance.now() - started);
  const directPath = watchDirect(transport, at);
  transport.onconnectstep = (step) => {
    report({ kind: "step", step, at: at() });
    if (step === "channel") {
      transport.getConnectionPath().then((path) => report({ kind: "connected", at: at(), path }));
    }
  };
  const server = new McpServer({ name: "nat-lab-desktop", version: "1.0.0" });
  server.registerTool(
    "connection_path",
    { description: "The network path of this connection, as the desktop sees it" },
    async () => {
      if (options.awaitDirect !== undefined) await bounded(directPath, options.awaitDirect);
      const path = await transport.getConnectionPath();
      return { content: [{ type: "text", text: JSON.stringify(path ?? {}) }] };
    },
  );
  let done: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));
  server.server.onerror = (error) => report({ kind: "error", at: at(), ...describe(error) });
  server.server.onclose = () => {
    report({ kind: "closed", at: at() });
    done();
  };
  await server.connect(transport);
  await closed;
  Deno.exit(0);
}

async function dial(options: PeerOptions): Promise<void> {
  const signaling = new StreamSignaling(Deno.stdin.readable, Deno.stdout.writable);
  const transport = new WebRTCClientTransport({ signaling, ...options });
  const client = new Client({ name: "nat-lab-agent", version: "1.0.0" });
  const started = performance.now();
  const at = () => Math.round(performance.now() - started);
  transport.onconnectstep = (step) => report({ kind: "step", step, at: at() });
  const directPath = watchDirect(transport, at);
  try {
    await client.connect(transport);
    report({ kind: "connected", at: at(), path: await transport.getConnectionPath() });
    if (options.awaitDirect !== undefined) await bounded(directPath, options.awaitDirect);
    const before = performance.now();
    const result = await client.callTool({ name: "connection_path" });
    const content = result.content as { type: string; text?: string }[];
    report({
      kind: "called",
      at: at(),
      callMs: Math.round(performance.now() - before),
      serverPath: JSON.parse(content[0]?.text ?? "{}"),
    });
  } catch (error) {
    report({ kind: "error", at: at(), ...describe(error) });
  }
  await bounded(client.close(), 3_000);
  report({ kind: "closed", at: at() });
  Deno.exit(0);
}
