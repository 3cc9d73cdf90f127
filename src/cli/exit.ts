/**
 * Exit codes, and how errors and signals map to them.
 *
 * @module
 */
import { ConnectError } from "../errors.ts";
import { SignalingRoomError } from "../errors.ts";
import { TicketError } from "../errors.ts";
import { UsageError } from "../errors.ts";

/**
 * The exit codes of the CLI.
 *
 * @example Tell a bad ticket from a lost connection
 * ```ts
 * import { ExitCode } from "./exit.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ExitCode.USAGE, 2);
 * assert.equal(ExitCode.CONNECTION_LOST, 6);
 * ```
 */
export const ExitCode: Readonly<{
  /** Done, or stopped by SIGINT/SIGTERM, or the MCP client closed stdin. */
  OK: 0;
  /** An unexpected failure. */
  FAILURE: 1;
  /** A malformed command line, or a bad, expired or wrong-kind ticket. */
  USAGE: 2;
  /** The signalling service could not be reached, refused us, or was lost for good. */
  SIGNALING: 3;
  /**
   * No connection to the desktop: it is not in the room, refused the agent
   * (limit reached, ticket expired), or no network path was found in time.
   */
  CONNECT: 4;
  /** The MCP server command was not found. */
  SERVER_START: 5;
  /** The connection to the remote MCP server was lost after it was made. */
  CONNECTION_LOST: 6;
}> = Object.freeze(
  {
    OK: 0,
    FAILURE: 1,
    USAGE: 2,
    SIGNALING: 3,
    CONNECT: 4,
    SERVER_START: 5,
    CONNECTION_LOST: 6,
  } as const,
);

/**
 * The exit code for an error that stopped a command.
 *
 * @param error What was thrown.
 * @returns One of {@linkcode ExitCode}.
 *
 * @example A ticket error is a usage error
 * ```ts
 * import { TicketError } from "../errors.ts";
 * import { ExitCode, exitCodeFor } from "./exit.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(exitCodeFor(new TicketError("Cannot parse ticket")), ExitCode.USAGE);
 * ```
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError || error instanceof TicketError) return ExitCode.USAGE;
  let cause: unknown = error;
  for (let depth = 0; depth < 5 && cause instanceof Error; depth++) {
    if (cause instanceof TicketError) return ExitCode.USAGE;
    if (cause instanceof SignalingRoomError) {
      // No desktop in (or behind) the room: the desktop is not serving, not a signalling fault.
      return cause.code === "host_absent" || cause.code === "room_not_found"
        ? ExitCode.CONNECT
        : ExitCode.SIGNALING;
    }
    cause = cause.cause;
  }
  if (error instanceof ConnectError) return ExitCode.CONNECT;
  return ExitCode.FAILURE;
}

/** How {@linkcode waitForStop} ended. */
export type Stop<T> =
  | { kind: "signal"; signal: "SIGINT" | "SIGTERM" }
  | { kind: "value"; value: T };

/**
 * Waits for SIGINT, SIGTERM (not on Windows) or the given promise, whichever
 * comes first, then removes the signal listeners.
 *
 * @param done Resolves when the command ends on its own.
 * @returns Which came first.
 *
 * @example Serve until interrupted
 * ```ts ignore
 * import { waitForStop } from "./exit.ts";
 *
 * const stop = await waitForStop(new Promise(() => {}));
 * console.error(stop.kind === "signal" ? `stopped on ${stop.signal}` : "done");
 * ```
 */
export function waitForStop<T>(done: Promise<T>): Promise<Stop<T>> {
  const signals: ("SIGINT" | "SIGTERM")[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  const listeners: [Deno.Signal, () => void][] = [];
  return new Promise<Stop<T>>((resolve, reject) => {
    for (const signal of signals) {
      const listener = () => resolve({ kind: "signal", signal });
      Deno.addSignalListener(signal, listener);
      listeners.push([signal, listener]);
    }
    done.then((value) => resolve({ kind: "value", value }), reject);
  }).finally(() => {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  });
}
