/**
 * Tickets: the one copy-pasteable string that lets an agent reach a desktop.
 *
 * The desktop (the MCP server, the *host*) creates a **host ticket** and keeps
 * it; from it, it makes a **guest ticket** and hands that to the agent (the MCP
 * client, the *guest*) through A2A, a chat or any other channel. A ticket
 * names the signalling service, the room, and holds a 256-bit secret:
 *
 * ```text
 * mcpwebrtc2.guest.eyJ1Ijoid3NzOi8vc2lnbmFsLmV4YW1wbGUuY29tLyIsInIiOiJ…
 * └─ version ─┘ └kind┘ └─ base64url(JSON {"u": url, "r": room, "h": host verifier, "s": secret, "e"?: expiry}) ─┘
 * ```
 *
 * - `u`: the signalling service URL, `ws:` or `wss:` (`http:`/`https:` are
 *   accepted and normalised to `ws:`/`wss:`; no credentials, no fragment).
 *   Absent in a *signalling-only* ticket, made for peers that carry their
 *   signalling over a channel of their own (an A2A conversation, say) and use
 *   the ticket only for its keys.
 * - `r`: the room id, 22 to 128 base64url characters. A new ticket's room id
 *   binds its host key's and its guest key's verifiers (see below), 256 bits.
 * - `h`: the host key's verifier, 43 base64url characters.
 * - `s`: the secret, 32 bytes as 43 base64url characters: the host secret in a
 *   host ticket, the guest secret in a guest ticket.
 * - `e`: optional expiry, in whole seconds since the epoch.
 *
 * Whitespace anywhere in the string (a line wrapped by a mail client) is
 * ignored; unknown JSON fields are ignored, so later v2 writers may add some.
 *
 * ## Keys
 *
 * Every key is derived with HKDF-SHA-256 (`crypto.subtle`), 32 bytes long, with
 * its own `info` label:
 *
 * | Key | From | Salt | `info` | Who can derive it |
 * | --- | --- | --- | --- | --- |
 * | host key | host secret | none | `mcp-webrtc/v1 host key` | host |
 * | host verifier (`h`) | `keyVerifier(hostKey)` | | | anyone with the host key |
 * | guest secret | host secret | host verifier | `mcp-webrtc/v1 guest secret` | host |
 * | guest key | guest secret | host verifier | `mcp-webrtc/v1 guest key` | host, guest |
 * | signalling key (HMAC-SHA-256) | guest secret | host verifier | `mcp-webrtc/v1 signaling key` | host, guest |
 * | room id | `pairRoomId(host verifier, keyVerifier(guestKey))` | | | host |
 *
 * The salt is the UTF-8 bytes of the host verifier; keys travel as base64url
 * strings. {@linkcode keyVerifier} is `base64url(SHA-256(UTF-8 bytes of the
 * base64url key string))`; `pairRoomId(h, g)` is `base64url(SHA-256(UTF-8
 * bytes of "mcp-webrtc/v2 room " + h + " " + g))`. The signalling service only
 * ever sees the host key, the guest key and the two verifiers: it can check
 * who may enter the room against the room id itself (a host's key and the
 * guest verifier it sends, or a guest's key and the host verifier it sends,
 * must make the room id), so it stores nothing for the ticket's own guest, but
 * it cannot derive the signalling key, so it cannot forge or alter the peers'
 * offers, answers and candidates (see `AuthenticatedSignaling`). An invite's
 * guest ticket (see `WebRTCListener.invite`) has a secret of its own, whose
 * key's verifier the host registers with the room.
 *
 * A version 1 ticket (`mcpwebrtc1.`, no `h`) is still read: its room id is
 * its host key's verifier, which also serves as the salt, and the room keeps
 * its guest verifier in storage from the host's join on.
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
import { keyVerifier, pairRoomId, verifyKey } from "./signaling/room_protocol.ts";
import {
  formatTicket,
  MAX_EXPIRY_SECONDS,
  normaliseUrl,
  parseTicket,
  SECRET_BYTES,
  type Ticket,
  type TicketKind,
  ticketProblem,
} from "./_ticket_format.ts";

export { keyVerifier, verifyKey } from "./signaling/room_protocol.ts";
export { formatTicket, parseTicket, type Ticket, type TicketKind };

const encoder = new TextEncoder();

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
  /**
   * The ticket's version: `2` (a room id that binds both verifiers, so the
   * room stores nothing for the ticket's guest), or `1` for agents of a
   * version of this module that reads only `mcpwebrtc1.` tickets (its room
   * id is the host key's verifier, and the room stores the guest verifier).
   *
   * @default {2}
   */
  version?: 1 | 2;
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

/**
 * Creates a new host ticket: a fresh random 256-bit host secret, and the room
 * id derived from it. Keep it on the host; hand
 * {@linkcode createGuestTicket}'s result to the agent.
 *
 * @param options The signalling URL (none for a signalling-only ticket) and an
 * optional expiry.
 * @returns The host ticket.
 * @throws {TypeError} If the URL is not a `ws:`, `wss:`, `http:` or `https:`
 * URL, carries credentials or a fragment, `expiresAt` is not a valid date, or
 * `version` is neither 1 nor 2.
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
 *
 * @example A version 1 ticket, for agents that read only those
 * ```ts
 * import { createGuestTicket, createTicket, formatTicket } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "wss://signal.example.com", version: 1 });
 * assert.equal(host.hostVerifier, undefined);
 * assert.match(formatTicket(await createGuestTicket(host)), /^mcpwebrtc1\.guest\./);
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
  const version = options.version ?? 2;
  if (version !== 1 && version !== 2) {
    throw new TypeError(`Cannot create ticket as 'version' must be 1 or 2: received ${version}`);
  }
  const secretBytes = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  const hostKey = encodeBase64Url(await hkdf(secretBytes, new Uint8Array(), "host key"));
  const hostVerifier = await keyVerifier(hostKey);
  // A version 1 ticket: its room id is the host verifier, the salt of the keys
  // of both versions, so its keys are the version 2 ticket's too.
  const v1: Ticket = {
    kind: "host",
    url,
    room: hostVerifier,
    secret: encodeBase64Url(secretBytes),
    ...expiresAt && { expiresAt },
  };
  if (version === 1) return v1;
  const { guestVerifier } = await deriveTicketKeys(v1);
  return { ...v1, room: await pairRoomId(hostVerifier, guestVerifier), hostVerifier };
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
 * assert.match(text, /^mcpwebrtc2\.guest\./);
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
  const guestSecret = await hkdf(decodeBase64Url(ticket.secret)!, saltOf(ticket), "guest secret");
  const guest = {
    kind: "guest" as const,
    url: ticket.url,
    room: ticket.room,
    ...ticket.hostVerifier !== undefined && { hostVerifier: ticket.hostVerifier },
  };
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
  const invite = {
    kind: "guest" as const,
    url: guest.url,
    room: guest.room,
    ...guest.hostVerifier !== undefined && { hostVerifier: guest.hostVerifier },
    secret,
  };
  const problem = ticketProblem(expiresAt ? { ...invite, expiresAt } : invite);
  if (problem) throw new TypeError(`Cannot create invite ticket as ${problem}`);
  return expiresAt ? { ...invite, expiresAt } : invite;
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
  const salt = saltOf(ticket);
  const secret = decodeBase64Url(ticket.secret)!;
  let guestSecret = secret;
  let hostKey: string | undefined;
  const altered = () =>
    new TicketError(
      "Cannot use ticket as its room id does not match its host secret: the ticket was altered or damaged",
    );
  if (ticket.kind === "host") {
    hostKey = encodeBase64Url(await hkdf(secret, new Uint8Array(), "host key"));
    if (!(await verifyKey(hostKey, ticket.hostVerifier ?? ticket.room))) throw altered();
    guestSecret = await hkdf(secret, salt, "guest secret");
  }
  const guestKey = encodeBase64Url(await hkdf(guestSecret, salt, "guest key"));
  const signalingKey = await hmacKey(await hkdf(guestSecret, salt, "signaling key"));
  const guestVerifier = await keyVerifier(guestKey);
  if (
    ticket.kind === "host" && ticket.hostVerifier !== undefined &&
    (await pairRoomId(ticket.hostVerifier, guestVerifier)) !== ticket.room
  ) throw altered();
  return hostKey === undefined
    ? { guestKey, guestVerifier, signalingKey }
    : { hostKey, guestKey, guestVerifier, signalingKey };
}

/**
 * What a guest needs to dial, each as soon as it is ready: the room key (for
 * the join) and the signalling key (for the first sealed message, after the
 * join). The same values as {@linkcode deriveTicketKeys}, but the secret is
 * imported once and the two derivations run side by side, so a dialer can
 * join while the signalling key is still being derived (the guest verifier,
 * which only the host hands to the room, is not derived at all).
 *
 * @param ticket A guest ticket, already checked.
 * @returns Both keys, each a promise of its own.
 */
export function guestDialKeys(
  ticket: Ticket,
): { guestKey: Promise<string>; signalingKey: Promise<CryptoKey> } {
  if (ticket.kind !== "guest") {
    throw new TicketError("Cannot derive a guest's dial keys from a host ticket");
  }
  const problem = ticketProblem(ticket);
  if (problem) throw new TypeError(`Cannot derive ticket keys as ${problem}`);
  const salt = saltOf(ticket);
  const secret = hkdfKey(decodeBase64Url(ticket.secret)!);
  const guestKey = secret.then((key) => deriveBits(key, salt, "guest key")).then(encodeBase64Url);
  const signalingKey = secret.then((key) => deriveBits(key, salt, "signaling key")).then(hmacKey);
  // Whichever the caller awaits second must not reject unhandled meanwhile.
  guestKey.catch(() => {});
  signalingKey.catch(() => {});
  return { guestKey, signalingKey };
}

/**
 * The salt of a ticket's keys: the UTF-8 bytes of its host verifier, which a
 * version 1 ticket's room id is.
 */
function saltOf(ticket: Ticket): Uint8Array<ArrayBuffer> {
  return encoder.encode(ticket.hostVerifier ?? ticket.room);
}

async function hkdf(
  secret: Uint8Array<ArrayBuffer>,
  salt: Uint8Array<ArrayBuffer>,
  label: string,
): Promise<Uint8Array<ArrayBuffer>> {
  return deriveBits(await hkdfKey(secret), salt, label);
}

/** `secret` imported for HKDF, once for every label derived from it. */
function hkdfKey(secret: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveBits"]);
}

/** 256 bits derived from `key` for `label` (HKDF-SHA-256, `salt`). */
async function deriveBits(
  key: CryptoKey,
  salt: Uint8Array<ArrayBuffer>,
  label: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(`mcp-webrtc/v1 ${label}`) },
    key,
    256,
  );
  return new Uint8Array(bits);
}

/** The signalling key's bits as an HMAC-SHA-256 key for sealing and checking. */
function hmacKey(bits: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", bits, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}
