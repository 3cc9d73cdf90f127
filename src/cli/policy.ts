/**
 * The command line's side of tool limits and the audit trail: reading a list
 * of tool names, and appending audit records to a file as JSON lines without
 * ever holding more than {@linkcode AUDIT_QUEUE_BYTES} of them.
 *
 * @module
 */
import { AUDIT_MAX_NAME_LENGTH, AUDIT_QUEUE_BYTES } from "../constants.ts";
import { UsageError } from "../errors.ts";
import type { AuditRecord } from "../policy_transport.ts";
import { escapeControls } from "./log.ts";

/**
 * Reads a comma-separated list of tool names, as `--tools` takes it; spaces
 * around a name are dropped, and so are repeated names.
 *
 * @param text The list as written on the command line.
 * @param flag The flag it was given to, for the error message.
 * @returns The names, in order.
 * @throws {UsageError} If the list holds no name.
 *
 * @example Two tools
 * ```ts
 * import { parseToolList } from "./policy.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseToolList("read_file, search,read_file", "--tools"), ["read_file", "search"]);
 * assert.throws(() => parseToolList(" , ", "--tools"), /--tools/);
 * ```
 */
export function parseToolList(text: string, flag: string): string[] {
  const names = [...new Set(text.split(",").map((name) => name.trim()).filter(Boolean))];
  if (names.length === 0) {
    throw new UsageError(
      `Cannot read ${flag} as it must be tool names separated by commas, e.g. read_file,search: received "${text}"`,
    );
  }
  return names;
}

/** What an audit line says besides the record: the agent's number in the status lines. */
export interface AuditLineFields {
  /** The agent's number, as the status lines give it (`Agent 1`). */
  agent?: number;
}

/**
 * One audit record as a line of JSON: `start` as an ISO time, the agent's
 * number (`agent`, as in the status lines) and name (`name`, when it has
 * one), then the record's fields. The method and tool names (which the agent
 * chose) are cut at {@linkcode AUDIT_MAX_NAME_LENGTH}, and every string is
 * shown with its control characters escaped.
 *
 * @param record The record.
 * @param fields The agent's number.
 * @returns The line, without its newline.
 *
 * @example A refused call
 * ```ts
 * import { auditLine } from "./policy.ts";
 * import assert from "node:assert/strict";
 *
 * const line = auditLine({
 *   agent: "ci", peer: "p", session: 1, kind: "request", method: "tools/call", tool: "rm",
 *   start: 0, durationMs: 0, ok: false, error: -32602, refused: "tools",
 * }, { agent: 2 });
 * assert.deepEqual(JSON.parse(line), {
 *   start: "1970-01-01T00:00:00.000Z", agent: 2, name: "ci", peer: "p", session: 1,
 *   kind: "request", method: "tools/call", tool: "rm", durationMs: 0, ok: false,
 *   error: -32602, refused: "tools",
 * });
 * ```
 */
export function auditLine(record: AuditRecord, fields: AuditLineFields = {}): string {
  const { agent: name, peer, session, kind, method, tool, start, durationMs, ...outcome } = record;
  return JSON.stringify(
    {
      start: new Date(start).toISOString(),
      agent: fields.agent,
      name,
      peer,
      session,
      kind,
      method: cut(method),
      tool: tool === undefined ? undefined : cut(tool),
      durationMs: Math.round(durationMs),
      ...outcome,
    },
    (_key, value) => typeof value === "string" ? escapeControls(value) : value,
  );
}

function cut(name: string): string {
  return name.length > AUDIT_MAX_NAME_LENGTH ? `${name.slice(0, AUDIT_MAX_NAME_LENGTH)}…` : name;
}

const encoder = new TextEncoder();

/**
 * Appends audit lines to a file, in order, one write at a time. Lines wait in
 * a queue of at most `queueBytes` while the file is written; a line that does
 * not fit is not written, and once the queue has room again a line of its own
 * says how many were lost (`{"start":…,"dropped":N,…}`), and `ondrop` is
 * called, so that a disk slower than the records (or a failing one) costs
 * records, each counted, never memory.
 *
 * @example Write two lines and close
 * ```ts
 * import { AuditFile } from "./policy.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * const file = await AuditFile.open(path);
 * file.write('{"a":1}');
 * file.write('{"a":2}');
 * await file.close();
 * assert.equal(await Deno.readTextFile(path), '{"a":1}\n{"a":2}\n');
 * await Deno.remove(path);
 * ```
 */
export class AuditFile {
  readonly #file: Deno.FsFile;
  readonly #queueBytes: number;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #dropped = 0;
  #writing?: Promise<void>;
  #closed = false;

  /** Called when a line is dropped for want of room, or a write failed, with the reason. */
  ondrop?: (reason: string) => void;

  private constructor(file: Deno.FsFile, queueBytes: number) {
    this.#file = file;
    this.#queueBytes = queueBytes;
  }

  /**
   * Opens `path` for appending, creating it with mode 0600 if needed.
   *
   * @param path The file.
   * @param options `queueBytes`: the most bytes of lines held while writing
   * (default {@linkcode AUDIT_QUEUE_BYTES}).
   * @returns The open file.
   * @throws {UsageError} If the file cannot be opened.
   */
  static async open(path: string, options: { queueBytes?: number } = {}): Promise<AuditFile> {
    try {
      const file = await Deno.open(path, { append: true, create: true, mode: 0o600 });
      return new AuditFile(file, options.queueBytes ?? AUDIT_QUEUE_BYTES);
    } catch (error) {
      throw new UsageError(
        `Cannot open the audit file ${path}: ${
          (error as Error).message
        }; check the folder exists and is writable`,
        { cause: error },
      );
    }
  }

  /** The lines dropped so far and not yet reported in the file. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Queues one line (without its newline); it is dropped, and counted, if the
   * queue is full or the file closed.
   */
  write(line: string): void {
    const bytes = encoder.encode(line + "\n");
    if (this.#closed || this.#queued + bytes.length > this.#queueBytes) {
      this.#drop(
        this.#closed ? "the audit file is closed" : `the audit queue is full (AUDIT_QUEUE_BYTES)`,
      );
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    this.#writing ??= this.#pump();
  }

  /** Writes what is queued, then closes the file. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#writing;
    try {
      this.#file.close();
    } catch {
      // Closed already.
    }
  }

  #drop(reason: string): void {
    if (this.#dropped++ === 0) this.ondrop?.(reason);
  }

  async #pump(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const lines = this.#queue;
        const bytes = this.#queued;
        this.#queue = [];
        this.#queued = 0;
        const chunk = new Uint8Array(bytes);
        let at = 0;
        for (const line of lines) {
          chunk.set(line, at);
          at += line.length;
        }
        try {
          for (let written = 0; written < chunk.length;) {
            written += await this.#file.write(chunk.subarray(written));
          }
        } catch (error) {
          this.#dropped += lines.length - 1;
          this.#drop(`writing the audit file failed: ${(error as Error).message}`);
          continue;
        }
        if (this.#dropped > 0 && this.#queue.length === 0) {
          const dropped = this.#dropped;
          this.#dropped = 0;
          const note = encoder.encode(
            JSON.stringify({
              start: new Date().toISOString(),
              dropped,
              message:
                `${dropped} audit records were not written: the file was written slower than they came (AUDIT_QUEUE_BYTES) or a write failed`,
            }) + "\n",
          );
          this.#queue.push(note);
          this.#queued += note.length;
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
