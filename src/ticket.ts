/**
 * Tickets: the one copy-pasteable string that lets an agent reach a desktop.
 *
 * The desktop (the MCP server, the *host*) creates a **host ticket** and keeps
 * it; from it, it makes a **guest ticket** and hands that to the agent (the MCP
 * client, the *guest*) through A2A, a chat or any other channel. A ticket
 * names the signalling service, the room, and holds a 256-bit secret:
 *
 * ```text
 * mcpwebrtc1.guest.eyJ1Ijoid3NzOi8vc2lnbmFsLmV4YW1wbGUuY29tLyIsInIiOiJ…
 * └─ version ─┘ └kind┘ └─ base64url(JSON {"u": url, "r": room, "s": secret, "e"?: expiry}) ─┘
 * ```
 *
 * - `u`: the signalling service URL, `ws:` or `wss:` (`http:`/`https:` are
 *   accepted and normalised to `ws:`/`wss:`; no credentials, no fragment).
 *   Absent in a *signalling-only* ticket, made for peers that carry their
 *   signalling over a channel of their own (an A2A conversation, say) and use
 *   the ticket only for its keys.
 * - `r`: the room id, 22 to 128 base64url characters. A new ticket's room id is
 *   derived from its host key (see below), 256 bits.
 * - `s`: the secret, 32 bytes as 43 base64url characters: the host secret in a
 *   host ticket, the guest secret in a guest ticket.
 * - `e`: optional expiry, in whole seconds since the epoch.
 *
 * Whitespace anywhere in the string (a line wrapped by a mail client) is
 * ignored; unknown JSON fields are ignored, so later v1 writers may add some.
 *
 * ## Keys
 *
 * Every key is derived with HKDF-SHA-256 (`crypto.subtle`), 32 bytes long, with
 * its own `info` label:
 *
 * | Key | From | Salt | `info` | Who can derive it |
 * | --- | --- | --- | --- | --- |
 * | host key | host secret | none | `mcp-webrtc/v1 host key` | host |
 * | room id | `keyVerifier(hostKey)` | | | anyone with the host key |
 * | guest secret | host secret | room id | `mcp-webrtc/v1 guest secret` | host |
 * | guest key | guest secret | room id | `mcp-webrtc/v1 guest key` | host, guest |
 * | signalling key (HMAC-SHA-256) | guest secret | room id | `mcp-webrtc/v1 signaling key` | host, guest |
 *
 * The salt is the UTF-8 bytes of the room id; keys travel as base64url strings.
 * {@linkcode keyVerifier} is `base64url(SHA-256(UTF-8 bytes of the base64url
 * key string))`. The signalling service only ever sees the host key, the guest
 * key and the guest key's verifier: it can check who may enter the room (the
 * host key must hash to the room id; the guest key to the verifier the host
 * registered) but cannot derive the signalling key, so it cannot forge or alter
 * the peers' offers, answers and candidates (see `AuthenticatedSignaling`).
 *
 * HKDF is one-way, so a guest ticket cannot be turned back into the host
 * ticket: its holder can join the room as a guest, never take the host's place.
 * A guest ticket is the agent's credential: whoever holds it is trusted as the
 * agent. Give each agent its own ticket (its own room) to tell agents apart and
 * to revoke one alone; keep the host ticket on the desktop. The threat model is
 * in `docs/SECURITY.md`.
 *
 * @module
 */

import { TicketError } from "./errors.ts";
import { decodeBase64Url, encodeBase64Url } from "./_base64url.ts";
import { keyVerifier, verifyKey } from "./signaling/room_protocol.ts";

export { keyVerifier, verifyKey } from "./signaling/room_protocol.ts";

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

/** Options of {@linkcode createTicket}. */
export interface CreateTicketOptions {
  /**
   * The signalling service URL: `wss:` (or `ws:` on a trusted network);
   * `https:` and `http:` are normalised to `wss:` and `ws:`. Leave it out for a
   * signalling-only ticket: the peers carry signalling over a channel of their
   * own and use the ticket's keys (`deriveTicketKeys`) with
   * `AuthenticatedSignaling`.
   *
   * @default {undefined} none: a signalling-only ticket
   */
  url?: string | URL;
  /**
   * When the ticket stops being valid; rounded down to the second.
   *
   * @default {undefined} never
   */
  expiresAt?: Date;
}

/**
 * The keys derived from a ticket by {@linkcode deriveTicketKeys}.
 */
export interface TicketKeys {
  /**
   * The key the host presents to the signalling service to open the room
   * (base64url, 43 characters). Only present for host tickets.
   */
  readonly hostKey?: string;
  /** The key a guest presents to enter the room (base64url, 43 characters). */
  readonly guestKey: string;
  /**
   * `keyVerifier(guestKey)`: what the host tells the room so that it can check
   * guest keys without being able to present one.
   */
  readonly guestVerifier: string;
  /**
   * The HMAC-SHA-256 key that authenticates signalling end to end between host
   * and guest (not extractable; for `AuthenticatedSignaling`).
   */
  readonly signalingKey: CryptoKey;
}

/** The version tag every ticket string starts with. */
const VERSION = "mcpwebrtc1";
/** Longest ticket string accepted (whitespace removed): far above any real one. */
const MAX_TICKET_LENGTH = 4096;
/** Longest signalling URL accepted. */
const MAX_URL_LENGTH = 2048;
/** Latest expiry accepted: 9999-12-31T23:59:59Z, in seconds. */
const MAX_EXPIRY_SECONDS = 253_402_300_799;
const ROOM_PATTERN = /^[A-Za-z0-9_-]{22,128}$/;
const SECRET_BYTES = 32;

const encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Creates a new host ticket: a fresh random 256-bit host secret, and the room
 * id derived from it. Keep it on the host; hand
 * {@linkcode createGuestTicket}'s result to the agent.
 *
 * @param options The signalling URL (none for a signalling-only ticket) and an
 * optional expiry.
 * @returns The host ticket.
 * @throws {TypeError} If the URL is not a `ws:`, `wss:`, `http:` or `https:`
 * URL, carries credentials or a fragment, or `expiresAt` is not a valid date.
 * @throws {RangeError} If `expiresAt` is before 1970 or after 9999.
 *
 * @example Create a ticket pair
 * ```ts
 * import { createGuestTicket, createTicket } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "https://signal.example.com" });
 * assert.equal(host.kind, "host");
 * assert.equal(host.url, "wss://signal.example.com/");
 * const guest = await createGuestTicket(host);
 * assert.equal(guest.room, host.room);
 * assert.notEqual(guest.secret, host.secret);
 * ```
 *
 * @example A signalling-only ticket: keys for your own channel
 * ```ts
 * import { createGuestTicket, createTicket, deriveTicketKeys } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket();
 * assert.equal(host.url, "");
 * const { signalingKey } = await deriveTicketKeys(await createGuestTicket(host));
 * assert.equal(signalingKey.algorithm.name, "HMAC");
 * ```
 */
export async function createTicket(options: CreateTicketOptions = {}): Promise<Ticket> {
  const url = options.url === undefined ? "" : normaliseUrl(
    options.url instanceof URL ? options.url.href : options.url,
    (problem) => {
      throw new TypeError(`Cannot create ticket as ${problem}`);
    },
  );
  let expiresAt: Date | undefined;
  if (options.expiresAt !== undefined) {
    const time = options.expiresAt instanceof Date ? options.expiresAt.getTime() : NaN;
    if (Number.isNaN(time)) {
      throw new TypeError("Cannot create ticket as 'expiresAt' is not a valid Date");
    }
    const seconds = Math.floor(time / 1000);
    if (seconds < 1 || seconds > MAX_EXPIRY_SECONDS) {
      throw new RangeError(
        `Cannot create ticket as 'expiresAt' is out of range: received ${options.expiresAt.toISOString()}`,
      );
    }
    expiresAt = new Date(seconds * 1000);
  }
  const secretBytes = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  const hostKey = encodeBase64Url(await hkdf(secretBytes, new Uint8Array(), "host key"));
  const room = await keyVerifier(hostKey);
  const secret = encodeBase64Url(secretBytes);
  return expiresAt
    ? { kind: "host", url, room, secret, expiresAt }
    : { kind: "host", url, room, secret };
}

/**
 * Makes the guest ticket of a host ticket: same signalling URL, room and
 * expiry, and the guest secret in place of the host secret. Its holder can
 * join the room and authenticate signalling, but cannot derive the host key.
 * The same host ticket always gives the same guest ticket.
 *
 * @param ticket A host ticket.
 * @returns The guest ticket to hand to the agent.
 * @throws {TypeError} If `ticket` is not a well-formed host ticket.
 *
 * @example Hand a guest ticket to an agent
 * ```ts
 * import { createGuestTicket, createTicket, formatTicket } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "wss://signal.example.com" });
 * const text = formatTicket(await createGuestTicket(host));
 * assert.match(text, /^mcpwebrtc1\.guest\./);
 * ```
 */
export async function createGuestTicket(ticket: Ticket): Promise<Ticket> {
  const problem = ticketProblem(ticket);
  if (problem) throw new TypeError(`Cannot create guest ticket as ${problem}`);
  if (ticket.kind !== "host") {
    throw new TypeError(
      "Cannot create guest ticket as the ticket is already a guest ticket: only a host ticket can make one",
    );
  }
  const guestSecret = await hkdf(
    decodeBase64Url(ticket.secret)!,
    encoder.encode(ticket.room),
    "guest secret",
  );
  const guest = { kind: "guest" as const, url: ticket.url, room: ticket.room };
  const secret = encodeBase64Url(guestSecret);
  return ticket.expiresAt
    ? { ...guest, secret, expiresAt: new Date(ticket.expiresAt.getTime()) }
    : { ...guest, secret };
}

/**
 * Makes an invite's guest ticket: the host ticket's signalling URL and room,
 * and a fresh random secret, so its own guest key and signalling key. Unlike
 * {@linkcode createGuestTicket}, the host cannot make it again from the host
 * ticket: it is kept by whoever keeps the invites. It expires at
 * `options.expiresAt` or at the host ticket's expiry, whichever is first.
 *
 * @param ticket A host ticket.
 * @param options When the invite expires.
 * @returns The guest ticket of the invite.
 * @throws {TypeError} If `ticket` is not a well-formed host ticket, or `expiresAt` is not a valid date.
 *
 * @example Two invites of one room hold different secrets
 * ```ts
 * import { createTicket } from "@mcp/webrtc";
 * import { createInviteTicket } from "./ticket.ts";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "wss://signal.example.com" });
 * const a = await createInviteTicket(host);
 * const b = await createInviteTicket(host);
 * assert.equal(a.room, b.room);
 * assert.notEqual(a.secret, b.secret);
 * ```
 */
export async function createInviteTicket(
  ticket: Ticket,
  options: { expiresAt?: Date } = {},
): Promise<Ticket> {
  const guest = await createGuestTicket(ticket);
  let expiresAt = ticket.expiresAt;
  if (options.expiresAt !== undefined) {
    const time = options.expiresAt instanceof Date ? options.expiresAt.getTime() : NaN;
    if (Number.isNaN(time)) {
      throw new TypeError("Cannot create invite ticket as 'expiresAt' is not a valid Date");
    }
    const own = new Date(Math.floor(time / 1000) * 1000);
    if (!expiresAt || own.getTime() < expiresAt.getTime()) expiresAt = own;
  }
  const secret = encodeBase64Url(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
  const invite = { kind: "guest" as const, url: guest.url, room: guest.room, secret };
  const problem = ticketProblem(expiresAt ? { ...invite, expiresAt } : invite);
  if (problem) throw new TypeError(`Cannot create invite ticket as ${problem}`);
  return expiresAt ? { ...invite, expiresAt } : invite;
}

/**
 * Turns a ticket into its string form, `mcpwebrtc1.<kind>.<base64url JSON>`:
 * no whitespace, safe in URLs, JSON and shells.
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
 * assert.match(text, /^mcpwebrtc1\.host\.[A-Za-z0-9_-]+$/);
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
  return `${VERSION}.${ticket.kind}.${encodeBase64Url(encoder.encode(JSON.stringify(payload)))}`;
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
  if (parts[0] !== VERSION) {
    if (/^mcpwebrtc\d+$/.test(parts[0]!)) {
      fail(
        `its version "${
          parts[0]
        }" is not supported: this library reads "${VERSION}" tickets, so update it`,
      );
    }
    fail(`it does not start with "${VERSION}.": is it a ticket at all, or was its start cut off?`);
  }
  if (parts.length !== 3) {
    fail(`it does not have three dot-separated parts "${VERSION}.<kind>.<payload>"`);
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
  const problem = ticketProblem(ticket);
  if (problem) fail(problem);
  return ticket;
}

/**
 * Tells whether a ticket has expired. A ticket without expiry never does.
 *
 * The expiry is written in the ticket in clear, so its holder could change it:
 * it is a promise of the host, which must enforce it (stop serving the room);
 * guests check it to fail early with a clear message.
 *
 * @param ticket The ticket.
 * @param now The current time.
 * @returns `true` if `now` is at or after `ticket.expiresAt`.
 *
 * @example Check an expiry
 * ```ts
 * import { createTicket, isTicketExpired } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const ticket = await createTicket({
 *   url: "wss://signal.example.com",
 *   expiresAt: new Date("2030-01-01T00:00:00Z"),
 * });
 * assert.equal(isTicketExpired(ticket, new Date("2029-12-31T23:59:59Z")), false);
 * assert.equal(isTicketExpired(ticket, new Date("2030-01-01T00:00:00Z")), true);
 * ```
 */
export function isTicketExpired(ticket: Ticket, now: Date = new Date()): boolean {
  return ticket.expiresAt !== undefined && now.getTime() >= ticket.expiresAt.getTime();
}

/**
 * Checks that a ticket can be used now: it has not expired.
 *
 * @param ticket The ticket.
 * @param now The current time.
 * @throws {TicketError} If the ticket has expired; the message says when.
 *
 * @example Refuse an expired ticket
 * ```ts
 * import { assertTicketUsable, createTicket, TicketError } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const ticket = await createTicket({
 *   url: "wss://signal.example.com",
 *   expiresAt: new Date("2030-01-01T00:00:00Z"),
 * });
 * assertTicketUsable(ticket, new Date("2029-01-01T00:00:00Z"));
 * assert.throws(
 *   () => assertTicketUsable(ticket, new Date("2031-01-01T00:00:00Z")),
 *   TicketError,
 * );
 * ```
 */
export function assertTicketUsable(ticket: Ticket, now: Date = new Date()): void {
  if (isTicketExpired(ticket, now)) {
    throw new TicketError(
      `Cannot use ticket as it expired at ${
        ticket.expiresAt!.toISOString()
      }: ask the host for a new one`,
    );
  }
}

/**
 * Derives the keys of a ticket (see the module doc for the table). Derivation
 * is deterministic: the host and the guest derive the same guest key,
 * verifier and signalling key; only a host ticket yields the host key.
 *
 * @param ticket A host or guest ticket.
 * @returns The keys.
 * @throws {TypeError} If `ticket` is malformed.
 * @throws {TicketError} If a host ticket's room id does not match its secret
 * (the ticket was altered).
 *
 * @example Host and guest agree on the signalling key
 * ```ts
 * import { createGuestTicket, createTicket, deriveTicketKeys } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "wss://signal.example.com" });
 * const hostKeys = await deriveTicketKeys(host);
 * const guestKeys = await deriveTicketKeys(await createGuestTicket(host));
 * assert.equal(guestKeys.guestKey, hostKeys.guestKey);
 * assert.equal(guestKeys.hostKey, undefined);
 * assert.equal(typeof hostKeys.hostKey, "string");
 * ```
 */
export async function deriveTicketKeys(ticket: Ticket): Promise<TicketKeys> {
  const problem = ticketProblem(ticket);
  if (problem) throw new TypeError(`Cannot derive ticket keys as ${problem}`);
  const salt = encoder.encode(ticket.room);
  const secret = decodeBase64Url(ticket.secret)!;
  let guestSecret = secret;
  let hostKey: string | undefined;
  if (ticket.kind === "host") {
    hostKey = encodeBase64Url(await hkdf(secret, new Uint8Array(), "host key"));
    if (!(await verifyKey(hostKey, ticket.room))) {
      throw new TicketError(
        "Cannot use ticket as its room id does not match its host secret: the ticket was altered or damaged",
      );
    }
    guestSecret = await hkdf(secret, salt, "guest secret");
  }
  const guestKey = encodeBase64Url(await hkdf(guestSecret, salt, "guest key"));
  const signalingKey = await crypto.subtle.importKey(
    "raw",
    await hkdf(guestSecret, salt, "signaling key"),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  const guestVerifier = await keyVerifier(guestKey);
  return hostKey === undefined
    ? { guestKey, guestVerifier, signalingKey }
    : { hostKey, guestKey, guestVerifier, signalingKey };
}

async function hkdf(
  secret: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  label: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(`mcp-webrtc/v1 ${label}`) },
    key,
    256,
  );
  return new Uint8Array(bits);
}

/** Returns what is wrong with a ticket object, or `undefined` if nothing. */
function ticketProblem(ticket: Ticket): string | undefined {
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
function normaliseUrl(text: string, fail: (problem: string) => unknown): string {
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
