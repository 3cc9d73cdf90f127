/**
 * Helpers for the CLI tests: run `src/cli/main.ts` as real processes, read
 * their output with bounds, and always stop them.
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { ChildProcessTransport } from "../src/cli/stdio.ts";

/** The CLI entry point. */
export const CLI = new URL("../src/cli/main.ts", import.meta.url).pathname;
/** The test server of `_cli_server.ts`, as a command line. */
export const TEST_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("./_cli_server.ts", import.meta.url).pathname,
];
/** server-everything, pinned, as a desktop would run it. */
export const EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything@2026.8.31";
/** The inspector's command line client, pinned. */
export const INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector-cli@1.0.3";
/** Peers on this machine only: no STUN, loopback only. */
export const LOCAL_FLAGS = ["--no-ice-servers", "--bind-address", "127.0.0.1"];

const ROOT = new URL("..", import.meta.url).pathname;
const running = new Set<CliProcess>();

/** Options of {@linkcode CliProcess}. */
export interface CliProcessOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: "piped" | "null";
}

/** A process of the CLI (or any command) with its output collected. */
export class CliProcess {
  readonly child: Deno.ChildProcess;
  readonly stdoutLines: string[] = [];
  stderr = "";
  readonly status: Promise<Deno.CommandStatus>;
  readonly #reading: Promise<void>[];
  readonly started = Date.now();

  constructor(command: string, args: string[], options: CliProcessOptions = {}) {
    this.child = new Deno.Command(command, {
      args,
      cwd: options.cwd ?? ROOT,
      env: options.env,
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    running.add(this);
    this.#reading = [
      readLines(this.child.stdout, (line) => this.stdoutLines.push(line)),
      readLines(this.child.stderr, (line) => (this.stderr += line + "\n")),
    ];
    this.status = this.child.status.then(async (status) => {
      if (options.stdin === "piped") await this.child.stdin.close().catch(() => {});
      await Promise.all(this.#reading);
      running.delete(this);
      return status;
    });
  }

  /** Runs the CLI with these arguments. */
  static cli(args: string[], options: CliProcessOptions = {}): CliProcess {
    return new CliProcess(Deno.execPath(), ["run", "-A", CLI, ...args], options);
  }

  /** Waits for the n-th line on stdout. */
  async line(n = 0, ms = 30_000): Promise<string> {
    await this.until(() => this.stdoutLines.length > n, ms, `stdout line ${n + 1}`);
    return this.stdoutLines[n];
  }

  /** Waits until stderr matches. */
  async stderrMatch(pattern: RegExp, ms = 15_000): Promise<void> {
    await this.until(() => pattern.test(this.stderr), ms, `stderr matching ${pattern}`);
  }

  /** Waits for the exit status, at most `ms`; kills the process if it takes longer. */
  async exit(ms = 15_000): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
    const status = await Promise.race([this.status, late]);
    clearTimeout(timer);
    if (status === "late") {
      await this.kill();
      throw new Error(
        `The process did not exit within ${ms} ms; stderr:\n${this.stderr}`,
      );
    }
    return status;
  }

  /** Sends a signal and measures how long the process takes to exit (killed after 5 s). */
  async signal(signal: Deno.Signal): Promise<{ status: Deno.CommandStatus; ms: number }> {
    const start = Date.now();
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
    const status = await this.exit(5_000);
    return { status, ms: Date.now() - start };
  }

  /** Stops the process: SIGTERM, then SIGKILL after 3 s. */
  async kill(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      return void (await this.status);
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 3_000);
    await this.status;
    clearTimeout(timer);
  }

  async until(condition: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      if (Date.now() > deadline) {
        throw new Error(`${what} not seen within ${ms} ms; stderr:\n${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Stops every process still running. */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((process) => process.kill()));
}

/**
 * Runs a test with a local signalling worker (Miniflare) at the URL it is
 * given; stops every process the test started, then the worker.
 */
export function withWorker(fn: (signal: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const { startLocalSignaling } = await import("../worker/local.ts");
    const worker = await startLocalSignaling();
    try {
      await fn(worker.url);
    } finally {
      await killAll();
      await worker.close();
    }
  };
}

/** A well-formed `initialize` request, as an SDK client sends it; spread it to change its `id`. */
export const INITIALIZE = Object.freeze({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "test", version: "1" },
  },
});

async function readLines(
  readable: ReadableStream<Uint8Array>,
  online: (line: string) => void,
): Promise<void> {
  let buffer = "";
  for await (const chunk of readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      online(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) online(buffer);
}

/** Starts `serve` and waits for its ticket (the first line on stdout). */
export async function startServe(
  signal: string,
  args: string[],
  options: CliProcessOptions = {},
): Promise<{ serve: CliProcess; ticket: string }> {
  const serve = CliProcess.cli(["serve", "--signal", signal, ...LOCAL_FLAGS, ...args], options);
  const ticket = await serve.line(0);
  return { serve, ticket };
}

/** A `connect` process in stdio mode driven by an SDK client, as a desktop app would. */
export interface Agent {
  client: Client;
  transport: ChildProcessTransport;
  stderr: string[];
}

/** Starts `connect <ticket>` in stdio mode and connects an SDK client through it. */
export async function startAgent(
  ticket: string,
  client: Client = new Client({ name: "cli-test-agent", version: "1.0.0" }),
  args: string[] = [],
): Promise<Agent> {
  const stderr: string[] = [];
  const transport = new ChildProcessTransport(Deno.execPath(), {
    args: ["run", "-A", CLI, "connect", ...LOCAL_FLAGS, ...args, ticket],
    cwd: ROOT,
    onstderr: (line) => stderr.push(line),
  });
  try {
    await client.connect(transport, { timeout: 30_000 });
  } catch (error) {
    await transport.close();
    (error as Error).message += `\nconnect stderr:\n${stderr.join("\n")}`;
    throw error;
  }
  return { client, transport, stderr };
}

/** Whether a process id is alive. */
export function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** Waits until `condition()` holds, polling every 20 ms, or rejects after `ms`. */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
