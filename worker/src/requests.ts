/**
 * What the worker reads from a join request and answers over HTTP: the
 * credentials a client presents, the join it hands to a room, and the JSON
 * error of every route. The names and patterns are the room protocol's
 * (`src/signaling/room_protocol.ts`); the room protocol in docs/PROTOCOL.md is the prose.
 *
 * @module
 */
import {
  HOST_VERIFIER_PREFIX,
  INVITES_ONLY,
  KEY,
  KEY_PREFIX,
  PROTOCOL,
  type Role,
  ROOM_ID,
  VERIFIER,
  VERIFIER_PREFIX,
} from "../../src/signaling/room_protocol.ts";

/** What a client presented to join a room, checked for shape only. */
export interface Credentials {
  /** The role asked for in `?role=`. */
  role: Role;
  /** The opaque key. */
  key: string;
  /** The host's guest verifier (hosts only). */
  guestVerifier?: string;
  /** A guest's host verifier, from a version 2 ticket (guests only, optional). */
  hostVerifier?: string;
  /** A host's: its join admits no guest with its guest verifier (`INVITES_ONLY`). */
  invitesOnly?: boolean;
  /** Whether the key came as a subprotocol, so the answer must name one. */
  subprotocol: boolean;
}

/**
 * What the worker hands to a room: who asks to join which room, checked once
 * at the edge. The room reads nothing else of the client's request.
 */
export interface Join extends Credentials {
  /** The canonical room id (see `roomIdOf`). */
  room: string;
  /**
   * The client's address as the edge saw it (`CF-Connecting-IP`), for the
   * limits per address; absent if the request carried none.
   */
  address?: string;
}

/** An address as `CF-Connecting-IP` writes it: IPv4 or IPv6, at most 45 characters. */
export const ADDRESS = /^[0-9A-Fa-f.:]{2,45}$/;

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
 * import { readJoin } from "./requests.ts";
 * import assert from "node:assert/strict";
 *
 * const join = { room: "Nq3RkWmvh0VrKz2Hd7yXbA", role: "guest", key: "guest-key-0123456789", subprotocol: true, address: "192.0.2.7" };
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
  if (typeof value !== "object" || value === null) return undefined;
  const { room, role, key, guestVerifier, hostVerifier, invitesOnly, subprotocol, address } =
    value as Record<string, unknown>;
  if (
    typeof room !== "string" || !ROOM_ID.test(room) ||
    (role !== "host" && role !== "guest") ||
    typeof key !== "string" || !KEY.test(key) ||
    typeof subprotocol !== "boolean" ||
    (address !== undefined && (typeof address !== "string" || !ADDRESS.test(address))) ||
    (role === "host"
      ? typeof guestVerifier !== "string" || !VERIFIER.test(guestVerifier) ||
        hostVerifier !== undefined || (invitesOnly !== undefined && invitesOnly !== true)
      : guestVerifier !== undefined || invitesOnly !== undefined ||
        (hostVerifier !== undefined &&
          (typeof hostVerifier !== "string" || !VERIFIER.test(hostVerifier))))
  ) return undefined;
  const from = typeof address === "string" ? { address } : {};
  return role === "host"
    ? {
      room,
      role,
      key,
      guestVerifier: guestVerifier as string,
      ...invitesOnly === true && { invitesOnly },
      subprotocol,
      ...from,
    }
    : {
      room,
      role,
      key,
      ...typeof hostVerifier === "string" && { hostVerifier },
      subprotocol,
      ...from,
    };
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
 * Reads role, key and the verifier (a host's guest verifier, a guest's host
 * verifier) from a request and checks their shape.
 *
 * @returns The credentials, or the refusal to answer with.
 *
 * @example A guest's key in the subprotocol
 * ```ts
 * import { parseCredentials } from "./requests.ts";
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
  const hostVerifiers = offered.filter((p) => p.startsWith(HOST_VERIFIER_PREFIX))
    .map((p) => p.slice(HOST_VERIFIER_PREFIX.length));
  const headerHostVerifier = request.headers.get("X-Host-Verifier");
  if (headerHostVerifier !== null) hostVerifiers.push(headerHostVerifier);
  const invitesOnly = offered.includes(INVITES_ONLY) ||
    request.headers.get("X-Invites-Only") === "true";
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
    if (invitesOnly) {
      return refusal(400, "bad_role", `Only the host joins "${INVITES_ONLY}"`);
    }
    const hostVerifier = hostVerifiers[0];
    if (hostVerifiers.length > 1 || (hostVerifier !== undefined && !VERIFIER.test(hostVerifier))) {
      return refusal(
        400,
        "bad_host_verifier",
        `Send at most one host verifier, as the subprotocol "${HOST_VERIFIER_PREFIX}<verifier>" or the header "X-Host-Verifier": the ticket's, 43 base64url characters`,
      );
    }
    return {
      role,
      key,
      ...hostVerifier !== undefined && { hostVerifier },
      subprotocol: fromProtocol.length > 0,
    };
  }
  if (hostVerifiers.length > 0) {
    return refusal(400, "bad_host_verifier", "Only a guest sends a host verifier");
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
  return {
    role,
    key,
    guestVerifier,
    ...invitesOnly && { invitesOnly },
    subprotocol: fromProtocol.length > 0,
  };
}

/**
 * Builds a {@linkcode Refusal}.
 *
 * @example A refusal
 * ```ts
 * import { refusal } from "./requests.ts";
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
 * import { errorResponse, refusal } from "./requests.ts";
 * import assert from "node:assert/strict";
 *
 * const response = errorResponse(refusal(404, "not_found", "Nothing here"));
 * assert.equal(response.status, 404);
 * assert.deepEqual(await response.json(), { error: { code: "not_found", message: "Nothing here" } });
 * ```
 */
export function errorResponse(
  { status, code, message }: Refusal,
  headers?: Record<string, string>,
): Response {
  return Response.json({ error: { code, message } }, { status, headers });
}

/** The answer to an exception nobody expected, in the routes or in a room. */
export const INTERNAL_ERROR: Refusal = refusal(
  500,
  "internal_error",
  "The signalling server failed: try again later",
);
