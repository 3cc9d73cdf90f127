/**
 * What a room writes to its Durable Object's storage, seen through a worker
 * that wraps the real one: every write call the room makes (put, delete,
 * deleteAll, setAlarm, deleteAlarm) is recorded, grouped by what was issued
 * without an await in between (what the runtime writes as one commit), and a
 * test route lists the room's keys, its alarm and those writes.
 */
import assert from "node:assert/strict";
import type { LocalSignaling } from "../local.ts";
import { sendUpgrade } from "./_raw_socket.ts";
import {
  GUEST_KEY,
  GUEST_VERIFIER,
  hibernate,
  HOST_KEY,
  newRoomId,
  OTHER_KEY,
  pair,
  pairedRoom,
  Peer,
  verifierOf,
  withServer,
} from "./_peer.ts";

/**
 * The real worker, with the room's storage writes recorded and readable at
 * \`/__storage/<room>\`; \`?commits=N\` answers once N groups of writes were made
 * since the object started (or after 10 s). The var \`TEST_SETUP_WRITE_DELAY_MS\`
 * sets the room's delay before it writes what a join changed.
 */
const OBSERVED_WORKER = `
import worker, { Room as RealRoom, TurnQuota } from "./worker.js";
export { TurnQuota };
const WRITES = new Set(["put", "delete", "deleteAll", "setAlarm", "deleteAlarm"]);
export class Room extends RealRoom {
  constructor(ctx, env) {
    const commits = [];
    let open = null;
    let waiting = [];
    const storage = new Proxy(ctx.storage, {
      get(target, key) {
        const value = target[key];
        if (typeof value !== "function") return value;
        return (...args) => {
          if (WRITES.has(key)) {
            const write = typeof args[0] === "string" ? key + " " + args[0] : key;
            if (open) open.push(write);
            else {
              open = [write];
              commits.push(open);
              queueMicrotask(() => {
                open = null;
                for (const wake of waiting) wake();
              });
            }
          }
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
    if (env.TEST_SETUP_WRITE_DELAY_MS) this.setupWriteDelayMs = Number(env.TEST_SETUP_WRITE_DELAY_MS);
    this.commits = commits;
    this.until = (count) => new Promise((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      const check = () => {
        if (commits.length < count || open) return;
        clearTimeout(timer);
        resolve();
      };
      waiting.push(check);
      check();
    });
  }
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname !== "/__storage") return super.fetch(request);
    await this.until(Number(url.searchParams.get("commits") ?? 0));
    const storage = this.ctx.storage;
    return Response.json({
      keys: [...(await storage.list()).keys()],
      alarm: await storage.getAlarm(),
      commits: this.commits,
    });
  }
}
export default {
  fetch(request, env, ctx) {
    const url = new URL(request.url);
    const room = /^\\/__storage\\/(.+)$/.exec(url.pathname)?.[1];
    if (room) {
      return env.ROOMS.get(env.ROOMS.idFromName(room))
        .fetch("https://room.internal/__storage" + url.search);
    }
    return worker.fetch(request, env, ctx);
  },
};
`;

interface Stored {
  keys: string[];
  alarm: number | null;
  /** The writes since the object started, each group issued without an await in between. */
  commits: string[][];
}

/** The room's storage, once it made `commits` groups of writes since its object started. */
async function stored(server: LocalSignaling, room: string, commits = 0): Promise<Stored> {
  const response = await fetch(`${server.httpUrl}/__storage/${room}?commits=${commits}`);
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
      assert.deepEqual(await stored(server, room), { keys: [], alarm: null, commits: [] });
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

/** A pairing's traffic: an offer, an answer and 10 candidates each way. */
async function signal(host: Peer, guest: Peer, guestId: string): Promise<void> {
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
}

Deno.test("A new-room pairing writes nothing while it lasts, and once when it empties: verifiers, expiry and alarm in one commit", async () => {
  await withServer(
    async (server) => {
      const { room, host, guest, guestId } = await pair(server);
      await signal(host, guest, guestId);
      // Within the minute this room waits before it writes what a join changed.
      assert.deepEqual(await stored(server, room), { keys: [], alarm: null, commits: [] });
      await guest.close();
      await host.next(); // the guest's leave
      await host.close();
      const empty = await stored(server, room, 1);
      assert.deepEqual(empty.commits, [["put verifiers", "put expires", "setAlarm"]]);
      assert.deepEqual(empty.keys.sort(), ["expires", "verifiers"]);
      assert.ok(empty.alarm !== null && empty.alarm > Date.now() + 86_000_000);
    },
    { TEST_SETUP_WRITE_DELAY_MS: "60000" },
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A room whose sockets stay open writes once soon after the join: the verifiers and the alarm for silent sockets", async () => {
  await withServer(
    async (server) => {
      const { room, host, guest, guestId } = await pair(server);
      await signal(host, guest, guestId);
      // SILENCE_SECONDS 2: the room writes 1 s after the join (half the silence limit).
      const open = await stored(server, room, 1);
      assert.deepEqual(open.commits, [["put verifiers", "setAlarm"]]);
      assert.deepEqual(open.keys, ["verifiers"]);
      assert.ok(open.alarm !== null && open.alarm <= Date.now() + 2_000);
      await guest.close();
      await host.next(); // the guest's leave
      await host.close();
      const empty = await stored(server, room, 2);
      assert.deepEqual(empty.commits[1], ["put expires", "setAlarm"]);
    },
    { SILENCE_SECONDS: "2" },
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A host that comes back to its room writes nothing but the end of its expiry, in one commit", async () => {
  await withServer(
    async (server) => {
      const room = newRoomId();
      const first = await Peer.host(server, room);
      await first.next();
      await first.close();
      assert.deepEqual((await stored(server, room, 1)).commits, [[
        "put verifiers",
        "put expires",
        "setAlarm",
      ]]);
      const back = await Peer.host(server, room);
      await back.next();
      const guest = await Peer.guest(server, room);
      await guest.next();
      await back.next();
      assert.deepEqual((await stored(server, room, 2)).commits.slice(1), [[
        "delete expires",
        "setAlarm",
      ]]);
      await guest.close();
      await back.next();
      await back.close();
    },
    { SILENCE_SECONDS: "2" },
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A room asked to hibernate before it wrote its verifiers still enforces them: the pending write holds it in memory until done", async () => {
  await withServer(
    async (server) => {
      const room = newRoomId();
      const host = await Peer.host(server, room);
      await host.next();
      await hibernate(server, room);
      const stranger = await Peer.guest(server, room, OTHER_KEY);
      assert.equal((await stranger.next() as Record<string, unknown>).code, "key_refused");
      await stranger.closed;
      const guest = await Peer.guest(server, room, GUEST_KEY);
      const welcome = await guest.next() as Record<string, unknown>;
      assert.equal(welcome.type, "welcome");
      assert.deepEqual(welcome.peers, ["host"]);
      assert.deepEqual(await host.next(), { type: "join", peer: welcome.peer, invite: "guest" });
      // The runtime let the object go only once its timer had written them.
      assert.deepEqual((await stored(server, room)).keys, ["verifiers"]);
      await guest.close();
      await host.next(); // the guest's leave
      await host.close();
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("An invite revoked before the room wrote its verifiers stays revoked after a hibernation", async () => {
  await withServer(
    async (server) => {
      const room = newRoomId();
      const host = await Peer.host(server, room);
      await host.next();
      host.send({ type: "revoke", name: "guest" });
      assert.deepEqual(await host.next(), { type: "revoked", name: "guest", closed: 0 });
      await hibernate(server, room);
      const guest = await Peer.guest(server, room, GUEST_KEY);
      assert.equal((await guest.next() as Record<string, unknown>).code, "key_refused");
      await guest.closed;
      await host.close();
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A paired room (a version 2 ticket's) stores nothing for a pairing, nor when it empties", async () => {
  await withServer(
    async (server) => {
      const { room, hostKey, guestKey, hostVerifier, guestVerifier } = await pairedRoom();
      const host = await Peer.host(server, room, hostKey, guestVerifier);
      assert.equal((await host.next() as Record<string, unknown>).type, "welcome");
      const guest = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      const welcome = await guest.next() as Record<string, unknown>;
      assert.equal(welcome.type, "welcome");
      assert.deepEqual(await host.next(), { type: "join", peer: welcome.peer, invite: "guest" });
      await signal(host, guest, welcome.peer as string);
      await guest.close();
      await host.next(); // the guest's leave
      // The room closes back once it has handled the close: nothing is left to write.
      await host.close();
      assert.deepEqual(await stored(server, room), { keys: [], alarm: null, commits: [] });
    },
    { TEST_SETUP_WRITE_DELAY_MS: "60000" },
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A paired room admits its ticket's guest by the room id alone, before any host came, and refuses a wrong key or host verifier", async () => {
  await withServer(
    async (server) => {
      const { room, hostKey, guestKey, hostVerifier, guestVerifier } = await pairedRoom();
      const refused = async (key: string, options: { hostVerifier?: string }) => {
        const peer = await Peer.open(server, room, "guest", key, options);
        const code = (await peer.next() as Record<string, unknown>).code;
        await peer.close();
        return code;
      };
      // With nothing stored the room cannot tell a wrong key from an invite's
      // whose host has not set the room up: it says the room is not set up.
      assert.equal(await refused(OTHER_KEY, { hostVerifier }), "room_not_found");
      assert.equal(await refused(guestKey, { hostVerifier: guestVerifier }), "room_not_found");
      assert.equal(await refused(guestKey, {}), "room_not_found");
      // The host's key in the guest's place is refused too.
      assert.equal(await refused(hostKey, { hostVerifier }), "room_not_found");
      const guest = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      const welcome = await guest.next() as Record<string, unknown>;
      assert.equal(welcome.type, "welcome");
      assert.deepEqual(welcome.peers, []);
      // A host whose guest verifier does not make the room id cannot open it.
      const stranger = await Peer.host(server, room, hostKey, await verifierOf(OTHER_KEY));
      assert.equal((await stranger.next() as Record<string, unknown>).code, "key_refused");
      await stranger.close();
      const host = await Peer.host(server, room, hostKey, guestVerifier);
      assert.deepEqual((await host.next() as Record<string, unknown>).peers, [welcome.peer]);
      assert.deepEqual(await guest.next(), { type: "join", peer: "host" });
      await guest.close();
      await host.next(); // the guest's leave
      await host.close();
      assert.deepEqual((await stored(server, room)).keys, []);
    },
    { TEST_SETUP_WRITE_DELAY_MS: "60000" },
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A paired room's host can still invite and revoke after a hibernation; a revoked ticket guest stays refused", async () => {
  await withServer(
    async (server) => {
      const { room, hostKey, guestKey, hostVerifier, guestVerifier } = await pairedRoom();
      const host = await Peer.host(server, room, hostKey, guestVerifier);
      await host.next();
      await hibernate(server, room);
      host.send({ type: "invite", name: "laptop", verifier: await verifierOf(OTHER_KEY) });
      assert.deepEqual(await host.next(), { type: "invited", name: "laptop" });
      host.send({ type: "revoke", name: "guest" });
      assert.deepEqual(await host.next(), { type: "revoked", name: "guest", closed: 0 });
      await hibernate(server, room);
      const guest = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      assert.equal((await guest.next() as Record<string, unknown>).code, "key_refused");
      await guest.closed;
      const laptop = await Peer.open(server, room, "guest", OTHER_KEY, { hostVerifier });
      assert.equal((await laptop.next() as Record<string, unknown>).type, "welcome");
      assert.equal((await host.next() as Record<string, unknown>).invite, "laptop");
      assert.deepEqual((await stored(server, room)).keys, ["verifiers"]);
      await laptop.close();
      await host.next(); // the laptop's leave
      await host.close();
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A room id of 43 characters that is no digest's base64url can be opened by nobody", async () => {
  await withServer(
    async (server) => {
      // The last character carries bits no 32-byte digest has.
      const room = "A".repeat(42) + "B";
      const host = await Peer.host(server, room, OTHER_KEY, await verifierOf(GUEST_KEY));
      assert.equal((await host.next() as Record<string, unknown>).code, "key_refused");
      await host.close();
      assert.deepEqual(await stored(server, room), { keys: [], alarm: null, commits: [] });
    },
    undefined,
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A paired room's host that joins invites-only refuses its ticket's guest (stored, once), ends those waiting, and a later host join admits it again", async () => {
  await withServer(
    async (server) => {
      const { room, hostKey, guestKey, hostVerifier, guestVerifier } = await pairedRoom();
      // The ticket's guest waits in the room, admitted by its id alone.
      const waiting = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      assert.equal((await waiting.next() as Record<string, unknown>).type, "welcome");
      const host = await Peer.open(server, room, "host", hostKey, {
        verifier: guestVerifier,
        invitesOnly: true,
      });
      assert.deepEqual((await host.next() as Record<string, unknown>).peers, []);
      assert.equal((await waiting.next() as Record<string, unknown>).code, "revoked");
      await waiting.close();
      const refused = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      assert.equal((await refused.next() as Record<string, unknown>).code, "key_refused");
      await refused.close();
      // The refusal outlives the host's socket and the object's memory.
      await host.close();
      // Written at once with the alarm that closes the ended guest, then the expiry.
      const empty = await stored(server, room, 2);
      assert.deepEqual(empty.commits, [["put verifiers", "setAlarm"], ["put expires", "setAlarm"]]);
      await hibernate(server, room);
      const still = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      assert.equal((await still.next() as Record<string, unknown>).code, "key_refused");
      await still.close();
      // A host that serves its ticket's guest again says so by joining without it.
      const back = await Peer.host(server, room, hostKey, guestVerifier);
      await back.next();
      const admitted = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      assert.equal((await admitted.next() as Record<string, unknown>).type, "welcome");
      await admitted.close();
      await back.next(); // the join
      await back.next(); // the leave
      await back.close();
    },
    { TEST_SETUP_WRITE_DELAY_MS: "60000" },
    { entry: OBSERVED_WORKER },
  );
});

Deno.test("A room whose last member leaves while its ice_servers request waits for the address's quota still expires: the TURN bucket it then stores has an alarm to go with", async () => {
  // The quota object answered late, as one in another location would: the
  // member's close comes while the room waits for it.
  const slowQuota = `
function slowQuotas(env) {
  const quotas = env.TURN_QUOTAS;
  return { ...env, TURN_QUOTAS: {
    idFromName: (name) => quotas.idFromName(name),
    get: (id) => {
      const stub = quotas.get(id);
      return {
        take: async (...args) => {
          await new Promise((resolve) => setTimeout(resolve, 300));
          return stub.take(...args);
        },
      };
    },
  } };
}
`;
  const entry = OBSERVED_WORKER.replace("super(ctx, env);", "super(ctx, slowQuotas(env));") +
    slowQuota;
  assert.notEqual(entry, OBSERVED_WORKER + slowQuota, "the worker's constructor was patched");
  await withServer(
    async (server) => {
      const { room, guestKey, hostVerifier } = await pairedRoom();
      const guest = await Peer.open(server, room, "guest", guestKey, { hostVerifier });
      assert.equal((await guest.next() as Record<string, unknown>).type, "welcome");
      guest.send({ type: "ice_servers", id: 1 });
      await guest.close();
      // The bucket is written once the quota answers, and the room's expiry with it or before.
      const after = await stored(server, room, 2);
      assert.ok(after.keys.includes("turn"), JSON.stringify(after));
      assert.notEqual(
        after.alarm,
        null,
        `an alarm deletes what was stored: ${JSON.stringify(after)}`,
      );
    },
    { TURN_SECRET: "secret", TURN_URLS: "turn:127.0.0.1:3478" },
    { entry },
  );
});

Deno.test("A room whose last member never answers the room's close (its TCP connection left open) still expires, and forgets what it stored", async () => {
  await withServer(
    async (server) => {
      const room = newRoomId();
      // A host that never reads: it falls silent, and the room's close frame gets no answer.
      const host = await sendUpgrade(server.httpUrl, `GET /v1/rooms/${room}?role=host HTTP/1.1`, [
        "mcp-webrtc.v1",
        `mcp-webrtc.key.${HOST_KEY}`,
        `mcp-webrtc.guest-verifier.${GUEST_VERIFIER}`,
      ]);
      try {
        // Silent after 1 s, closed by the room 2 s later, expired 2 s after that.
        const since = Date.now();
        let now = await stored(server, room);
        while (now.keys.length > 0 || now.commits.length === 0) {
          assert.ok(Date.now() - since < 20_000, `the room is forgotten: ${JSON.stringify(now)}`);
          await new Promise((resolve) => setTimeout(resolve, 250));
          now = await stored(server, room);
        }
        assert.deepEqual(now.commits.at(-1), ["deleteAll"]);
      } finally {
        host.close();
      }
    },
    { SILENCE_SECONDS: "1", ROOM_TTL_SECONDS: "2" },
    { entry: OBSERVED_WORKER },
  );
});
