/**
 * The platform's floor for a signalling room, shared by the benchmarks: a
 * Durable Object per room that only stamps and relays frames (the room
 * protocol's `welcome`, `join`, `signal` and `leave`, nothing else), checks no
 * key and keeps no state of its own, with the storage writes a room keeping
 * verifiers would make, if asked.
 *
 * @module
 */

/**
 * What a floor writes besides relaying: nothing; a value and its alarm when
 * the host joins and an expiry and the alarm when the room empties (two
 * commits); or all of it once, when the room empties (one commit).
 */
export type FloorWrites = "none" | "two" | "one";

/**
 * The floor: a room that only stamps and relays, one Durable Object per room,
 * with the writes `writes` says.
 */
export const floorWorker = (writes: FloorWrites) => `
import { DurableObject } from "cloudflare:workers";
const WRITES = ${writes === "two"};
const ONE_WRITE = ${writes === "one"};
export class FloorRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // As a room answers a client's keepalive: by the runtime, without waking it.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }
  async alarm() {}
  async fetch(request) {
    const role = new URL(request.url).searchParams.get("role");
    if (WRITES && role === "host") {
      await this.ctx.storage.put("verifiers", { host: new Uint8Array(32) });
      await this.ctx.storage.setAlarm(Date.now() + 90_000);
    }
    const peer = role === "host" ? "host" : crypto.randomUUID().replaceAll("-", "").slice(0, 16);
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [peer]);
    server.serializeAttachment({ peer, role });
    const others = this.ctx.getWebSockets().filter((ws) =>
      ws !== server && ws.deserializeAttachment().role !== role
    );
    server.send(JSON.stringify({
      type: "welcome", peer, role, peers: others.map((ws) => ws.deserializeAttachment().peer),
    }));
    for (const ws of others) ws.send(JSON.stringify({ type: "join", peer }));
    return new Response(null, {
      status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": "mcp-webrtc.v1" },
    });
  }
  webSocketMessage(ws, message) {
    if (typeof message !== "string" || message[0] !== "{") return;
    const frame = JSON.parse(message);
    const { peer } = ws.deserializeAttachment();
    for (const target of this.ctx.getWebSockets(frame.to)) {
      target.send(JSON.stringify({ type: "signal", from: peer, data: frame.data }));
    }
  }
  async webSocketClose(ws, code, reason) {
    const { peer } = ws.deserializeAttachment();
    const others = this.ctx.getWebSockets().filter((other) => other !== ws);
    for (const other of others) other.send(JSON.stringify({ type: "leave", peer }));
    if (WRITES && others.length === 0) {
      await this.ctx.storage.put("expires", Date.now() + 86_400_000);
      await this.ctx.storage.setAlarm(Date.now() + 86_400_000);
    }
    if (ONE_WRITE && others.length === 0) {
      this.ctx.storage.put("verifiers", { host: new Uint8Array(32) });
      this.ctx.storage.put("expires", Date.now() + 86_400_000);
      await this.ctx.storage.setAlarm(Date.now() + 86_400_000);
    }
    ws.close(code >= 3000 && code <= 4999 ? code : 1000, reason);
  }
}
export default {
  fetch(request, env) {
    const room = /^\\/v1\\/rooms\\/([A-Za-z0-9_-]{22,128})$/.exec(new URL(request.url).pathname)?.[1];
    if (!room || request.headers.get("Upgrade") !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    return env.ROOMS.get(env.ROOMS.idFromName(room)).fetch(request);
  },
};
`;
