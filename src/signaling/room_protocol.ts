/**
 * The signalling room protocol (v1), written once: the names, patterns,
 * limits, close and error codes, frames and key checks that the room client
 * (`SignalingRoom`) and the signalling worker (`worker/src`) both speak. Plain
 * TypeScript with no runtime's types, so the worker bundles it as it is. The
 * room protocol in docs/PROTOCOL.md is the prose of the same.
 *
 * Over 400 lines for a reason: this is the one definition of the protocol
 * that both sides import (no second copy in the worker), and a reader checks
 * a frame's parser against its limits and codes in one place.
 *
 * @module
 */
import { decodeBase64Url, encodeBase64Url, timingSafeEqual } from "../_base64url.ts";
import { utf8Length } from "../_utf8.ts";

export { decodeBase64Url, encodeBase64Url, timingSafeEqual };

/** The WebSocket subprotocol a client offers and the room answers with. */
export const PROTOCOL = "mcp-webrtc.v1";
/** Prefix of the subprotocol that carries the key. */
export const KEY_PREFIX = "mcp-webrtc.key.";
/** Prefix of the subprotocol that carries the host's guest verifier. */
export const VERIFIER_PREFIX = "mcp-webrtc.guest-verifier.";
/**
 * Prefix of the subprotocol that carries a guest's host verifier (version 2
 * tickets): with it, the room checks the guest of a room whose id binds both
 * verifiers (see {@linkcode pairRoomId}) without anything stored.
 */
export const HOST_VERIFIER_PREFIX = "mcp-webrtc.host-verifier.";
/**
 * The subprotocol of a host whose join admits no guest with its guest
 * verifier: the room drops the invite named `guest` (a paired room, whose id
 * binds that verifier, stores its refusal). The host then admits only the
 * invites it adds.
 */
export const INVITES_ONLY = "mcp-webrtc.invites-only";

/** The peer id of the host; guests get 16 random hex digits. */
export const HOST = "host";
/** A guest's peer id, as the room makes them. */
export const GUEST_ID = /^[0-9a-f]{16}$/;
/** A room id: at least 128 bits of base64url. */
export const ROOM_ID = /^[A-Za-z0-9_-]{22,128}$/;
/** A key: opaque base64url, 16 to 128 characters. */
export const KEY = /^[A-Za-z0-9_-]{16,128}$/;
/** A verifier: base64url (no padding) of a SHA-256 digest. */
export const VERIFIER = /^[A-Za-z0-9_-]{43}$/;

/**
 * An invite's name: 1 to 64 letters, digits, `.`, `_` or `-`, so it is safe
 * in a log line, a file name and a terminal as it is.
 */
export const INVITE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The invite a host's join sets up: the guest verifier every host join
 * carries is the verifier of the invite of this name, so a room used with one
 * ticket has one invite and works as before invites.
 */
export const GUEST_INVITE = "guest";

/**
 * Invites one room holds at most (`MAX_INVITES`), `guest` included: what a
 * stranger with the host key of a room of its own can make the service store
 * (about 14 KiB a room at 64-character names), and what each guest join
 * compares its key's digest with (one constant-time comparison of 32 bytes per
 * invite). A desktop with more agents than that gives some of them a room
 * of their own. One slot is always kept for `guest`, so the host's join can
 * set it even in a room full of other invites.
 */
export const MAX_INVITES = 128;

/** Where rooms live on a signalling service. */
const ROOMS_PATH = "/v1/rooms/";
/** The path of a room, exactly as a client must send it: no percent-escapes, no extra slashes. */
const ROOM_PATH = /^\/v1\/rooms\/([A-Za-z0-9_-]{22,128})$/;

/** The largest text frame the room reads, in UTF-8 bytes. */
export const MAX_FRAME_BYTES = 64 * 1024;

/**
 * What a relay frame the room forwards costs in a socket's rate limit, in
 * frames: an eighth, so a guest may relay 400 frames a second at the default
 * `RATE_PER_SECOND` (25 MiB/s in 64 KiB chunks, above any room's byte budget)
 * while one-byte frames cannot flood the other side. Every other frame, text
 * or binary, costs one.
 */
export const RELAY_FRAME_COST = 1 / 8;

/**
 * Error replies a socket may get at once (`ERROR_REPLY_BURST`): the room
 * cannot see whether a client reads (workerd has no `bufferedAmount` for a
 * hibernatable socket), so what it queues for one is bounded by how many
 * error frames it sends, not by the socket's buffer. A socket that would get
 * one more is closed with `too_many_errors` (4429).
 */
export const ERROR_REPLY_BURST = 64;

/**
 * Error replies a socket gains back per second (`ERROR_REPLIES_PER_SECOND`):
 * a client that makes an occasional mistake (a signal to a guest that just
 * left) is never closed, one that keeps sending what the room refuses is, and
 * a socket that never reads is queued at most about 300 bytes a second.
 */
export const ERROR_REPLIES_PER_SECOND = 1;

/**
 * Bytes the room may have sent a guest's socket that the guest has not shown
 * it read (`MAX_UNREAD_BYTES`); the host's socket gets one such share per
 * guest it may have (`MAX_GUESTS`), as with the rate limit. workerd has no
 * `bufferedAmount` or backpressure for a server's WebSocket, so what the room
 * sends a client that does not read piles up in workerd; the room counts it
 * instead. After every eighth of the budget it sends a `mark` frame with a
 * fresh random token, which the client echoes in a `seen` frame once it has
 * read that far: only a client that read the bytes before a mark can name it,
 * so the room counts as unread everything sent after the last mark echoed. A
 * send that would go beyond the budget closes the socket with `unread_limit`
 * (4413) instead. 2 MiB is the relay's end-to-end window (1 MiB, which honest
 * peers keep to), an eighth between marks, and half a window more for the
 * bytes read while an echo crosses back: a reader that keeps up is never
 * closed.
 */
export const MAX_UNREAD_BYTES = 2 * 1024 * 1024;

/**
 * The room sends a `mark` after every `MAX_UNREAD_BYTES / UNREAD_MARKS` bytes
 * it sends a socket (`UNREAD_MARKS`): 8, so a socket has at most nine marks
 * pending (they live in its attachment) and a guest that reads the room's
 * whole relay budget (8 MiB/s) echoes 32 a second, within its rate limit.
 */
export const UNREAD_MARKS = 8;

/**
 * What each message the room sends counts in `MAX_UNREAD_BYTES` beyond its
 * own bytes (`QUEUED_MESSAGE_BYTES`): workerd's record of a queued message
 * (the message, its output gate and its place in the queue), about this much,
 * so a flood of one-byte relay frames is counted at what it costs.
 */
export const QUEUED_MESSAGE_BYTES = 128;

/** A mark's token: 16 hex digits (64 random bits). */
export const MARK = /^[0-9a-f]{16}$/;

/**
 * The frame a client answers a room's `mark` frame with, as soon as it read
 * it: the room then counts everything it sent before the mark as read.
 *
 * @param mark The token of the `mark` frame.
 * @returns The `seen` frame, JSON text.
 *
 * @example Echo a mark
 * ```ts
 * import { seenFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(seenFrame("0123456789abcdef"), '{"type":"seen","mark":"0123456789abcdef"}');
 * ```
 */
export function seenFrame(mark: string): string {
  return JSON.stringify({ type: "seen", mark });
}

/** Either side of a room. */
export type Role = "host" | "guest";

/**
 * Every error frame code, with the sentence the room sends: what was wrong
 * and what to do. Those in {@linkcode CLOSE} also end the socket.
 */
export const ERRORS = {
  key_refused: "The key does not match this room: check the key, or ask the host for a new ticket",
  room_not_found:
    "No host has set up this room, or it expired: check the room id, or start the host first",
  room_full: "The room has as many guests as it allows: try again after one leaves",
  host_replaced:
    "Another connection with the host key took over this room: stop this one, or use another room",
  rate_limited: "Frames arrived faster than the room allows: slow down, then reconnect",
  silent:
    "This connection sent nothing, not even ping, for longer than the room allows: send ping every 20 s, then reconnect",
  binary_frame: "Frames must be JSON text, not binary",
  frame_too_large: `Frames must be at most ${MAX_FRAME_BYTES} bytes: send smaller messages`,
  bad_json: "Frames must be JSON text",
  bad_frame: "A frame must be a JSON object",
  unknown_type:
    'A client sends only {"type":"signal","to":...,"data":...}, {"type":"ice_servers"} or {"type":"seen","mark":...}, and the host also {"type":"invite",...}, {"type":"revoke",...} and {"type":"waiting_hello","data":...}',
  bad_recipient: 'A signal frame needs "to": the id of the peer to send to',
  forbidden_recipient: 'Guests may only send to "host"',
  bad_data: 'The "data" of a signal or waiting_hello frame must be a JSON object',
  unknown_peer: "That peer is not in the room: wait for its join frame",
  ice_servers_limited:
    "This address or this room asked for TURN credentials more often than the service allows (TURN_PER_ADDRESS_PER_HOUR, TURN_PER_ROOM_PER_HOUR): keep using the ones you have, or ask again later",
  ice_servers_unavailable:
    "The service could not mint TURN credentials just now: connect without them, or ask again later",
  too_many_errors:
    `This connection sent more frames the room refuses than it allows (ERROR_REPLY_BURST, ${ERROR_REPLY_BURST}): fix what the earlier error frames said, then reconnect`,
  internal_error: "The signalling room failed on this frame: send it again, or reconnect",
  host_only:
    "Only the host may add or revoke invites or leave a waiting hello: join with the host key to manage this room",
  bad_invite_name:
    'An invite needs a "name" of 1 to 64 letters, digits, ".", "_" or "-": rename it',
  bad_verifier: 'An invite needs a "verifier": keyVerifier(guest key), 43 base64url characters',
  too_many_invites:
    `This room holds as many invites as it allows (MAX_INVITES, ${MAX_INVITES}, one kept for "guest"): revoke one first, or give more agents a room of their own`,
  invite_not_found:
    "This room has no invite of that name: check the name (the room's invites are those the host added since the room was set up)",
  revoked: "The host revoked this invite: ask the host for a new ticket",
  unread_limit:
    `The room queued more for this connection than it holds unread (MAX_UNREAD_BYTES, ${MAX_UNREAD_BYTES} bytes a guest, a share per guest for the host): read what the room sends and answer its mark frames with seen frames (this module's room client does), then reconnect`,
  unknown_mark:
    'A seen frame must name a mark the room sent this connection and that is not yet seen: echo {"type":"seen","mark":...} once per mark frame',
} as const;

/** The code of an error frame. */
export type ErrorCode = keyof typeof ERRORS;

/**
 * The errors that end a socket, and the close code that follows the error
 * frame: 4000 + the matching HTTP status.
 */
export const CLOSE = {
  /** The key does not match the room's verifier (403). */
  key_refused: 4403,
  /** A guest came to a room no host has set up, or it expired (404). */
  room_not_found: 4404,
  /** The room already has as many guests as it allows (409). */
  room_full: 4409,
  /** A newer host connection took over the room (409). */
  host_replaced: 4409,
  /** The socket sent frames faster than the rate limit (429). */
  rate_limited: 4429,
  /** The socket kept sending frames the room refuses (429). */
  too_many_errors: 4429,
  /** The socket sent nothing, not even `ping`, for the room's silence limit (408). */
  silent: 4408,
  /** The host revoked the invite this guest joined with (410). */
  revoked: 4410,
  /** The socket left more than `MAX_UNREAD_BYTES` unread (413). */
  unread_limit: 4413,
} as const satisfies Partial<Record<ErrorCode, number>>;

/** An error that ends a socket. */
export type ClosingErrorCode = keyof typeof CLOSE;

/** The endings after which a client must not reconnect: the room would refuse it again. */
export const FINAL: readonly ClosingErrorCode[] = [
  "key_refused",
  "room_not_found",
  "room_full",
  "host_replaced",
  "revoked",
];

/**
 * The URL of a ticket's room: its signalling URL, then `/v1/rooms/` and its
 * room id.
 *
 * @param ticket A ticket, or anything with its `url` and `room`.
 * @returns The room's URL.
 * @throws {TypeError} If the ticket is signalling-only (it names no signalling service).
 *
 * @example The room of a fresh ticket
 * ```ts
 * import { createTicket } from "@mcp/webrtc";
 * import { roomUrl } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const ticket = await createTicket({ url: "wss://signal.example" });
 * assert.equal(roomUrl(ticket), `wss://signal.example/v1/rooms/${ticket.room}`);
 * ```
 */
export function roomUrl(ticket: { readonly url: string; readonly room: string }): string {
  if (ticket.url === "") {
    throw new TypeError(
      "Cannot find the ticket's signalling room as it is a signalling-only ticket (it names no signalling service): use its keys with AuthenticatedSignaling over your own channel, or create the ticket with a url",
    );
  }
  const url = new URL(ticket.url);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${ROOMS_PATH}${ticket.room}`;
  return url.href;
}

/**
 * Reads the room id from a request URL's path, as sent: the one canonical
 * form, `/v1/rooms/<22 to 128 base64url characters>`. Any other spelling of
 * the same id (a percent-escape, a trailing slash) is not a room id, so a room
 * is only ever named one way.
 *
 * @param url The URL of the request.
 * @returns The room id, or `undefined` if the path is not a room's canonical path.
 *
 * @example Percent-escapes are not room ids
 * ```ts
 * import { roomIdOf } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const room = "Nq3RkWmvh0VrKz2Hd7yXbA";
 * assert.equal(roomIdOf(`http://signal.test/v1/rooms/${room}?role=guest`), room);
 * assert.equal(roomIdOf(`http://signal.test/v1/rooms/%4E${room.slice(1)}`), undefined);
 * ```
 */
export function roomIdOf(url: string): string | undefined {
  return ROOM_PATH.exec(new URL(url).pathname)?.[1];
}

/**
 * The subprotocols a client offers to join: the protocol, the key, and the
 * guest verifier (hosts) or the host verifier (guests of a version 2
 * ticket's room).
 *
 * @param key The room key.
 * @param guestVerifier The host's guest verifier; omit for guests.
 * @param hostVerifier A guest's host verifier (from its ticket), if it has one.
 * @param invitesOnly A host's: admit no guest with its guest verifier (see {@linkcode INVITES_ONLY}).
 * @returns The subprotocols, in order.
 *
 * @example A guest's offer
 * ```ts
 * import { joinProtocols } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(joinProtocols("guest-key-0123456789"), [
 *   "mcp-webrtc.v1",
 *   "mcp-webrtc.key.guest-key-0123456789",
 * ]);
 * ```
 */
export function joinProtocols(
  key: string,
  guestVerifier?: string,
  hostVerifier?: string,
  invitesOnly = false,
): string[] {
  const protocols = [PROTOCOL, `${KEY_PREFIX}${key}`];
  if (guestVerifier !== undefined) protocols.push(`${VERIFIER_PREFIX}${guestVerifier}`);
  if (hostVerifier !== undefined) protocols.push(`${HOST_VERIFIER_PREFIX}${hostVerifier}`);
  if (invitesOnly) protocols.push(INVITES_ONLY);
  return protocols;
}

/**
 * The room id of a version 2 ticket: `base64url(SHA-256(UTF-8 bytes of
 * "mcp-webrtc/v2 room " + hostVerifier + " " + guestVerifier))`. The id binds
 * both verifiers, so the room checks a host (its key's verifier and the guest
 * verifier it sends) and the ticket's guest (its key's verifier and the host
 * verifier it sends) against its own id, with nothing stored: a pairing in
 * such a room writes nothing. The label keeps these digests apart from key
 * verifiers (a key is base64url, never holding a space).
 *
 * @param hostVerifier `keyVerifier(hostKey)`, 43 base64url characters.
 * @param guestVerifier `keyVerifier(guestKey)`, 43 base64url characters.
 * @returns The room id, 43 base64url characters.
 *
 * @example Both verifiers make the id
 * ```ts
 * import { createGuestTicket, createTicket, deriveTicketKeys } from "@mcp/webrtc";
 * import { keyVerifier, pairRoomId } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "wss://signal.example.com" });
 * const { hostKey, guestVerifier } = await deriveTicketKeys(host);
 * assert.equal(await pairRoomId(await keyVerifier(hostKey!), guestVerifier), host.room);
 * ```
 */
export async function pairRoomId(hostVerifier: string, guestVerifier: string): Promise<string> {
  return encodeBase64Url(await pairRoomDigest(hostVerifier, guestVerifier));
}

/**
 * The digest whose base64url is {@linkcode pairRoomId}: what the room
 * compares with its id's bytes.
 *
 * @param hostVerifier The host key's verifier.
 * @param guestVerifier The guest key's verifier.
 * @returns 32 bytes.
 *
 * @example The digest is the id's bytes
 * ```ts
 * import { decodeBase64Url, pairRoomDigest, pairRoomId } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const [h, g] = ["A".repeat(43), "B".repeat(43)];
 * assert.deepEqual(await pairRoomDigest(h, g), decodeBase64Url(await pairRoomId(h, g)));
 * ```
 */
export function pairRoomDigest(
  hostVerifier: string,
  guestVerifier: string,
): Promise<Uint8Array<ArrayBuffer>> {
  return sha256(`mcp-webrtc/v2 room ${hostVerifier} ${guestVerifier}`);
}

/**
 * Computes a key's verifier: `base64url(SHA-256(UTF-8 bytes of key))`, where
 * `key` is the base64url string as given, not the bytes it encodes. A room
 * stores verifiers, never keys: the host sends the verifier of the guest key,
 * and the room id of a ticket is made from the verifier of its host key (see
 * {@linkcode pairRoomId}), so the room admits the host without trusting the
 * first comer.
 *
 * @param key A host or guest key.
 * @returns The verifier, 43 base64url characters.
 *
 * @example Compute a verifier
 * ```ts
 * import { keyVerifier } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * // SHA-256 of the empty string.
 * assert.equal(await keyVerifier(""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
 * ```
 */
export async function keyVerifier(key: string): Promise<string> {
  return encodeBase64Url(await keyDigest(key));
}

/**
 * A key's digest: the bytes whose base64url is its {@linkcode keyVerifier}.
 * The room hashes each key it is presented once, and compares the digest
 * with every verifier it holds.
 *
 * @param key A host or guest key.
 * @returns SHA-256 of the key's UTF-8 bytes.
 *
 * @example The digest is the verifier's bytes
 * ```ts
 * import { decodeBase64Url, keyDigest, keyVerifier } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const key = "guest-key-0123456789";
 * assert.deepEqual(await keyDigest(key), decodeBase64Url(await keyVerifier(key)));
 * ```
 */
export function keyDigest(key: string): Promise<Uint8Array<ArrayBuffer>> {
  return sha256(key);
}

/**
 * Checks a presented key against a stored verifier (or a host verifier), in constant
 * time: hashes the key as {@linkcode keyVerifier} does and compares the two
 * digests byte by byte without an early exit.
 *
 * @param key The key a peer presented.
 * @param verifier The verifier on record.
 * @returns `true` if `keyVerifier(key)` equals `verifier`.
 *
 * @example Check a guest key
 * ```ts
 * import { createGuestTicket, createTicket, deriveTicketKeys } from "@mcp/webrtc";
 * import { verifyKey } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const host = await createTicket({ url: "wss://signal.example.com" });
 * const { hostKey, guestKey, guestVerifier } = await deriveTicketKeys(host);
 * assert.equal(await verifyKey(guestKey, guestVerifier), true);
 * assert.equal(await verifyKey(hostKey!, host.hostVerifier!), true);
 * assert.equal(await verifyKey(hostKey!, guestVerifier), false);
 * ```
 */
export async function verifyKey(key: string, verifier: string): Promise<boolean> {
  return timingSafeEqual(await sha256(key), decodeBase64Url(verifier) ?? new Uint8Array());
}

async function sha256(text: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/**
 * A member's request for ICE servers (`{"type":"ice_servers","id"?:...}`):
 * the room mints TURN credentials only when asked, within its limits.
 */
export interface IceServersRequest {
  /** What is asked for. */
  type: "ice_servers";
  /** The client's `id` of the frame, echoed as `ref` in an error frame. */
  ref?: string | number;
}

/**
 * Writes a request for ICE servers, with an `id` the room echoes as `ref` if
 * it refuses.
 *
 * @example Ask for TURN credentials
 * ```ts
 * import { iceServersRequest } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(iceServersRequest(4), '{"type":"ice_servers","id":4}');
 * ```
 */
export function iceServersRequest(id?: string | number): string {
  return JSON.stringify({ type: "ice_servers", id });
}

/**
 * The host's sealed hello left with the room for the next guest of one
 * invite (`{"type":"waiting_hello","data":{...},"invite"?:"name"}`), once
 * checked: the room keeps at most one per invite it knows (the host's own,
 * {@linkcode GUEST_INVITE}, when `invite` is absent), for the host's current
 * socket and in memory only, and hands it to the next guest that joins with
 * that invite, right after its welcome, as a `signal` frame from the host. A
 * hello for an invite the room does not know is refused
 * (`invite_not_found`). A frame like any other: at most
 * {@linkcode MAX_FRAME_BYTES}.
 */
export interface WaitingHelloRequest {
  /** What is asked for. */
  type: "waiting_hello";
  /** The hello, opaque to the room (an `AuthenticatedSignaling` envelope). */
  data: Record<string, unknown>;
  /** The invite whose next guest gets it ({@linkcode INVITE_NAME}). */
  invite: string;
  /** The request id to echo in a refusal, if given. */
  ref?: string | number;
}

/**
 * Writes the host's waiting hello for the next guest of `invite` (the host's
 * own, {@linkcode GUEST_INVITE}, by default), with an `id` the room's refusal
 * would name: send it only to a room whose welcome says `hellos: true` (an
 * older room refuses the frame as `unknown_type`).
 *
 * @example Leave a hello for the next guest, and one for the next of invite "ci"
 * ```ts
 * import { waitingHelloFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   waitingHelloFrame({ type: "sealed" }),
 *   '{"type":"waiting_hello","data":{"type":"sealed"}}',
 * );
 * assert.equal(
 *   waitingHelloFrame({ type: "sealed" }, "ci"),
 *   '{"type":"waiting_hello","data":{"type":"sealed"},"invite":"ci"}',
 * );
 * ```
 */
export function waitingHelloFrame(
  data: object,
  invite: string = GUEST_INVITE,
  id?: string | number,
): string {
  return JSON.stringify({
    type: "waiting_hello",
    data,
    ...invite !== GUEST_INVITE && { invite },
    ...id !== undefined && { id },
  });
}

/**
 * The host's request to add or replace an invite
 * (`{"type":"invite","name":...,"verifier":...,"id"?:...}`), once checked.
 */
export interface InviteRequest {
  /** What is asked for. */
  type: "invite";
  /** The invite's name ({@linkcode INVITE_NAME}). */
  name: string;
  /** The verifier of the invite's guest key ({@linkcode keyVerifier}). */
  verifier: string;
  /** The client's `id` of the frame, echoed as `ref` in the answer or an error frame. */
  ref?: string | number;
}

/** The host's request to revoke an invite (`{"type":"revoke","name":...,"id"?:...}`), once checked. */
export interface RevokeRequest {
  /** What is asked for. */
  type: "revoke";
  /** The invite's name. */
  name: string;
  /** The client's `id` of the frame, echoed as `ref` in the answer or an error frame. */
  ref?: string | number;
}

/**
 * Writes the host's request to add (or replace) an invite: the room answers
 * `{"type":"invited","name":...}`, or an error frame with `ref` set to `id`.
 *
 * @example Invite an agent
 * ```ts
 * import { inviteFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const verifier = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
 * assert.equal(
 *   inviteFrame("alice", verifier, 2),
 *   `{"type":"invite","name":"alice","verifier":"${verifier}","id":2}`,
 * );
 * ```
 */
export function inviteFrame(name: string, verifier: string, id?: string | number): string {
  return JSON.stringify({ type: "invite", name, verifier, id });
}

/**
 * Writes the host's request to revoke an invite: the room answers
 * `{"type":"revoked","name":...,"closed":n}`, or an error frame with `ref`.
 *
 * @example Revoke an agent's invite
 * ```ts
 * import { revokeFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(revokeFrame("alice", 3), '{"type":"revoke","name":"alice","id":3}');
 * ```
 */
export function revokeFrame(name: string, id?: string | number): string {
  return JSON.stringify({ type: "revoke", name, id });
}

/** A frame a client may send, once checked: where it goes, and what. */
export interface SignalFrame {
  /** The recipient's peer id. */
  to: string;
  /** The opaque payload. */
  data: Record<string, unknown>;
  /** The client's `id` of the frame, echoed as `ref` in an error frame. */
  ref?: string | number;
}

/**
 * Writes the one frame a client sends: a signal to one peer, with an `id`
 * the room echoes as `ref` if it refuses the frame.
 *
 * @example A guest's offer to the host
 * ```ts
 * import { signalFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   signalFrame("host", { type: "offer" }, 1),
 *   '{"type":"signal","to":"host","data":{"type":"offer"},"id":1}',
 * );
 * ```
 */
export function signalFrame(to: string, data: object, id?: string | number): string {
  return JSON.stringify({ type: "signal", to, data, id });
}

/**
 * Checks one client frame's encoding and shape (not whether `to` is present).
 *
 * @returns The frame (a signal, a request for ICE servers, or the host's
 * request to add or revoke an invite), or the error code to answer with (and
 * the `ref`, if any).
 *
 * @example Guests may only talk to the host
 * ```ts
 * import { checkFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = JSON.stringify({ type: "signal", to: "0123456789abcdef", data: {}, id: 7 });
 * assert.deepEqual(checkFrame(frame, "guest"), { code: "forbidden_recipient", ref: 7 });
 * ```
 */
export function checkFrame(
  message: string | ArrayBuffer,
  role: Role,
):
  | SignalFrame
  | IceServersRequest
  | InviteRequest
  | RevokeRequest
  | WaitingHelloRequest
  | { type: "seen"; mark: string }
  | { code: ErrorCode; ref?: string | number } {
  if (typeof message !== "string") return { code: "binary_frame" };
  if (message.length > MAX_FRAME_BYTES || utf8Length(message) > MAX_FRAME_BYTES) {
    return { code: "frame_too_large" };
  }
  let frame: unknown;
  try {
    frame = JSON.parse(message);
  } catch {
    return { code: "bad_json" };
  }
  if (!isObject(frame)) return { code: "bad_frame" };
  const { type, to, data, id } = frame;
  const ref = asRef(id);
  if (type === "ice_servers") return ref === undefined ? { type } : { type, ref };
  if (type === "seen") {
    const { mark } = frame;
    return typeof mark === "string" && MARK.test(mark) ? { type, mark } : { code: "unknown_mark" };
  }
  if (type === "waiting_hello") {
    const { invite = GUEST_INVITE } = frame;
    const code: ErrorCode | undefined = role !== "host"
      ? "host_only"
      : !isObject(data)
      ? "bad_data"
      : typeof invite !== "string" || !INVITE_NAME.test(invite)
      ? "bad_invite_name"
      : undefined;
    if (code) return ref === undefined ? { code } : { code, ref };
    const request: WaitingHelloRequest = {
      type,
      data: data as Record<string, unknown>,
      invite: invite as string,
    };
    return ref === undefined ? request : { ...request, ref };
  }
  if (type === "invite" || type === "revoke") {
    const { name, verifier } = frame;
    const code: ErrorCode | undefined = role !== "host"
      ? "host_only"
      : typeof name !== "string" || !INVITE_NAME.test(name)
      ? "bad_invite_name"
      : type === "invite" && (typeof verifier !== "string" || !VERIFIER.test(verifier))
      ? "bad_verifier"
      : undefined;
    if (code) return ref === undefined ? { code } : { code, ref };
    const request: InviteRequest | RevokeRequest = type === "invite"
      ? { type: "invite", name: name as string, verifier: verifier as string }
      : { type: "revoke", name: name as string };
    return ref === undefined ? request : { ...request, ref };
  }
  const code: ErrorCode | undefined = type !== "signal"
    ? "unknown_type"
    : typeof to !== "string"
    ? "bad_recipient"
    : role === "guest" && to !== HOST
    ? "forbidden_recipient"
    : !isObject(data)
    ? "bad_data"
    : undefined;
  if (code) return ref === undefined ? { code } : { code, ref };
  return { to: to as string, data: data as Record<string, unknown>, ref };
}

/**
 * The `ref` to answer a client frame with: its `id`, if it has a valid one.
 *
 * @example The id of a frame
 * ```ts
 * import { refOf } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(refOf('{"type":"signal","id":7}'), 7);
 * assert.equal(refOf("not json"), undefined);
 * ```
 */
export function refOf(message: string | ArrayBuffer): string | number | undefined {
  if (typeof message !== "string" || message.length > MAX_FRAME_BYTES) return undefined;
  try {
    const frame: unknown = JSON.parse(message);
    return isObject(frame) ? asRef(frame.id) : undefined;
  } catch {
    return undefined;
  }
}

/** An ICE server a room hands out (the shape of WebRTC's `RTCIceServer`). */
export interface IceServerFrame {
  /** `stun:`, `turn:` or `turns:` URLs. */
  urls: string | string[];
  /** The TURN user name. */
  username?: string;
  /** The TURN password. */
  credential?: string;
}

/** The frames a room sends. */
export type RoomFrame =
  | {
    /** First, on every accepted connection. */
    type: "welcome";
    /** The connection's own peer id. */
    peer: string;
    /** Its role. */
    role: Role;
    /** The peers it may talk to, present now. */
    peers: string[];
    /**
     * STUN/TURN servers for this member (rooms before ICE servers on request
     * sent them here; read for compatibility).
     */
    iceServers?: IceServerFrame[];
    /** `true` if the room hands out ICE servers on request (`{"type":"ice_servers"}`). */
    ice?: boolean;
    /**
     * What the room relays (`{ maxFrameBytes, bytesPerSecond }`, see
     * `relay_protocol.ts`), or `null` where the operator turned the relay off.
     */
    relay?: Record<string, unknown> | null;
    /**
     * To the host: the invite each present guest joined with, by peer id
     * (absent for a guest that joined a room from before invites).
     */
    peerInvites?: Record<string, string>;
    /**
     * To the host: `true` if the room keeps a waiting hello
     * (`{"type":"waiting_hello"}`); rooms before it say nothing, and the
     * host leaves none there.
     */
    hellos?: boolean;
  }
  | {
    /** The answer to a request for ICE servers: credentials minted for this member. */
    type: "ice_servers";
    /** The servers (none if the service hands out none). */
    iceServers: IceServerFrame[];
    /** Seconds the credentials stay valid from now. */
    ttl?: number;
  }
  | {
    /** A peer one may talk to arrived. */
    type: "join";
    /** Its id. */
    peer: string;
    /** To the host: the name of the invite the guest joined with. */
    invite?: string;
    /** To the host: `true` if the room handed this guest the host's waiting hello. */
    hello?: boolean;
  }
  | {
    /** The answer to the host's `invite`: the invite is stored, its key admitted from now. */
    type: "invited";
    /** The invite's name. */
    name: string;
    /** The `id` of the request, if it had one. */
    ref?: string | number;
  }
  | {
    /** The answer to the host's `revoke`: the invite is gone, its key refused from now. */
    type: "revoked";
    /** The invite's name. */
    name: string;
    /** How many guest connections admitted with it the room closed. */
    closed: number;
    /** The `id` of the request, if it had one. */
    ref?: string | number;
  }
  | {
    /** That peer left. */
    type: "leave";
    /** Its id. */
    peer: string;
  }
  | {
    /**
     * The room has sent this far: answer with `seenFrame(mark)` once read
     * (see {@linkcode MAX_UNREAD_BYTES}).
     */
    type: "mark";
    /** The token to echo. */
    mark: string;
  }
  | {
    /** A message from a peer. */
    type: "signal";
    /** The sender, as the room stamped it. */
    from: string;
    /** The message, untouched. */
    data: Record<string, unknown>;
  }
  | {
    /** A frame was refused, or the socket is ending. */
    type: "error";
    /** What was wrong. */
    code: string;
    /** What was wrong and what to do. */
    message: string;
    /** The `id` of the refused frame, if it had one. */
    ref?: string | number;
    /** For a refused relay frame: the peer it was for, or from. */
    peer?: string;
  };

/**
 * Writes an error frame, with the room's sentence for the code.
 *
 * @example A refusal
 * ```ts
 * import { errorFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(JSON.parse(errorFrame("unknown_peer", 3)).ref, 3);
 * ```
 */
export function errorFrame(code: ErrorCode, ref?: string | number): string {
  return JSON.stringify({ type: "error", code, message: ERRORS[code], ref } satisfies RoomFrame);
}

/**
 * Reads one frame from a room, checking its shape. `pong` (the answer to a
 * `ping`) is not a frame and reads as `undefined`, as does anything malformed.
 *
 * @param data What the socket received.
 * @returns The frame, or `undefined`.
 *
 * @example A join, and something that is not a frame
 * ```ts
 * import { readRoomFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(readRoomFrame('{"type":"join","peer":"host"}'), { type: "join", peer: "host" });
 * assert.equal(readRoomFrame('{"type":"join"}'), undefined);
 * ```
 */
export function readRoomFrame(data: unknown): RoomFrame | undefined {
  let frame: unknown;
  try {
    frame = typeof data === "string" ? JSON.parse(data) : undefined;
  } catch {
    return undefined;
  }
  if (!isObject(frame)) return undefined;
  switch (frame.type) {
    case "welcome": {
      const { peer, role, peers, iceServers } = frame;
      if (
        typeof peer !== "string" || (role !== "host" && role !== "guest") ||
        !Array.isArray(peers) || !peers.every((p) => typeof p === "string")
      ) return undefined;
      const relay = isObject(frame.relay) ? frame.relay : frame.relay === null ? null : undefined;
      const peerInvites = isObject(frame.peerInvites) &&
          Object.values(frame.peerInvites).every((name) => typeof name === "string")
        ? frame.peerInvites as Record<string, string>
        : undefined;
      const extra = {
        ...relay !== undefined && { relay },
        ...frame.ice === true && { ice: true },
        ...peerInvites && { peerInvites },
        ...frame.hellos === true && { hellos: true },
      };
      if (iceServers === undefined) return { type: "welcome", peer, role, peers, ...extra };
      if (!Array.isArray(iceServers) || !iceServers.every(isIceServerFrame)) return undefined;
      return { type: "welcome", peer, role, peers, iceServers, ...extra };
    }
    case "ice_servers": {
      const { iceServers, ttl } = frame;
      if (!Array.isArray(iceServers) || !iceServers.every(isIceServerFrame)) return undefined;
      return typeof ttl === "number" && ttl >= 0
        ? { type: "ice_servers", iceServers, ttl }
        : { type: "ice_servers", iceServers };
    }
    case "join":
      if (typeof frame.peer !== "string") return undefined;
      return {
        type: "join",
        peer: frame.peer,
        ...typeof frame.invite === "string" && { invite: frame.invite },
        ...frame.hello === true && { hello: true },
      };
    case "leave":
      return typeof frame.peer === "string" ? { type: frame.type, peer: frame.peer } : undefined;
    case "mark":
      return typeof frame.mark === "string" && MARK.test(frame.mark)
        ? { type: "mark", mark: frame.mark }
        : undefined;
    case "invited":
    case "revoked": {
      const { name, closed } = frame;
      if (typeof name !== "string") return undefined;
      const ref = asRef(frame.ref);
      const refs = ref !== undefined ? { ref } : {};
      if (frame.type === "invited") return { type: "invited", name, ...refs };
      return Number.isSafeInteger(closed) && (closed as number) >= 0
        ? { type: "revoked", name, closed: closed as number, ...refs }
        : undefined;
    }
    case "signal":
      return typeof frame.from === "string" && isObject(frame.data)
        ? { type: "signal", from: frame.from, data: frame.data }
        : undefined;
    case "error": {
      const { code, message } = frame;
      if (typeof code !== "string" || typeof message !== "string") return undefined;
      const ref = asRef(frame.ref);
      return {
        type: "error",
        code,
        message,
        ...ref !== undefined && { ref },
        ...typeof frame.peer === "string" && { peer: frame.peer },
      };
    }
  }
  return undefined;
}

/** A frame's `id`, if it may be echoed as `ref`: a string of at most 64 characters, or an integer. */
function asRef(id: unknown): string | number | undefined {
  return (typeof id === "string" && id.length <= 64) || Number.isSafeInteger(id)
    ? id as string | number
    : undefined;
}

/**
 * Whether `value` is an ICE server entry: `urls` a string or strings, and
 * `username` and `credential` strings if present.
 *
 * @example A TURN server, and something else
 * ```ts
 * import { isIceServerFrame } from "./room_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isIceServerFrame({ urls: ["turn:turn.example"], username: "u", credential: "c" }));
 * assert.ok(!isIceServerFrame({ urls: 3 }));
 * ```
 */
export function isIceServerFrame(value: unknown): value is IceServerFrame {
  if (!isObject(value)) return false;
  const { urls, username, credential } = value;
  const urlsValid = typeof urls === "string" ||
    (Array.isArray(urls) && urls.every((url) => typeof url === "string"));
  return urlsValid && (username === undefined || typeof username === "string") &&
    (credential === undefined || typeof credential === "string");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** How advice names what two peers of one room share (see `Signaling.meetingPoint`). */
export const ROOM_MEETING_POINT = "the same signalling room or ticket";
