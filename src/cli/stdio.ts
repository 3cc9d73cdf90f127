/**
 * MCP's stdio framing (one JSON-RPC message a line) over byte streams: this
 * process's own stdin and stdout, or the pipes of a child process.
 *
 * Over 400 lines for a reason: the two transports share the line framing,
 * its size cap and its error handling, and the child's only adds the
 * process's start and stop; apart, the child's would import this one's
 * internals for all of it.
 *
 * @module
 */
import { deadline, settle } from "../_async.ts";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import {
  CHILD_KILL_GRACE,
  CHILD_OUTPUT_DRAIN_TIMEOUT,
  DEFAULT_MAX_RECEIVE_SIZE,
  STREAM_CLOSE_TIMEOUT,
} from "../constants.ts";
import { FrameError, WebRTCTransportError } from "../errors.ts";

const NEWLINE = 0x0a;
const encoder = new TextEncoder();

/** Options of {@linkcode StreamTransport}. */
export interface StreamTransportOptions {
  /**
   * The longest line accepted, in bytes; a longer one is dropped (reported to
   * `onerror`) and reading goes on.
   *
   * @default {67108864}
   */
  maxLineSize?: number;
}

/**
 * An MCP transport over newline-delimited JSON on a readable and a writable
 * byte stream. It closes when the readable ends.
 *
 * @example Two transports linked by a pair of pipes
 * ```ts
 * import { StreamTransport } from "./stdio.ts";
 * import assert from "node:assert/strict";
 *
 * const ab = new TransformStream<Uint8Array, Uint8Array>();
 * const ba = new TransformStream<Uint8Array, Uint8Array>();
 * const a = new StreamTransport(ba.readable, ab.writable);
 * const b = new StreamTransport(ab.readable, ba.writable);
 * const received = new Promise((resolve) => (b.onmessage = resolve));
 * await a.start();
 * await b.start();
 * await a.send({ jsonrpc: "2.0", id: 1, method: "ping" });
 * assert.deepEqual(await received, { jsonrpc: "2.0", id: 1, method: "ping" });
 * await a.close();
 * await b.close();
 * ```
 */
export class StreamTransport implements Transport {
  readonly #readable: ReadableStream<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #maxLineSize: number;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #started = false;
  #closing?: Promise<void>;

  /** Called for every JSON-RPC message read. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Called for a line that is not a JSON-RPC message, or a failed read. */
  onerror?: (error: Error) => void;
  /** Called once, when the readable ended or `close()` was called. */
  onclose?: () => void;

  /**
   * @param readable Where messages come from.
   * @param writable Where messages go.
   * @param options Limits.
   */
  constructor(
    readable: ReadableStream<Uint8Array>,
    writable: WritableStream<Uint8Array>,
    options: StreamTransportOptions = {},
  ) {
    this.#readable = readable;
    this.#writer = writable.getWriter();
    this.#maxLineSize = options.maxLineSize ?? DEFAULT_MAX_RECEIVE_SIZE;
  }

  /**
   * Starts reading. Install the callbacks first.
   *
   * @throws {Error} If called twice.
   */
  start(): Promise<void> {
    if (this.#started) {
      throw new WebRTCTransportError(
        "StreamTransport already started! If using Client or Server class, note that connect() calls start() automatically.",
      );
    }
    this.#started = true;
    this.#reader = this.#readable.getReader();
    void this.#read(this.#reader).finally(() => this.close());
    return Promise.resolve();
  }

  async #read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    let pieces: Uint8Array[] = [];
    let size = 0;
    let skipping = false;
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        let start = 0;
        while (start < value.length) {
          const newline = value.indexOf(NEWLINE, start);
          const end = newline === -1 ? value.length : newline;
          if (!skipping) {
            if (size + end - start > this.#maxLineSize) {
              this.onerror?.(
                new WebRTCTransportError(
                  `Dropped an incoming line as it exceeds ${this.#maxLineSize} bytes`,
                ),
              );
              skipping = true;
              pieces = [];
              size = 0;
            } else if (end > start) {
              pieces.push(value.subarray(start, end));
              size += end - start;
            }
          }
          if (newline === -1) break;
          if (!skipping) {
            this.#line(pieces, size);
            // One message per turn: the SDK runs notification handlers in a
            // microtask, so a progress notification read in one chunk with its
            // response would otherwise reach its handler after the response
            // removed it, and be dropped.
            await undefined;
          }
          pieces = [];
          size = 0;
          skipping = false;
          start = newline + 1;
        }
        // Keep only what the pending line needs: `value` may be reused by the stream.
        pieces = pieces.map((piece) => piece.slice());
      }
      if (size > 0 && !skipping) this.#line(pieces, size);
    } catch (error) {
      if (!this.#closing) this.onerror?.(error as Error);
    }
  }

  #line(pieces: Uint8Array[], size: number): void {
    let bytes: Uint8Array;
    if (pieces.length === 1) bytes = pieces[0];
    else {
      bytes = new Uint8Array(size);
      let offset = 0;
      for (const piece of pieces) {
        bytes.set(piece, offset);
        offset += piece.length;
      }
    }
    const text = new TextDecoder().decode(bytes).trim();
    if (text === "") return;
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (error) {
      this.onerror?.(
        new FrameError(`Dropped an incoming line as it is not JSON: ${text.slice(0, 80)}`, {
          cause: error,
        }),
      );
      return;
    }
    if (
      typeof message !== "object" || message === null || Array.isArray(message) ||
      (message as { jsonrpc?: unknown }).jsonrpc !== "2.0"
    ) {
      this.onerror?.(
        new WebRTCTransportError(
          `Dropped an incoming line as it is not a JSON-RPC 2.0 message: ${text.slice(0, 80)}`,
        ),
      );
      return;
    }
    this.onmessage?.(message as JSONRPCMessage);
  }

  /**
   * Writes one message as a line; resolves once the stream took it.
   *
   * @param message A JSON-RPC message.
   * @throws {Error} If the transport is closed or the stream failed.
   */
  async send(message: JSONRPCMessage): Promise<void> {
    if (this.#closing) {
      throw new WebRTCTransportError("Cannot send message as the stream transport is closed");
    }
    await this.#writer.write(encoder.encode(JSON.stringify(message) + "\n"));
  }

  /** Stops reading and closes the writable; idempotent, `onclose` fires once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#reader?.cancel().catch(() => {});
        // A writable whose reader stopped never finishes a write, nor its
        // close: given up after a while, so that closing always ends.
        await deadline(this.#writer.close(), STREAM_CLOSE_TIMEOUT).catch(() => {
          // Not awaited: an abort, too, waits for the write under way.
          void this.#writer.abort(new Error("closed while a write was stuck")).catch(() => {});
        });
      } finally {
        this.onclose?.();
      }
    })();
    return this.#closing;
  }
}

/** Options of {@linkcode ChildProcessTransport}. */
export interface ChildProcessTransportOptions {
  /**
   * Arguments of the command.
   *
   * @default {[]}
   */
  args?: string[];
  /**
   * Extra environment variables of the child.
   *
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * The child's working directory.
   *
   * @default {the current directory}
   */
  cwd?: string;
  /**
   * Called with each line the child writes to stderr; by default its stderr
   * is this process's.
   *
   * @default {undefined}
   */
  onstderr?: (line: string) => void;
  /**
   * Milliseconds between closing the child's stdin and SIGTERM, and again
   * between SIGTERM and SIGKILL, when closing.
   *
   * @default {400}
   */
  killGrace?: number;
}

/**
 * An MCP transport to a stdio MCP server in a child process. The child runs
 * in its own process group, so closing ends it and everything it started (an
 * `npx` wrapper and its `node`): stdin is closed, then SIGTERM, then SIGKILL.
 *
 * @example Talk to a server command
 * ```ts ignore
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * import { ChildProcessTransport } from "./stdio.ts";
 *
 * const transport = new ChildProcessTransport("npx", {
 *   args: ["-y", "@modelcontextprotocol/server-everything"],
 * });
 * const client = new Client({ name: "example", version: "1.0.0" });
 * await client.connect(transport);
 * console.log(await client.listTools());
 * await client.close();
 * console.log("exit code", (await transport.exited).code);
 * ```
 */
export class ChildProcessTransport implements Transport {
  readonly #command: string;
  readonly #options: ChildProcessTransportOptions;
  #child?: Deno.ChildProcess;
  #stream?: StreamTransport;
  #closing?: Promise<void>;
  #exited?: Promise<Deno.CommandStatus>;
  #exitCode?: number;
  #closed = false;

  /** Called for every JSON-RPC message from the child. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Called for a line the child wrote that is not JSON-RPC. */
  onerror?: (error: Error) => void;
  /** Called once, when the child exited (its stdout ended) or `close()` was called. */
  onclose?: () => void;

  /**
   * @param command The program to run, found on `PATH` unless it has a slash.
   * @param options Arguments, environment and how to stop it.
   */
  constructor(command: string, options: ChildProcessTransportOptions = {}) {
    this.#command = command;
    this.#options = options;
  }

  /** The child's process id, once started. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The child's exit code, once it exited. */
  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /**
   * Resolves with the child's status once it exited and what it wrote on
   * stderr was passed to `onstderr` (waiting at most
   * `CHILD_OUTPUT_DRAIN_TIMEOUT` for the rest of it).
   *
   * @throws {Error} If the transport was never started.
   */
  get exited(): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      throw new WebRTCTransportError("Cannot wait for the child as it was never started");
    }
    return this.#exited;
  }

  /**
   * Starts the child.
   *
   * @throws {Error} If the command cannot be started (not found, not executable).
   */
  start(): Promise<void> {
    if (this.#child) {
      throw new WebRTCTransportError(
        "ChildProcessTransport already started! If using Client or Server class, note that connect() calls start() automatically.",
      );
    }
    const { args = [], env, cwd, onstderr } = this.#options;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#command, {
        args,
        env,
        cwd,
        stdin: "piped",
        stdout: "piped",
        stderr: onstderr ? "piped" : "inherit",
        detached: Deno.build.os !== "windows",
      }).spawn();
    } catch (error) {
      return Promise.reject(
        new WebRTCTransportError(
          `Cannot start the MCP server command "${this.#command}": ${(error as Error).message}`,
          { cause: error },
        ),
      );
    }
    this.#child = child;
    child.status.then((status) => (this.#exitCode = status.code), () => {});
    const forwarded = onstderr ? forwardLines(child.stderr, onstderr) : undefined;
    // Its exit can be seen before the last of its stderr is read: wait for
    // that (bounded: a process it started may hold the pipe open).
    this.#exited = child.status.then(async (status) => {
      if (forwarded) await settle(forwarded, CHILD_OUTPUT_DRAIN_TIMEOUT);
      return status;
    });
    const stream = new StreamTransport(child.stdout, child.stdin);
    this.#stream = stream;
    stream.onmessage = (message) => this.onmessage?.(message);
    stream.onerror = (error) => this.onerror?.(error);
    // stdout ended: the child exited or closed it; either way the session is over.
    stream.onclose = () => void this.close();
    return stream.start();
  }

  /**
   * Writes one message to the child's stdin.
   *
   * @param message A JSON-RPC message.
   * @throws {Error} If the child is not running.
   */
  send(message: JSONRPCMessage): Promise<void> {
    if (!this.#stream || this.#closed) {
      return Promise.reject(
        new WebRTCTransportError("Cannot send message as the MCP server process is not running"),
      );
    }
    return this.#stream.send(message);
  }

  /** Ends the child (stdin closed, SIGTERM, SIGKILL); idempotent, `onclose` fires once. */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      try {
        await this.#stop();
      } finally {
        this.onclose?.();
      }
    })();
    return this.#closing;
  }

  async #stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const grace = this.#options.killGrace ?? CHILD_KILL_GRACE;
    let done = false;
    const exited = child.status.then(() => (done = true), () => (done = true));
    const wait = (ms: number) => settle(exited, ms);
    // Closing stdin is how a stdio server is asked to stop; then signals.
    await settle(Promise.race([this.#stream?.close(), exited]), grace);
    await wait(grace);
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      if (done) break;
      kill(child, signal);
      await wait(signal === "SIGTERM" ? grace : 200);
    }
    // Whatever the group leader did, end the rest of its group too.
    if (Deno.build.os !== "windows") {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // The group is already gone.
      }
    }
  }
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    if (Deno.build.os !== "windows") Deno.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

async function forwardLines(
  readable: ReadableStream<Uint8Array>,
  online: (line: string) => void,
): Promise<void> {
  let buffer = "";
  try {
    for await (const chunk of readable.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        online(buffer.slice(0, newline).replace(/\r$/, ""));
        buffer = buffer.slice(newline + 1);
      }
      if (buffer.length > 65_536) {
        online(buffer);
        buffer = "";
      }
    }
  } catch {
    // The pipe broke: the child is gone.
  }
  if (buffer) online(buffer);
}
