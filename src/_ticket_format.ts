/**
 * The string form of a {@linkcode Ticket}, `mcpwebrtc2.<kind>.<base64url
 * JSON>` (and `mcpwebrtc1.` before it; the format is in `ticket.ts`'s module
 * doc): formatting, parsing, and the checks of a ticket's fields that every
 * ticket function shares.
 *
 * @module
 */

import { TicketError } from "./errors.ts";
import { decodeBase64Url, encodeBase64Url } from "./_base64url.ts";

/** Whose ticket it is: the serving desktop's (`host`) or an agent's (`guest`). */
export type TicketKind = "host" | "guest";

/**
 * A parsed ticket. Build one with {@linkcode createTicket},
 * {@linkcode createGuestTicket} or {@linkcode parseTicket}; turn it into its
 * string form with {@linkcode formatTicket}.
 */
export interface Ticket {
  /** Whose ticket it is. Only a host ticket can derive the host key. */
  readonly kind: TicketKind;
  /**
   * The signalling service URL, normalised: `ws:` or `wss:`; `""` in a
   * signalling-only ticket, which names no signalling service and serves only
   * to derive the keys of `AuthenticatedSignaling`.
   */
  readonly url: string;
  /** The room id: 22 to 128 base64url characters. */
  readonly room: string;
  /**
   * The host key's verifier, 43 base64url characters, in every version 2
   * ticket (`mcpwebrtc2.`): its room id binds this and the guest key's
   * verifier (`pairRoomId`), and its keys are derived with it as salt. Absent
   * in a version 1 ticket (`mcpwebrtc1.`), whose room id is this verifier.
   */
  readonly hostVerifier?: string;
  /**
   * The secret, 32 bytes as 43 base64url characters: the host secret in a host
   * ticket, the guest secret in a guest ticket. Never sent to the signalling
   * service.
   */
  readonly secret: string;
  /**
   * When the ticket stops being valid, to the second, if it expires. Parsing
   * does not check it: see {@linkcode assertTicketUsable}.
   */
  readonly expiresAt?: Date;
}

/** The version tag a new ticket string starts with. */
export const VERSION = "mcpwebrtc2";
/** The version tag of a ticket whose room id is its host key's verifier (no `hostVerifier`). */
export const VERSION_1 = "mcpwebrtc1";
/** Longest ticket string accepted (whitespace removed): far above any real one. */
const MAX_TICKET_LENGTH = 4096;
/** Longest signalling URL accepted. */
const MAX_URL_LENGTH = 2048;
/** Latest expiry accepted: 9999-12-31T23:59:59Z, in seconds. */
export const MAX_EXPIRY_SECONDS = 253_402_300_799;
const ROOM_PATTERN = /^[A-Za-z0-9_-]{22,128}$/;
const VERIFIER_PATTERN = /^[A-Za-z0-9_-]{43}$/;
export const SECRET_BYTES = 32;

const encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Turns a ticket into its string form, `mcpwebrtc2.<kind>.<base64url JSON>`
 * (`mcpwebrtc1.` for a ticket without `hostVerifier`): no whitespace, safe in
 * URLs, JSON and shells.
 *
 * @param ticket The ticket to format.
 * @returns The ticket string.
 * @throws {TypeError} If `ticket` is malformed (it was not made by this module).
 *
 * @example Format and parse back
 * ```ts
 * import { createTicket, formatTicket, parseTicket } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const ticket = await createTicket({ url: "wss://signal.example.com" });
 * const text = formatTicket(ticket);
 * assert.match(text, /^mcpwebrtc2\.host\.[A-Za-z0-9_-]+$/);
 * assert.deepEqual(parseTicket(text), ticket);
 * ```
 */
export function formatTicket(ticket: Ticket): string {
  const problem = ticketProblem(ticket);
  if (problem) throw new TypeError(`Cannot format ticket as ${problem}`);
  const payload: Record<string, string | number> = ticket.url === ""
    ? { r: ticket.room, s: ticket.secret }
    : { u: ticket.url, r: ticket.room, s: ticket.secret };
  if (ticket.expiresAt) payload.e = Math.floor(ticket.expiresAt.getTime() / 1000);
  if (ticket.hostVerifier !== undefined) payload.h = ticket.hostVerifier;
  const version = ticket.hostVerifier === undefined ? VERSION_1 : VERSION;
  return `${version}.${ticket.kind}.${encodeBase64Url(encoder.encode(JSON.stringify(payload)))}`;
}

/**
 * Parses a ticket string. Whitespace anywhere is ignored. Expiry is not
 * checked, so an expired ticket can still be shown: call
 * {@linkcode assertTicketUsable} before connecting with it.
 *
 * @param text The ticket string.
 * @returns The ticket.
 * @throws {TicketError} If the string is not a well-formed ticket; the message
 * says which part is wrong.
 *
 * @example Parse a pasted ticket
 * ```ts
 * import { createTicket, formatTicket, parseTicket } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const text = formatTicket(await createTicket({ url: "wss://signal.example.com" }));
 * const ticket = parseTicket(`  ${text}\n`);
 * assert.equal(ticket.url, "wss://signal.example.com/");
 * assert.throws(() => parseTicket(text.slice(0, -5)), /Cannot parse ticket/);
 * ```
 */
export function parseTicket(text: string): Ticket {
  const fail = (problem: string, cause?: unknown): never => {
    throw new TicketError(`Cannot parse ticket as ${problem}`, cause ? { cause } : undefined);
  };
  if (typeof text !== "string") fail(`it is not a string: received ${typeof text}`);
  const compact = text.replace(/\s+/g, "");
  if (compact === "") fail("it is empty");
  if (compact.length > MAX_TICKET_LENGTH) {
    fail(`it is too long: ${compact.length} characters, the limit is ${MAX_TICKET_LENGTH}`);
  }
  const parts = compact.split(".");
  if (parts[0] !== VERSION && parts[0] !== VERSION_1) {
    if (/^mcpwebrtc\d+$/.test(parts[0]!)) {
      fail(
        `its version "${
          parts[0]
        }" is not supported: this library reads "${VERSION}" and "${VERSION_1}" tickets, so update it`,
      );
    }
    fail(`it does not start with "${VERSION}.": is it a ticket at all, or was its start cut off?`);
  }
  if (parts.length !== 3) {
    fail(`it does not have three dot-separated parts "${parts[0]}.<kind>.<payload>"`);
  }
  const kind = parts[1]!;
  if (kind !== "host" && kind !== "guest") {
    fail(`its kind is not "host" or "guest": received "${clip(kind)}"`);
  }
  const bytes = decodeBase64Url(parts[2]!);
  if (!bytes || bytes.length === 0) {
    fail("its payload is not base64url: was it cut short or changed while being copied?");
  }
  let json: string;
  try {
    json = utf8Decoder.decode(bytes);
  } catch (error) {
    return fail("its payload is not UTF-8 text: was it changed while being copied?", error);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(json);
  } catch (error) {
    return fail("its payload is not JSON: was it changed while being copied?", error);
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    fail("its payload is not a JSON object");
  }
  const fields = payload as Record<string, unknown>;
  for (const [name, meaning] of [["u", "signalling URL"], ["r", "room id"], ["s", "secret"]]) {
    // A signalling-only ticket has no "u".
    if (!Object.hasOwn(fields, name!)) {
      if (name === "u") continue;
      fail(`its payload has no "${name}" field (the ${meaning})`);
    }
    if (typeof fields[name!] !== "string") {
      fail(`its "${name}" field (the ${meaning}) is not a string`);
    }
  }
  const url = fields.u === undefined || fields.u === ""
    ? ""
    : normaliseUrl(fields.u as string, (problem) => fail(problem));
  const ticket: { -readonly [K in keyof Ticket]: Ticket[K] } = {
    kind: kind as TicketKind,
    url,
    room: fields.r as string,
    secret: fields.s as string,
  };
  if (fields.e !== undefined) {
    const e = fields.e;
    if (typeof e !== "number" || !Number.isSafeInteger(e) || e < 1 || e > MAX_EXPIRY_SECONDS) {
      fail(
        `its "e" field (the expiry) is not a whole number of seconds since 1970 up to year 9999`,
      );
    }
    ticket.expiresAt = new Date((e as number) * 1000);
  }
  // A version 1 ticket's room id is its host verifier: a later v1 writer's "h" is not read.
  if (parts[0] === VERSION) {
    if (typeof fields.h !== "string") {
      fail(`its payload has no "h" field (the host verifier) as a string`);
    }
    ticket.hostVerifier = fields.h as string;
  }
  const problem = ticketProblem(ticket);
  if (problem) fail(problem);
  return ticket;
}

/** Returns what is wrong with a ticket object, or `undefined` if nothing. */
export function ticketProblem(ticket: Ticket): string | undefined {
  if (typeof ticket !== "object" || ticket === null) return "it is not a ticket object";
  if (ticket.kind !== "host" && ticket.kind !== "guest") {
    return `its kind is not "host" or "guest"`;
  }
  if (typeof ticket.url !== "string") return "its signalling URL is not a string";
  let urlProblem: string | undefined;
  if (ticket.url !== "") normaliseUrl(ticket.url, (problem) => (urlProblem = problem));
  if (urlProblem) return urlProblem;
  if (typeof ticket.room !== "string" || !ROOM_PATTERN.test(ticket.room)) {
    const length = typeof ticket.room === "string" ? ticket.room.length : 0;
    return `its room id is not 22 to 128 base64url characters: received ${length} characters`;
  }
  if (ticket.hostVerifier !== undefined && !VERIFIER_PATTERN.test(ticket.hostVerifier)) {
    return "its host verifier is not 43 base64url characters: was it cut short?";
  }
  const secret = typeof ticket.secret === "string" ? decodeBase64Url(ticket.secret) : undefined;
  if (!secret || secret.length !== SECRET_BYTES) {
    return `its secret is not ${SECRET_BYTES} bytes of base64url (43 characters): was it cut short?`;
  }
  if (ticket.expiresAt !== undefined) {
    const time = ticket.expiresAt instanceof Date ? ticket.expiresAt.getTime() : NaN;
    if (Number.isNaN(time) || time < 1000 || time > MAX_EXPIRY_SECONDS * 1000) {
      return "its expiry is not a valid date between 1970 and 9999";
    }
  }
  return undefined;
}

/**
 * Checks a signalling URL and returns its normal form (`ws:`/`wss:`), or calls
 * `fail` with the problem (and returns its result if it does not throw).
 */
export function normaliseUrl(text: string, fail: (problem: string) => unknown): string {
  if (typeof text !== "string") return fail("its signalling URL is not a string") as string;
  if (text.length > MAX_URL_LENGTH) {
    return fail(
      `its signalling URL is too long: ${text.length} characters, the limit is ${MAX_URL_LENGTH}`,
    ) as string;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`its signalling URL is not a valid URL: received "${clip(text)}"`) as string;
  }
  if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol !== "wss:" && url.protocol !== "ws:") {
    return fail(
      `its signalling URL's scheme is not ws:, wss:, http: or https:: received "${
        clip(url.protocol)
      }"`,
    ) as string;
  }
  if (url.username || url.password) {
    return fail("its signalling URL carries a user name or password: remove them") as string;
  }
  if (url.href.includes("#")) {
    return fail("its signalling URL has a fragment (#...): remove it") as string;
  }
  return url.href;
}

/** Shortens untrusted text for an error message. */
function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
