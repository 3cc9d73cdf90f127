/**
 * The host's waiting hello through the local worker (Miniflare on
 * 127.0.0.1): a guest's sealed offer leaves on it before the host has sent
 * anything for that guest, a second copy of it binds nothing, and a room
 * that does not say it keeps one is never sent one.
 */
import assert from "node:assert/strict";
import { type LocalSignaling, startLocalSignaling } from "../../worker/local.ts";
import type { SignalingMessage } from "./signaling.ts";
import { keyVerifier } from "./room_protocol.ts";
import { createRoomId, createRoomKey, SignalingRoom } from "./signaling_room.ts";
import { AuthenticatedSignaling } from "./authenticated_signaling.ts";
import { AuthenticationError } from "../errors.ts";

const HOST_KEY = createRoomKey();
const GUEST_KEY = createRoomKey();
const GUEST_VERIFIER = await keyVerifier(GUEST_KEY);
const SEAL_KEY = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
  "sign",
  "verify",
]);

async function withServer(fn: (server: LocalSignaling, url: string) => Promise<void>) {
  const server = await startLocalSignaling({});
  try {
    await fn(server, `${server.url}/v1/rooms/${createRoomId()}`);
  } finally {
    await server.close();
  }
}

/** Resolves with the next peer that joins `room`. */
function nextJoin(room: SignalingRoom): Promise<string> {
  return new Promise((resolve) => (room.onpeerjoin = resolve));
}

/** A guest in the room with its sealed signalling to the host, started, and what it receives. */
async function sealedGuest(url: string) {
  const room = await SignalingRoom.join(url, { role: "guest", key: GUEST_KEY, reconnect: false });
  const signaling = new AuthenticatedSignaling(room.signaling("host"), {
    key: SEAL_KEY,
    role: "guest",
  });
  const received: SignalingMessage[] = [];
  const errors: Error[] = [];
  signaling.onmessage = (message) => received.push(message);
  signaling.onerror = (error) => errors.push(error);
  await signaling.start();
  return { room, signaling, received, errors };
}

/** A host in the room at `url` that left a prepared hello there (and the room took it). */
async function hostWithHello(url: string) {
  const host = await SignalingRoom.join(url, {
    role: "host",
    key: HOST_KEY,
    guestVerifier: GUEST_VERIFIER,
  });
  const hello = await AuthenticatedSignaling.prepareHello({ key: SEAL_KEY, role: "host" });
  assert.equal(host.leaveHello(hello.message), true);
  return { host, hello };
}

/** Waits until `check` holds, checking every 10 ms for at most 5 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), `Expected ${what} within 5 s`);
}

Deno.test("A guest's sealed offer leaves on the host's waiting hello, before the host sent anything for that guest", async () => {
  await withServer(async (_server, url) => {
    const { host, hello } = await hostWithHello(url);
    const joined = nextJoin(host);
    const guest = await sealedGuest(url);
    const peer = await joined;
    assert.equal(host.tookHello(peer), true);
    // The host has sent nothing on this guest's view, yet the offer is sealed
    // and handed to the room: it left on the waiting hello alone.
    await guest.signaling.send({ type: "offer", sdp: "v=0" });
    const view = host.signaling(peer);
    const sealed = new AuthenticatedSignaling(view, { key: SEAL_KEY, role: "host", hello });
    const offers: SignalingMessage[] = [];
    const errors: Error[] = [];
    sealed.onmessage = (message) => offers.push(message);
    sealed.onerror = (error) => errors.push(error);
    await sealed.start();
    await until(() => offers.length === 1, "the offer");
    assert.deepEqual(offers, [{ type: "offer", sdp: "v=0" }]);
    await sealed.send({ type: "answer", sdp: "v=0" });
    await until(() => guest.received.length === 1, "the answer");
    assert.deepEqual(guest.received, [{ type: "answer", sdp: "v=0" }]);
    assert.deepEqual([...errors, ...guest.errors], []);
    // One hello handed out: the next guest gets none, unless one is left again.
    assert.equal(host.tookHello("0123456789abcdef"), false);
    await guest.signaling.close();
    await guest.room.close();
    await host.close();
  });
});

Deno.test("A second copy of a waiting hello, handed to another guest later, binds nothing: that guest's offer is refused, then sent again to the nonce that answers it", async () => {
  await withServer(async (_server, url) => {
    const { host, hello } = await hostWithHello(url);
    let joined = nextJoin(host);
    const first = await sealedGuest(url);
    const firstPeer = await joined;
    const bound = new AuthenticatedSignaling(host.signaling(firstPeer), {
      key: SEAL_KEY,
      role: "host",
      hello,
    });
    const boundMessages: SignalingMessage[] = [];
    bound.onmessage = (message) => boundMessages.push(message);
    bound.onerror = () => {};
    await bound.start();
    await first.signaling.send({ type: "offer", sdp: "first" });
    await until(() => boundMessages.length === 1, "the first offer");
    // The same hello again (a faulty room, or a replay): another guest takes it.
    host.leaveHello(hello.message);
    joined = nextJoin(host);
    const second = await sealedGuest(url);
    const secondPeer = await joined;
    assert.equal(host.tookHello(secondPeer), true);
    const offer = second.signaling.send({ type: "offer", sdp: "second" });
    // The host serves it on a fresh nonce: the copy's offer names the prepared one.
    const fresh = new AuthenticatedSignaling(host.signaling(secondPeer), {
      key: SEAL_KEY,
      role: "host",
    });
    assert.throws(
      () =>
        new AuthenticatedSignaling(host.signaling(secondPeer), {
          key: SEAL_KEY,
          role: "host",
          hello,
        }),
      /already serves another connection/,
    );
    const freshMessages: SignalingMessage[] = [];
    const freshErrors: Error[] = [];
    fresh.onmessage = (message) => freshMessages.push(message);
    fresh.onerror = (error) => freshErrors.push(error);
    await fresh.start();
    await offer;
    await until(() => freshMessages.length === 1, "the second offer, sent again");
    assert.deepEqual(freshMessages, [{ type: "offer", sdp: "second" }]);
    assert.ok(
      freshErrors.some((error) =>
        error instanceof AuthenticationError &&
        /answers another connection's nonce/.test(error.message)
      ),
      freshErrors.map(String).join("\n"),
    );
    // The connection bound to the first guest saw nothing of the second.
    assert.deepEqual(boundMessages, [{ type: "offer", sdp: "first" }]);
    for (const end of [first, second]) {
      await end.signaling.close();
      await end.room.close();
    }
    await Promise.all([bound.close(), fresh.close()]);
    await host.close();
  });
});

Deno.test("SignalingRoom leaves no hello with a room whose welcome does not say it keeps one", async () => {
  const frames: Record<string, unknown>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mcp-webrtc.v1" });
    // A room of the previous version: no hello flag; a guest joins at once.
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "welcome", peer: "host", role: "host", peers: [] }));
      socket.send(JSON.stringify({ type: "join", peer: "0123456789abcdef", invite: "guest" }));
    };
    socket.onmessage = (event) => event.data !== "ping" && frames.push(JSON.parse(event.data));
    return response;
  });
  try {
    const host = await SignalingRoom.join(
      `ws://127.0.0.1:${server.addr.port}/v1/rooms/${createRoomId()}`,
      { role: "host", key: HOST_KEY, guestVerifier: GUEST_VERIFIER, reconnect: false, WebSocket },
    );
    const hello = await AuthenticatedSignaling.prepareHello({ key: SEAL_KEY, role: "host" });
    assert.equal(host.leaveHello(hello.message), false);
    await until(() => host.peers.length === 1, "the guest's join");
    assert.equal(host.tookHello("0123456789abcdef"), false);
    // A frame after the join: once it arrived, anything sent before it did too.
    await host.signaling("0123456789abcdef").send({ type: "last" });
    await until(() => frames.length > 0 && frames.at(-1)!.type === "signal", "the last frame");
    assert.deepEqual(frames.map((frame) => frame.type), ["signal"]);
    await host.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("A waiting hello for an invite the room does not hold is dropped without an error, and the host's own still waits for its guest", async () => {
  await withServer(async (_server, url) => {
    const host = await SignalingRoom.join(url, {
      role: "host",
      key: HOST_KEY,
      guestVerifier: GUEST_VERIFIER,
    });
    const errors: Error[] = [];
    host.onerror = (error) => errors.push(error);
    const stray = await AuthenticatedSignaling.prepareHello({ key: SEAL_KEY, role: "host" });
    assert.equal(host.leaveHello(stray.message, "nobody"), true);
    const own = await AuthenticatedSignaling.prepareHello({ key: SEAL_KEY, role: "host" });
    assert.equal(host.leaveHello(own.message), true);
    // The room answers the host's frames in order: the refusal comes before this join.
    const joined = nextJoin(host);
    const guest = await sealedGuest(url);
    const peer = await joined;
    assert.equal(host.tookHello(peer), true);
    assert.deepEqual(errors, []);
    await guest.signaling.close();
    await guest.room.close();
    await host.close();
  });
});
