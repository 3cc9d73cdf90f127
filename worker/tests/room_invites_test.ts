/**
 * Invites, end to end against the worker in Miniflare on 127.0.0.1: the host
 * adds and revokes named guest keys over its own socket, guests join with
 * them, and the room closes the sockets of a revoked invite.
 */
import assert from "node:assert/strict";
import { MAX_INVITES } from "../../src/signaling/room_protocol.ts";
import {
  GUEST_KEY,
  hibernate,
  HOST_KEY,
  newRoomId,
  pair,
  Peer,
  verifierOf,
  withServer,
} from "./_peer.ts";

const ALICE_KEY = "alice-key-00000000000";
const BOB_KEY = "bob-key-0000000000000";
const ALICE = await verifierOf(ALICE_KEY);
const BOB = await verifierOf(BOB_KEY);

type Frame = Record<string, unknown>;

/** Sends the host's invite and returns the room's answer. */
async function invite(host: Peer, name: string, verifier: string, id?: number): Promise<Frame> {
  host.send({ type: "invite", name, verifier, ...id !== undefined && { id } });
  return await host.next() as Frame;
}

/** A guest that joined with `key`, past its welcome; the host's join frame is returned too. */
async function join(
  server: Parameters<typeof Peer.guest>[0],
  room: string,
  host: Peer,
  key: string,
) {
  const guest = await Peer.guest(server, room, key);
  const welcome = await guest.next() as Frame;
  assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
  return { guest, id: welcome.peer as string, joined: await host.next() as Frame };
}

/** Expects a join refused with `code` and its close code. */
async function refused(peer: Peer, code: string, closeCode: number): Promise<void> {
  assert.equal((await peer.next() as Frame).code, code);
  const closed = await peer.closed;
  assert.equal(closed.code, closeCode);
  assert.equal(closed.reason, code);
}

Deno.test("Room admits a guest with an invite the host added, and names the invite to the host", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    assert.deepEqual(await invite(host, "alice", ALICE, 1), {
      type: "invited",
      name: "alice",
      ref: 1,
    });
    const alice = await join(server, room, host, ALICE_KEY);
    assert.deepEqual(alice.joined, { type: "join", peer: alice.id, invite: "alice" });
    alice.guest.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), {
      type: "signal",
      from: alice.id,
      data: { type: "offer" },
    });
    // Sent again, the same invite is answered the same and changes nothing.
    assert.deepEqual(await invite(host, "alice", ALICE), { type: "invited", name: "alice" });
    // The guest of the host's join is the invite named "guest".
    guest.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), { type: "signal", from: guestId, data: { type: "offer" } });
    await refused(await Peer.guest(server, room, BOB_KEY), "key_refused", 4403);
    await alice.guest.nothing(0);
    await Promise.all([guest.close(), alice.guest.close()]);
    await host.close();
  });
});

Deno.test("Room closes every socket of a revoked invite, refuses its key, and leaves the others alone", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    await invite(host, "alice", ALICE);
    await invite(host, "bob", BOB);
    const first = await join(server, room, host, ALICE_KEY);
    const second = await join(server, room, host, ALICE_KEY);
    const bob = await join(server, room, host, BOB_KEY);
    assert.equal(bob.joined.invite, "bob");
    host.send({ type: "revoke", name: "alice", id: "r" });
    const leaves = [await host.next(), await host.next()];
    assert.deepEqual(
      new Set(leaves),
      new Set([{ type: "leave", peer: first.id }, { type: "leave", peer: second.id }]),
    );
    assert.deepEqual(await host.next(), { type: "revoked", name: "alice", closed: 2, ref: "r" });
    for (const { guest } of [first, second]) {
      const error = await guest.next() as Frame;
      assert.equal(error.code, "revoked");
      assert.equal(error.message, "The host revoked this invite: ask the host for a new ticket");
      await guest.close();
    }
    await refused(await Peer.guest(server, room, ALICE_KEY), "key_refused", 4403);
    // Bob and the ticket's guest go on undisturbed.
    bob.guest.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), { type: "signal", from: bob.id, data: { type: "offer" } });
    host.signal(guestId, { type: "answer" });
    assert.deepEqual(await guest.next(), {
      type: "signal",
      from: "host",
      data: { type: "answer" },
    });
    await bob.guest.nothing(0);
    // A revoked invite is gone: revoking it again names the error; it may be added anew.
    host.send({ type: "revoke", name: "alice", id: 5 });
    const error = await host.next() as Frame;
    assert.equal(error.code, "invite_not_found");
    assert.equal(error.ref, 5);
    assert.deepEqual(await invite(host, "alice", ALICE), { type: "invited", name: "alice" });
    const back = await join(server, room, host, ALICE_KEY);
    assert.equal(back.joined.invite, "alice");
    await Promise.all([guest.close(), bob.guest.close(), back.guest.close()]);
    await host.close();
  });
});

Deno.test("Room closes a revoked guest that does not close itself", async () => {
  await withServer(async (server) => {
    const { room, host, guest } = await pair(server);
    await invite(host, "alice", ALICE);
    const alice = await join(server, room, host, ALICE_KEY);
    host.send({ type: "revoke", name: "alice" });
    assert.deepEqual(await host.next(), { type: "leave", peer: alice.id });
    assert.deepEqual(await host.next(), { type: "revoked", name: "alice", closed: 1 });
    assert.equal((await alice.guest.next() as Frame).code, "revoked");
    // The client does not close: the room does, after its grace period.
    const closed = await alice.guest.closed;
    assert.equal(closed.code, 4410);
    assert.equal(closed.reason, "revoked");
    await guest.close();
    await host.close();
  });
});

Deno.test("Room takes invite and revoke frames from the host only, and checks them", async () => {
  await withServer(async (server) => {
    const { room, host, guest } = await pair(server);
    const cases: [Peer, unknown, string][] = [
      [guest, { type: "invite", name: "mine", verifier: ALICE, id: 1 }, "host_only"],
      [guest, { type: "revoke", name: "guest", id: 1 }, "host_only"],
      [host, { type: "invite", name: "", verifier: ALICE, id: 1 }, "bad_invite_name"],
      [host, { type: "invite", name: "a b", verifier: ALICE, id: 1 }, "bad_invite_name"],
      [host, { type: "invite", name: "x".repeat(65), verifier: ALICE, id: 1 }, "bad_invite_name"],
      [host, { type: "invite", verifier: ALICE, id: 1 }, "bad_invite_name"],
      [host, { type: "invite", name: "alice", verifier: "short", id: 1 }, "bad_verifier"],
      [host, { type: "invite", name: "alice", id: 1 }, "bad_verifier"],
      [host, { type: "revoke", name: 3, id: 1 }, "bad_invite_name"],
      [host, { type: "revoke", name: "nobody", id: 1 }, "invite_not_found"],
    ];
    for (const [peer, frame, code] of cases) {
      peer.send(frame);
      const error = await peer.next() as Frame;
      assert.deepEqual(
        { type: error.type, code: error.code, ref: error.ref },
        { type: "error", code, ref: 1 },
        JSON.stringify(frame),
      );
      assert.match(error.message as string, /^[A-Z].*[^.]$/);
    }
    // The guest's attempt changed nothing: its key still gets in, the one it named does not.
    await refused(await Peer.guest(server, room, ALICE_KEY), "key_refused", 4403);
    await guest.close();
    await host.next();
    await host.close();
  });
});

Deno.test(`Room holds at most MAX_INVITES (${MAX_INVITES}) invites, one kept for "guest"`, async () => {
  await withServer(async (server) => {
    const { room, host, guest } = await pair(server);
    for (let i = 1; i < MAX_INVITES; i++) {
      assert.equal((await invite(host, `agent-${i}`, ALICE)).type, "invited");
    }
    const error = await invite(host, "one-more", BOB, 9);
    assert.equal(error.code, "too_many_invites");
    assert.equal(error.ref, 9);
    assert.match(error.message as string, new RegExp(`MAX_INVITES, ${MAX_INVITES}`));
    // Replacing one that exists, "guest" included, is still fine.
    assert.equal((await invite(host, "agent-1", BOB)).type, "invited");
    assert.equal((await invite(host, "guest", await verifierOf(GUEST_KEY))).type, "invited");
    const bob = await join(server, room, host, BOB_KEY);
    assert.equal(bob.joined.invite, "agent-1");
    // The slot kept for "guest": revoked, the host's next join sets it again.
    host.send({ type: "revoke", name: "guest" });
    assert.equal((await host.next() as Frame).type, "leave");
    assert.equal((await host.next() as Frame).type, "revoked");
    assert.equal((await guest.next() as Frame).code, "revoked");
    await guest.close();
    await host.close();
    await bob.guest.next(); // the host's leave
    const back = await Peer.host(server, room);
    assert.equal((await back.next() as Frame).type, "welcome");
    const again = await join(server, room, back, GUEST_KEY);
    assert.equal(again.joined.invite, "guest");
    await Promise.all([bob.guest.close(), again.guest.close()]);
    await back.close();
  });
});

Deno.test("Room keeps its invites across the host's reconnect and hibernation", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await host.next();
    await invite(host, "alice", ALICE);
    const alice = await join(server, room, host, ALICE_KEY);
    await host.close();
    assert.deepEqual(await alice.guest.next(), { type: "leave", peer: "host" });
    await hibernate(server, room);
    // The host comes back: its welcome names the invite of each guest present.
    const back = await Peer.host(server, room);
    const welcome = await back.next() as Frame;
    assert.deepEqual(welcome.peers, [alice.id]);
    assert.deepEqual(welcome.peerInvites, { [alice.id]: "alice" });
    assert.deepEqual(await alice.guest.next(), { type: "join", peer: "host" });
    await hibernate(server, room);
    const bob = await Peer.guest(server, room, BOB_KEY);
    assert.equal((await bob.next() as Frame).code, "key_refused");
    await bob.closed;
    const second = await join(server, room, back, ALICE_KEY);
    assert.deepEqual(second.joined, { type: "join", peer: second.id, invite: "alice" });
    // Revoking after hibernation still finds the sockets admitted before it.
    await hibernate(server, room);
    back.send({ type: "revoke", name: "alice" });
    const frames = [await back.next(), await back.next(), await back.next()];
    assert.deepEqual(frames.at(-1), { type: "revoked", name: "alice", closed: 2 });
    assert.equal((await alice.guest.next() as Frame).code, "revoked");
    assert.equal((await second.guest.next() as Frame).code, "revoked");
    await Promise.all([alice.guest.close(), second.guest.close()]);
    await back.close();
  });
});

Deno.test("Room's guest key and host key are not invites a guest could manage", async () => {
  await withServer(async (server) => {
    const { room, host, guest } = await pair(server);
    // The host key is no guest key, whatever invites exist.
    await invite(host, "alice", ALICE);
    await refused(await Peer.guest(server, room, HOST_KEY), "key_refused", 4403);
    await guest.close();
    await host.next();
    await host.close();
  });
});
