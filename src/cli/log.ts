/**
 * Status lines on stderr: plain text for people, or one JSON object a line
 * for programs. Standard output is never used, so it can carry the ticket or
 * JSON-RPC.
 *
 * Much of what a line says comes from the other side (an agent's goodbye, a
 * peer's error, an ICE candidate's address, what a server prints): every
 * string is shown with its control characters escaped (see
 * {@linkcode escapeControls}), so a line cannot move the cursor, erase or
 * forge another line, set the clipboard (OSC 52) or reorder text, and each
 * event stays on one line.
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

/**
 * The characters a terminal acts on rather than shows: C0 controls (escape,
 * newline, carriage return, bell, backspace…), DEL, C1 controls (U+0080 to
 * U+009F, which include a one-character CSI and OSC), the line and paragraph
 * separators, and the bidirectional formatting characters that reorder text.
 */
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const SHORT_ESCAPES: Record<string, string> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function escapeOne(character: string): string {
  const code = character.charCodeAt(0);
  return SHORT_ESCAPES[character] ??
    (code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`);
}

/**
 * Shows a text's control characters as escapes (`\n`, `\r`, `\t`, `\xHH`,
 * `\uHHHH`), so that printing it cannot act on a terminal: no escape
 * sequence, no line break, no bidirectional reordering. Everything else,
 * including other Unicode, is kept as it is.
 *
 * @param text Any text, e.g. what a peer sent.
 * @returns The text, safe to print on one line.
 *
 * @example An erase-line sequence and a newline, shown
 * ```ts
 * import { escapeControls } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(escapeControls("a\x1b[2K\nb é"), "a\\x1b[2K\\nb é");
 * ```
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, escapeOne);
}

function writeStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr is gone (the parent closed it): nothing left to tell.
  }
}

/**
 * Writes status lines to stderr, one line per event, with every string
 * escaped by {@linkcode escapeControls}.
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
 *
 * // What a peer sent stays on its line, escaped.
 * new StatusLog({ write: (line) => lines.push(line) }).info("agent-left", "Left: a\x1b[2K\nb");
 * assert.equal(lines[2], "mcp-webrtc: Left: a\\x1b[2K\\nb");
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
      // Every string value, however deep, is escaped (the field names are this module's own).
      this.#write(JSON.stringify(
        { time: new Date().toISOString(), level, event, message, ...fields },
        (_key, value) => typeof value === "string" ? escapeControls(value) : value,
      ));
    } else {
      this.#write(`mcp-webrtc: ${level === "info" ? "" : `${level}: `}${escapeControls(message)}`);
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
