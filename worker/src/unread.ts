/**
 * What the room has sent one socket that the socket has not shown it read
 * (`MAX_UNREAD_BYTES` in the room protocol): a count of bytes sent and the
 * marks pending, kept in the socket's attachment so that it survives
 * hibernation. Pure functions: the room sends, saves and closes.
 *
 * @module
 */
import { QUEUED_MESSAGE_BYTES, UNREAD_MARKS } from "../../src/signaling/room_protocol.ts";
import { utf8Length } from "../../src/_utf8.ts";

/** One socket's count. */
export interface Unread {
  /** Bytes the room has sent the socket, each message with `QUEUED_MESSAGE_BYTES`. */
  sent: number;
  /** Of those, the bytes up to the last mark the socket echoed. */
  read: number;
  /** The marks sent and not yet echoed, oldest first: where each was sent, and its token. */
  marks: [number, string][];
}

/** A socket's count before the room sent it anything. */
export const NOTHING_SENT: Unread = { sent: 0, read: 0, marks: [] };

/**
 * Counts one message the room is about to send.
 *
 * @param unread The socket's count.
 * @param message The message.
 * @param budget The socket's budget of unread bytes.
 * @returns The count with the message in it, and `mark` when a mark frame
 * must follow it (then count that too, with {@linkcode marked}); or
 * `undefined` if the message would leave more than `budget` unread.
 *
 * @example A 1 KiB message to a fresh socket
 * ```ts
 * import { count, NOTHING_SENT } from "./unread.ts";
 * import assert from "node:assert/strict";
 *
 * const after = count(NOTHING_SENT, new Uint8Array(1024), 16_384);
 * assert.deepEqual(after, { unread: { sent: 1024 + 128, read: 0, marks: [] }, mark: false });
 * assert.equal(count(NOTHING_SENT, new Uint8Array(20_000), 16_384), undefined);
 * ```
 */
export function count(
  unread: Unread,
  message: string | ArrayBuffer | Uint8Array,
  budget: number,
): { unread: Unread; mark: boolean } | undefined {
  const bytes = (typeof message === "string" ? utf8Length(message) : message.byteLength) +
    QUEUED_MESSAGE_BYTES;
  const sent = unread.sent + bytes;
  if (sent - unread.read > budget) return undefined;
  const last = unread.marks.at(-1)?.[0] ?? unread.read;
  return { unread: { ...unread, sent }, mark: sent - last >= budget / UNREAD_MARKS };
}

/**
 * Counts a mark frame the room sends, and remembers its token.
 *
 * @param unread The socket's count.
 * @param frame The mark frame as sent.
 * @param mark Its token.
 * @returns The count with the mark pending.
 */
export function marked(unread: Unread, frame: string, mark: string): Unread {
  const sent = unread.sent + utf8Length(frame) + QUEUED_MESSAGE_BYTES;
  return { ...unread, sent, marks: [...unread.marks, [sent, mark]] };
}

/**
 * Takes a socket's echo of a mark: everything sent up to it is read.
 *
 * @param unread The socket's count.
 * @param mark The token the socket echoed.
 * @returns The count, or `undefined` if no pending mark has that token.
 *
 * @example The echo of the first mark
 * ```ts
 * import { marked, NOTHING_SENT, seen } from "./unread.ts";
 * import assert from "node:assert/strict";
 *
 * const after = marked({ ...NOTHING_SENT, sent: 1000 }, "{}", "0123456789abcdef");
 * assert.deepEqual(seen(after, "0123456789abcdef"), { sent: 1130, read: 1130, marks: [] });
 * assert.equal(seen(after, "fedcba9876543210"), undefined);
 * ```
 */
export function seen(unread: Unread, mark: string): Unread | undefined {
  const at = unread.marks.findIndex(([, token]) => token === mark);
  if (at < 0) return undefined;
  return { ...unread, read: unread.marks[at]![0], marks: unread.marks.slice(at + 1) };
}

/**
 * Reads a count back from an attachment.
 *
 * @returns The count, or `undefined` if `value` is not one.
 */
export function readUnread(value: unknown): Unread | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { sent, read, marks } = value as Record<string, unknown>;
  if (
    typeof sent !== "number" || typeof read !== "number" || !Array.isArray(marks) ||
    !marks.every((m) => Array.isArray(m) && typeof m[0] === "number" && typeof m[1] === "string")
  ) return undefined;
  return { sent, read, marks: marks as [number, string][] };
}
