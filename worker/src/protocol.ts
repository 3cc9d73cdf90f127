/**
 * The room protocol, worker side: names, limits, close codes and the checks
 * that need no room state. Shared by the Hono routes (which run them before
 * waking any Durable Object) and the `Room` (which runs them again, so it
 * never trusts its caller). Plain TypeScript: no Workers types, so tests can
 * import it too. The room protocol in the README is the reference.
 *
 * @module
 */

/** The WebSocket subprotocol a client offers and the room answers with. */
export const PROTOCOL = "mcp-webrtc.v1";
/** Prefix of the subprotocol that carries the key. */
const KEY_PREFIX = "mcp-webrtc.key.";
/** Prefix of the subprotocol that carries the host's guest verifier. */
const VERIFIER_PREFIX = "mcp-webrtc.guest-verifier.";

/** The peer id of the host; guests get 16 random hex digits. */
export const HOST = "host";
/** A guest's peer id. */
export const GUEST_ID = /^[0-9a-f]{16}$/;
/** A room id: at least 128 bits of base64url. */
export const ROOM_ID = /^[A-Za-z0-9_-]{22,128}$/;
/** The path of a room, exactly as a client must send it: no percent-escapes, no extra slashes. */
const ROOM_PATH = /^\/v1\/rooms\/([A-Za-z0-9_-]{22,128})$/;
/** A key: opaque base64url, 16 to 128 characters. */
const KEY = /^[A-Za-z0-9_-]{16,128}$/;
/** A guest verifier: base64url (no padding) of a SHA-256 digest. */
const VERIFIER = /^[A-Za-z0-9_-]{43}$/;

/** The largest text frame the room reads, in UTF-8 bytes. */
const MAX_FRAME_BYTES = 64 * 1024;

/** Defaults of the limits a deployment may override with `vars`. */
export const DEFAULTS = {
  /** Guests at once in one room (`MAX_GUESTS`). */
  MAX_GUESTS: 8,
  /** Seconds an empty room keeps its verifiers (`ROOM_TTL_SECONDS`): 24 h. */
  ROOM_TTL_SECONDS: 86_400,
  /** Frames per second a socket may send, sustained (`RATE_PER_SECOND`). */
  RATE_PER_SECOND: 50,
  /** Frames a socket may send in one burst (`RATE_BURST`). */
  RATE_BURST: 200,
  /**
   * Seconds a socket may send nothing, not even `ping`, before the room closes
   * it (`SILENCE_SECONDS`): three missed pings of the client (every 20 s),
   * with room for a browser tab whose timers are throttled to once a minute.
   */
  SILENCE_SECONDS: 90,
} as const;

/**
 * Every error frame code, with the sentence the room sends: what was wrong
 * and what to do. The first six also close the socket (see {@linkcode CLOSE}).
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
  unknown_type: 'The only frame a client sends is {"type":"signal","to":...,"data":...}',
  bad_recipient: 'A signal frame needs "to": the id of the peer to send to',
  forbidden_recipient: 'Guests may only send to "host"',
  bad_data: 'The "data" of a signal frame must be a JSON object',
  unknown_peer: "That peer is not in the room: wait for its join frame",
  internal_error: "The signalling room failed on this frame: send it again, or reconnect",
} as const;

/** The code of an error frame. */
export type ErrorCode = keyof typeof ERRORS;

/**
 * The close code that follows an error frame, for the errors that end a
 * socket: 4000 + the matching HTTP status.
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
  /** The socket sent nothing, not even `ping`, for `SILENCE_SECONDS` (408). */
  silent: 4408,
} as const;

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
 * Checks one client frame's encoding and shape (not whether `to` is present).
 *
 * @returns The frame, or the error code to answer with (and the `ref`, if any).
 *
 * @example Guests may only talk to the host
 * ```ts
 * import { checkFrame } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = JSON.stringify({ type: "signal", to: "0123456789abcdef", data: {}, id: 7 });
 * assert.deepEqual(checkFrame(frame, "guest"), { code: "forbidden_recipient", ref: 7 });
 * ```
 */
export function checkFrame(
  message: string | ArrayBuffer,
  role: Role,
): SignalFrame | { code: ErrorCode; ref?: string | number } {
  if (typeof message !== "string") return { code: "binary_frame" };
  if (
    message.length > MAX_FRAME_BYTES ||
    new TextEncoder().encode(message).byteLength > MAX_FRAME_BYTES
  ) return { code: "frame_too_large" };
  let frame: unknown;
  try {
    frame = JSON.parse(message);
  } catch {
    return { code: "bad_json" };
  }
  if (!isObject(frame)) return { code: "bad_frame" };
  const { type, to, data, id } = frame;
  const ref = asRef(id);
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

/** A frame's `id`, if it may be echoed as `ref`: a string of at most 64 characters, or an integer. */
function asRef(id: unknown): string | number | undefined {
  return (typeof id === "string" && id.length <= 64) || Number.isSafeInteger(id)
    ? id as string | number
    : undefined;
}

/**
 * The `ref` to answer a client frame with: its `id`, if it has a valid one.
 *
 * @example The id of a frame
 * ```ts
 * import { refOf } from "./protocol.ts";
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Either side of a room. */
export type Role = "host" | "guest";

/** What a client presented to join a room, checked for shape only. */
export interface Credentials {
  /** The role asked for in `?role=`. */
  role: Role;
  /** The opaque key. */
  key: string;
  /** The host's guest verifier (hosts only). */
  guestVerifier?: string;
  /** Whether the key came as a subprotocol, so the answer must name one. */
  subprotocol: boolean;
}

/**
 * Reads the room id from a request URL's path, as sent: the one canonical
 * form, `/v1/rooms/<22 to 128 base64url characters>`. Any other spelling of
 * the same id (a percent-escape, a trailing slash) is not a room id, so a room
 * is only ever named one way.
 *
 * @returns The room id, or `undefined` if the path is not a room's canonical path.
 *
 * @example Percent-escapes are not room ids
 * ```ts
 * import { roomIdOf } from "./protocol.ts";
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
 * What the worker hands to a room: who asks to join which room, checked once
 * at the edge. The room reads nothing else of the client's request.
 */
export interface Join extends Credentials {
  /** The canonical room id (see {@linkcode roomIdOf}). */
  room: string;
}

/** The header of the worker's request to a room that carries the {@linkcode Join}, as JSON. */
export const JOIN_HEADER = "X-Room-Join";

/**
 * Reads the {@linkcode Join} the worker wrote into {@linkcode JOIN_HEADER},
 * checking its shape again, so a room never acts on a malformed join.
 *
 * @returns The join, or `undefined` if the header is missing or malformed.
 *
 * @example A guest's join
 * ```ts
 * import { readJoin } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const join = { room: "Nq3RkWmvh0VrKz2Hd7yXbA", role: "guest", key: "guest-key-0123456789", subprotocol: true };
 * assert.deepEqual(readJoin(JSON.stringify(join)), join);
 * assert.equal(readJoin('{"room":"../x"}'), undefined);
 * ```
 */
export function readJoin(header: string | null): Join | undefined {
  let value: unknown;
  try {
    value = JSON.parse(header ?? "");
  } catch {
    return undefined;
  }
  if (!isObject(value)) return undefined;
  const { room, role, key, guestVerifier, subprotocol } = value;
  if (
    typeof room !== "string" || !ROOM_ID.test(room) ||
    (role !== "host" && role !== "guest") ||
    typeof key !== "string" || !KEY.test(key) ||
    typeof subprotocol !== "boolean" ||
    (role === "host"
      ? typeof guestVerifier !== "string" || !VERIFIER.test(guestVerifier)
      : guestVerifier !== undefined)
  ) return undefined;
  return role === "host"
    ? { room, role, key, guestVerifier: guestVerifier as string, subprotocol }
    : { room, role, key, subprotocol };
}

/** A refusal: the HTTP status, a snake_case code and a sentence. */
export interface Refusal {
  /** HTTP status. */
  status: number;
  /** Machine-readable code. */
  code: string;
  /** What was wrong and what to do. */
  message: string;
}

/**
 * Reads role, key and guest verifier from a request and checks their shape.
 *
 * @returns The credentials, or the refusal to answer with.
 *
 * @example A guest's key in the subprotocol
 * ```ts
 * import { parseCredentials } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://room.test/v1/rooms/r?role=guest", {
 *   headers: { "Sec-WebSocket-Protocol": "mcp-webrtc.v1, mcp-webrtc.key.guest-key-0123456789" },
 * });
 * assert.deepEqual(parseCredentials(request), {
 *   role: "guest",
 *   key: "guest-key-0123456789",
 *   subprotocol: true,
 * });
 * const missing = parseCredentials(new Request("http://room.test/?role=guest"));
 * assert.equal("status" in missing && missing.status, 401);
 * ```
 */
export function parseCredentials(request: Request): Credentials | Refusal {
  const role = new URL(request.url).searchParams.get("role");
  if (role !== "host" && role !== "guest") {
    return refusal(400, "bad_role", 'The query parameter "role" must be "host" or "guest"');
  }
  const offered = (request.headers.get("Sec-WebSocket-Protocol") ?? "")
    .split(",").map((p) => p.trim()).filter((p) => p !== "");
  const fromProtocol = offered.filter((p) => p.startsWith(KEY_PREFIX))
    .map((p) => p.slice(KEY_PREFIX.length));
  const verifiers = offered.filter((p) => p.startsWith(VERIFIER_PREFIX))
    .map((p) => p.slice(VERIFIER_PREFIX.length));
  const authorization = request.headers.get("Authorization");
  const fromHeader = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const headerVerifier = request.headers.get("X-Guest-Verifier");
  if (offered.length > 0 && !offered.includes(PROTOCOL)) {
    return refusal(400, "bad_protocol", `Offer the WebSocket subprotocol "${PROTOCOL}"`);
  }
  if (authorization !== null && fromHeader === undefined) {
    return refusal(400, "bad_key", 'The Authorization header must read "Bearer <key>"');
  }
  const keys = fromHeader === undefined ? fromProtocol : [...fromProtocol, fromHeader];
  if (keys.length === 0) {
    return refusal(
      401,
      "key_missing",
      `Send the room key as the subprotocol "${KEY_PREFIX}<key>" or as "Authorization: Bearer <key>"`,
    );
  }
  if (keys.length > 1) {
    return refusal(400, "bad_key", "Send exactly one key, as a subprotocol or as a header");
  }
  const key = keys[0]!;
  if (!KEY.test(key)) {
    return refusal(400, "bad_key", "The key must be 16 to 128 base64url characters");
  }
  const allVerifiers = headerVerifier === null ? verifiers : [...verifiers, headerVerifier];
  if (role === "guest") {
    if (allVerifiers.length > 0) {
      return refusal(400, "bad_guest_verifier", "Only the host sends a guest verifier");
    }
    return { role, key, subprotocol: fromProtocol.length > 0 };
  }
  if (allVerifiers.length === 0) {
    return refusal(
      400,
      "guest_verifier_missing",
      `The host must send its guest verifier as the subprotocol "${VERIFIER_PREFIX}<verifier>" or the header "X-Guest-Verifier"`,
    );
  }
  const guestVerifier = allVerifiers[0]!;
  if (allVerifiers.length > 1 || !VERIFIER.test(guestVerifier)) {
    return refusal(
      400,
      "bad_guest_verifier",
      "Send exactly one guest verifier: the base64url SHA-256 of the guest key (43 characters)",
    );
  }
  return { role, key, guestVerifier, subprotocol: fromProtocol.length > 0 };
}

/**
 * Builds a {@linkcode Refusal}.
 *
 * @example A refusal
 * ```ts
 * import { refusal } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(refusal(404, "not_found", "Nothing here").status, 404);
 * ```
 */
export function refusal(status: number, code: string, message: string): Refusal {
  return { status, code, message };
}

/**
 * Answers a refusal as the JSON error body of every route.
 *
 * @example The body of an error
 * ```ts
 * import { errorResponse, refusal } from "./protocol.ts";
 * import assert from "node:assert/strict";
 *
 * const response = errorResponse(refusal(404, "not_found", "Nothing here"));
 * assert.equal(response.status, 404);
 * assert.deepEqual(await response.json(), { error: { code: "not_found", message: "Nothing here" } });
 * ```
 */
export function errorResponse({ status, code, message }: Refusal): Response {
  return Response.json({ error: { code, message } }, { status });
}

/** The answer to an exception nobody expected, in the routes or in a room. */
export const INTERNAL_ERROR: Refusal = refusal(
  500,
  "internal_error",
  "The signalling server failed: try again later",
);
