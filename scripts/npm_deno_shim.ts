/**
 * The `Deno` namespace of the npm package's command line, for Node: esbuild
 * injects this module's `Deno` wherever the CLI's sources name the global
 * (`Deno.args`, `Deno.readTextFile`, …). It is `@deno/shim-deno`, the shim
 * that dnt puts into npm builds, with the three members it lacks and the CLI
 * uses, each an adapter of a Node API:
 *
 * - `Deno.Command` (`spawn()` only): `node:child_process`'s `spawn`, its
 *   pipes as web streams (`Readable.toWeb`, `Writable.toWeb`);
 * - `Deno.serve`: a `node:http` server answering with `@hono/node-server`'s
 *   request listener (web `Request` in, web `Response` out);
 * - `Deno.unrefTimer`: a Node timer's `unref()`.
 *
 * Library code that reads `globalThis.Deno` still sees no Deno under Node,
 * and so picks `ws` and node-datachannel as it does there.
 *
 * @module
 */
import { Deno as shim } from "@deno/shim-deno";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { constants } from "node:os";
import process from "node:process";
import { Readable, Writable } from "node:stream";
import { getRequestListener } from "@hono/node-server";

type Stdio = "piped" | "inherit" | "null" | undefined;
const NODE_STDIO = { piped: "pipe", inherit: "inherit", null: "ignore" } as const;

/** `Deno.Command` over `child_process.spawn`; only `spawn()`, which is all the CLI calls. */
class Command {
  readonly #command: string;
  readonly #options: Deno.CommandOptions;

  constructor(command: string | URL, options: Deno.CommandOptions = {}) {
    this.#command = command instanceof URL ? command.pathname : command;
    this.#options = options;
  }

  output(): never {
    throw new Error("Cannot run Deno.Command.output() in the npm package: use spawn()");
  }

  spawn(): Deno.ChildProcess {
    const options = this.#options;
    const stdio = [options.stdin, options.stdout, options.stderr].map((mode: Stdio) =>
      NODE_STDIO[mode ?? "inherit"]
    );
    const child = spawn(this.#command, options.args ?? [], {
      cwd: options.cwd instanceof URL ? options.cwd.pathname : options.cwd,
      env: options.clearEnv ? options.env : { ...process.env, ...options.env },
      stdio: stdio as ("pipe" | "inherit" | "ignore")[],
      detached: options.detached ?? false,
    });
    if (child.pid === undefined) {
      // Deno throws at once; Node says so with an "error" event.
      child.on("error", () => {});
      throw new shim.errors.NotFound(`Failed to spawn '${this.#command}': entity not found`);
    }
    const status = new Promise<Deno.CommandStatus>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => {
        const number = signal ? constants.signals[signal] : undefined;
        resolve({
          success: code === 0,
          code: code ?? 128 + (number ?? 0),
          signal: (signal ?? null) as Deno.Signal | null,
        });
      });
    });
    const piped = <T>(stream: T | null, name: string): T => {
      if (!stream) throw new TypeError(`Cannot use the child's ${name}: it is not piped`);
      return stream;
    };
    const stdin = child.stdin && Writable.toWeb(child.stdin);
    const stdout = child.stdout && Readable.toWeb(child.stdout);
    const stderr = child.stderr && Readable.toWeb(child.stderr);
    return {
      pid: child.pid,
      status,
      get stdin() {
        return piped(stdin, "stdin");
      },
      get stdout() {
        return piped(stdout, "stdout");
      },
      get stderr() {
        return piped(stderr, "stderr");
      },
      kill(signal: Deno.Signal = "SIGTERM") {
        child.kill(signal as Parameters<typeof child.kill>[0]);
      },
      ref: () => void child.ref(),
      unref: () => void child.unref(),
    } as unknown as Deno.ChildProcess;
  }
}

/** `Deno.serve(options, handler)` over `node:http` and `@hono/node-server`. */
function serve(
  options: Deno.ServeTcpOptions,
  handler: (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>,
): Deno.HttpServer {
  const listener = getRequestListener((request, env) => {
    const { incoming, outgoing } = env as {
      incoming: import("node:http").IncomingMessage;
      outgoing: import("node:http").ServerResponse;
    };
    const completed = new Promise<void>((resolve) => outgoing.once("close", resolve));
    const remoteAddr = {
      transport: "tcp" as const,
      hostname: incoming.socket.remoteAddress ?? "",
      port: incoming.socket.remotePort ?? 0,
    };
    return handler(request, { remoteAddr, completed } as Deno.ServeHandlerInfo);
  }, { overrideGlobalObjects: false });
  const server = createServer(listener);
  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => (resolveFinished = resolve));
  server.once("close", () => resolveFinished());
  server.listen(options.port ?? 8000, options.hostname ?? "0.0.0.0", () => {
    const address = server.address() as AddressInfo;
    options.onListen?.({ transport: "tcp", hostname: address.address, port: address.port });
  });
  return {
    finished,
    get addr() {
      const address = server.address() as AddressInfo;
      return { transport: "tcp", hostname: address.address, port: address.port };
    },
    shutdown() {
      server.close();
      server.closeIdleConnections();
      return finished;
    },
    ref: () => void server.ref(),
    unref: () => void server.unref(),
  } as unknown as Deno.HttpServer;
}

/** `Deno.unrefTimer` for a Node timer. */
function unrefTimer(timer: number): void {
  (timer as unknown as { unref?: () => void }).unref?.();
}

/** The `Deno` namespace: `@deno/shim-deno` and the adapters above. */
export const Deno: typeof globalThis.Deno = Object.create(shim, {
  Command: { value: Command, enumerable: true },
  serve: { value: serve, enumerable: true },
  unrefTimer: { value: unrefTimer, enumerable: true },
});
