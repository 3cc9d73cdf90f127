/// <reference types="@cloudflare/workers-types" />
/**
 * The signalling worker: `GET /health`, and `GET /v1/rooms/:room`, which
 * upgrades to a WebSocket on the room's Durable Object. Requests that are
 * wrong whatever the room holds are answered here, without waking a room.
 * The room protocol in docs/PROTOCOL.md is the reference.
 *
 * @module
 */
import { Hono } from "hono";
import { roomIdOf } from "../../src/signaling/room_protocol.ts";
import {
  ADDRESS,
  errorResponse,
  INTERNAL_ERROR,
  type Join,
  JOIN_HEADER,
  parseCredentials,
  refusal,
} from "./requests.ts";
import type { Env } from "./room.ts";

export { Room } from "./room.ts";
export { TurnQuota } from "./turn_quota.ts";

/**
 * The Hono app, the worker's default export.
 *
 * @example Ask a running worker whether it is up
 * ```ts ignore
 * const response = await fetch("http://127.0.0.1:8787/health");
 * console.log(await response.json()); // { ok: true }
 * ```
 */
const app: Hono<{ Bindings: Env }> = new Hono<{ Bindings: Env }>();

app.get("/health", (c) => c.json({ ok: true }));

app.on(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"], "/v1/rooms/:room", (c) => {
  // Hono routes HEAD to GET: a room is only ever reached with a GET.
  if (c.req.method !== "GET") {
    return errorResponse(
      refusal(
        405,
        "method_not_allowed",
        `A room only answers GET, not ${c.req.method}: connect with a WebSocket client`,
      ),
      { Allow: "GET" },
    );
  }
  // The id is read from the path as sent, never as decoded, so one room has one name.
  const room = roomIdOf(c.req.url);
  if (room === undefined) {
    return errorResponse(refusal(
      400,
      "bad_room_id",
      "The room id must be 22 to 128 base64url characters (at least 128 random bits), written as is: no percent-escapes",
    ));
  }
  const credentials = parseCredentials(c.req.raw);
  if (!("key" in credentials)) return errorResponse(credentials);
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    return errorResponse(refusal(
      426,
      "upgrade_required",
      "This route only speaks WebSocket: connect with a WebSocket client",
    ));
  }
  // The room gets the checked join and nothing of the client's request.
  // The address is the edge's (Cloudflare sets the header on every request).
  const address = c.req.header("CF-Connecting-IP")?.trim();
  const join: Join = {
    room,
    ...credentials,
    ...address !== undefined && ADDRESS.test(address) && { address },
  };
  const rooms = c.env.ROOMS;
  return rooms.get(rooms.idFromName(room)).fetch("https://room.internal/join", {
    headers: { Upgrade: "websocket", [JOIN_HEADER]: JSON.stringify(join) },
  });
});

app.notFound(() =>
  errorResponse(refusal(
    404,
    "not_found",
    "There is nothing here: rooms are at GET /v1/rooms/<room id>",
  ))
);

app.onError((error) => {
  console.error("Signalling worker failed:", error);
  return errorResponse(INTERNAL_ERROR);
});

export default app;
