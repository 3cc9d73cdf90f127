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

/** The candidate types, from the one that says most about the path to the one that says least. */
const CANDIDATE_TYPES = ["relay-ws", "relay", "srflx", "prflx", "host"];

/** One end's candidate type as reported, if it is one; anything else is unknown. */
function candidateType(type: string | undefined): string | undefined {
  return type !== undefined && CANDIDATE_TYPES.includes(type) ? type : undefined;
}

/**
 * The type of a connection's path, from the candidate types of both ends:
 * `relay-ws` (the signalling room's relay), `relay` when either end is a TURN
 * relay (the traffic passes the TURN server, whatever the other end is), else
 * `srflx` or `prflx` when an end's address is a NAT's (learnt from STUN, or
 * from that end's connectivity check), else `host` (the peers' own
 * addresses). `undefined` when neither end is known.
 *
 * @param path The path, as `getConnectionPath()` gives it.
 * @returns The type, or `undefined`.
 *
 * @example Symmetric NATs through TURN: only one end is the relay
 * ```ts
 * import { pathType } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pathType({ localCandidateType: "prflx", remoteCandidateType: "relay" }), "relay");
 * assert.equal(pathType({ localCandidateType: "host", remoteCandidateType: "srflx" }), "srflx");
 * ```
 */
export function pathType(
  path: { localCandidateType?: string; remoteCandidateType?: string } | undefined,
): string | undefined {
  const ends = [candidateType(path?.localCandidateType), candidateType(path?.remoteCandidateType)];
  return CANDIDATE_TYPES.find((type) => ends.includes(type));
}

/**
 * How a status line names a connection's path: its type (see
 * {@linkcode pathType}), then each end's candidate type where they differ,
 * and the other end's address. Anything that does not look like a candidate
 * type or an address is shown escaped.
 *
 * @param path The path, as `getConnectionPath()` gives it.
 * @returns The name, e.g. `relay (this end prflx, the other end relay at 203.0.113.10:49358)`.
 *
 * @example Name a path through TURN, a direct one and the room's relay
 * ```ts
 * import { pathName } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   pathName({ localCandidateType: "prflx", remoteCandidateType: "relay", remoteAddress: "203.0.113.10:3478" }),
 *   "relay (this end prflx, the other end relay at 203.0.113.10:3478)",
 * );
 * assert.equal(
 *   pathName({ localCandidateType: "host", remoteCandidateType: "host", remoteAddress: "127.0.0.1:5000" }),
 *   "host (127.0.0.1:5000)",
 * );
 * assert.match(pathName({ localCandidateType: "relay-ws", remoteCandidateType: "relay-ws" }), /signalling room/);
 * assert.equal(pathName(undefined), "an unknown path");
 * ```
 */
export function pathName(
  path:
    | { localCandidateType?: string; remoteCandidateType?: string; remoteAddress?: string }
    | undefined,
): string {
  const type = pathType(path);
  if (type === undefined) return "an unknown path";
  if (type === "relay-ws") return "relay-ws (the signalling room's relay, end-to-end encrypted)";
  const local = candidateType(path?.localCandidateType);
  const remote = candidateType(path?.remoteCandidateType);
  const raw = path?.remoteAddress;
  const address = raw === undefined
    ? undefined
    : /^[\w.:%\[\]-]{1,100}$/.test(raw)
    ? raw
    : JSON.stringify(raw.slice(0, 100));
  if (local === type && remote === type) return address ? `${type} (${address})` : type;
  return `${type} (this end ${local ?? "?"}, the other end ${remote ?? "?"}${
    address ? ` at ${address}` : ""
  })`;
}
