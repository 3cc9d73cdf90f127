/**
 * Status lines on stderr: plain text for people, or one JSON object a line
 * for programs. Standard output is never used, so it can carry the ticket or
 * JSON-RPC.
 *
 * @module
 */

/** Options of {@linkcode StatusLog}. */
export interface StatusLogOptions {
  /**
   * Print only errors.
   *
   * @default {false}
   */
  quiet?: boolean;
  /**
   * Print one JSON object a line instead of text.
   *
   * @default {false}
   */
  json?: boolean;
  /**
   * Where lines go.
   *
   * @default {writes to stderr}
   */
  write?: (line: string) => void;
}

/** Extra fields of a status line (JSON only; the text form shows only the message). */
export type StatusFields = Record<string, unknown>;

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr is gone (the parent closed it): nothing left to tell.
  }
}

/**
 * Writes status lines to stderr.
 *
 * @example Text and JSON lines
 * ```ts
 * import { StatusLog } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * new StatusLog({ write: (line) => lines.push(line) }).info("waiting", "Waiting for agents");
 * new StatusLog({ json: true, write: (line) => lines.push(line) })
 *   .info("agent-joined", "Agent 1 joined", { agent: 1 });
 * assert.equal(lines[0], "mcp-webrtc: Waiting for agents");
 * assert.equal(JSON.parse(lines[1]).event, "agent-joined");
 * ```
 */
export class StatusLog {
  readonly #quiet: boolean;
  readonly #json: boolean;
  readonly #write: (line: string) => void;

  /** @param options Quiet, JSON, and where lines go. */
  constructor(options: StatusLogOptions = {}) {
    this.#quiet = options.quiet ?? false;
    this.#json = options.json ?? false;
    this.#write = options.write ?? writeStderr;
  }

  /**
   * Reports progress (suppressed by `quiet`).
   *
   * @param event A stable name for programs, e.g. `agent-joined`.
   * @param message The sentence for people.
   * @param fields Extra data for the JSON form.
   */
  info(event: string, message: string, fields: StatusFields = {}): void {
    if (!this.#quiet) this.#emit("info", event, message, fields);
  }

  /**
   * Reports a problem that does not stop the command.
   *
   * @param event A stable name for programs.
   * @param message The sentence for people.
   * @param fields Extra data for the JSON form.
   */
  warn(event: string, message: string, fields: StatusFields = {}): void {
    this.#emit("warn", event, message, fields);
  }

  /**
   * Reports the problem that stops the command.
   *
   * @param event A stable name for programs.
   * @param message The sentence for people.
   * @param fields Extra data for the JSON form.
   */
  error(event: string, message: string, fields: StatusFields = {}): void {
    this.#emit("error", event, message, fields);
  }

  #emit(level: string, event: string, message: string, fields: StatusFields): void {
    if (this.#json) {
      this.#write(
        JSON.stringify({ time: new Date().toISOString(), level, event, message, ...fields }),
      );
    } else {
      this.#write(`mcp-webrtc: ${level === "info" ? "" : `${level}: `}${message}`);
    }
  }
}

/**
 * How a status line names a connection's path: its local candidate type
 * (`host`, `srflx`, `relay` for TURN), or the relay through the signalling
 * room, which the peers encrypt end to end.
 *
 * @example Name the relay path
 * ```ts
 * import { pathName } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pathName({ localCandidateType: "host" }), "host");
 * assert.match(pathName({ localCandidateType: "relay-ws" }), /signalling room/);
 * assert.equal(pathName(undefined), "an unknown path");
 * ```
 */
export function pathName(path: { localCandidateType?: string } | undefined): string {
  const type = path?.localCandidateType;
  if (type === "relay-ws") return "relay-ws (the signalling room's relay, end-to-end encrypted)";
  return type ?? "an unknown path";
}
