/**
 * What a room writes to its Durable Object's storage, seen through a worker
 * that wraps the real one: every write call the room makes (put, delete,
 * deleteAll, setAlarm, deleteAlarm) is recorded, and a test route lists the
 * room's keys, its alarm and those writes.
 */
import assert from "node:assert/strict";
import type { LocalSignaling } from "../local.ts";
import { newRoomId, pair, Peer, withServer } from "./_peer.ts";

/** The real worker, with the room's storage writes recorded and readable at `/__storage/<room>`. */
const OBSERVED_WORKER = `
import worker, { Room as RealRoom, TurnQuota } from "./worker.js";
export { TurnQuota };
const WRITES = new Set(["put", "delete", "deleteAll", "setAlarm", "deleteAlarm"]);
export class Room extends RealRoom {
  constructor(ctx, env) {
    const writes = [];
    const storage = new Proxy(ctx.storage, {
      get(target, key) {
        const value = target[key];
        if (typeof value !== "function") return value;
        return (...args) => {
          if (WRITES.has(key)) writes.push(typeof args[0] === "string" ? key + " " + args[0] : key);
          return value.apply(target, args);
        };
      },
    });
    super(ctx, env);
    const state = new Proxy(ctx, {
      get(target, key) {
        if (key === "storage") return storage;
        const value = target[key];
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    Object.defineProperty(this, "ctx", { value: state, configurable: true, writable: true });
    this.writes = writes;
  }
  async fetch(request) {
    if (new URL(request.url).pathname !== "/__storage") return super.fetch(request);
    const storage = this.ctx.storage;
    return Response.json({
      keys: [...(await storage.list()).keys()],
      alarm: await storage.getAlarm(),
      writes: this.writes,
    });
  }
}
export default {
  fetch(request, env, ctx) {
    const room = /^\\/__storage\\/(.+)$/.exec(new URL(request.url).pathname)?.[1];
    if (room) return env.ROOMS.get(env.ROOMS.idFromName(room)).fetch("https://room.internal/__storage");
    return worker.fetch(request, env, ctx);
  },
};
`;

interface Stored {
  keys: string[];
  alarm: number | null;
  writes: string[];
}

async function stored(server: LocalSignaling, room: string): Promise<Stored> {
  const response = await fetch(`${server.httpUrl}/__storage/${room}`);
  assert.equal(response.status, 200);
  return await response.json();
}

Deno.test("A refused join stores nothing: no key, no alarm", async () => {
  await withServer(
    async (server) => {
      const room = newRoomId();
      const guest = await Peer.guest(server, room);
      assert.equal((await guest.next() as Record<string, unknown>).code, "room_not_found");
      await guest.closed;
      assert.deepEqual(await stored(server, room), { keys: [], alarm: null, writes: [] });
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A pairing in a new room writes the verifiers once and the alarm once when the room empties", async () => {
  await withServer(
    async (server) => {
      const { room, host, guest, guestId } = await pair(server);
      const offer = { type: "offer", sdp: "v=0\r\n".repeat(200) };
      guest.signal("host", offer);
      assert.deepEqual(await host.next(), { type: "signal", from: guestId, data: offer });
      host.signal(guestId, { type: "answer", sdp: "v=0" });
      await guest.next();
      for (let i = 0; i < 10; i++) {
        guest.signal("host", { type: "candidate", i });
        host.signal(guestId, { type: "candidate", i });
      }
      for (let i = 0; i < 10; i++) await Promise.all([host.next(), guest.next()]);
      const joined = await stored(server, room);
      assert.deepEqual(joined.keys, ["verifiers"]);
      // The host's join sets the alarm for the first moment a socket could have fallen silent.
      assert.deepEqual(joined.writes, ["put verifiers", "setAlarm"]);
      await guest.close();
      await host.next(); // the guest's leave
      await host.close();
      const empty = await stored(server, room);
      assert.deepEqual(empty.writes.slice(2), ["put expires", "setAlarm"]);
      assert.deepEqual(empty.keys.sort(), ["expires", "verifiers"]);
      assert.ok(empty.alarm !== null && empty.alarm > Date.now() + 86_000_000);
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A host that comes back to its room writes nothing but the end of its expiry", async () => {
  await withServer(
    async (server) => {
      const room = newRoomId();
      const first = await Peer.host(server, room);
      await first.next();
      await first.close();
      const before = (await stored(server, room)).writes.length;
      const back = await Peer.host(server, room);
      await back.next();
      const guest = await Peer.guest(server, room);
      await guest.next();
      await back.next();
      assert.deepEqual((await stored(server, room)).writes.slice(before), [
        "delete expires",
        "setAlarm",
      ]);
      await guest.close();
      await back.next();
      await back.close();
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});
