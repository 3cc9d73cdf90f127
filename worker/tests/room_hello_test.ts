/**
 * The host's waiting hello, end to end against the worker in Miniflare on
 * 127.0.0.1: the room keeps one per invite of the host's current socket and
 * hands each to exactly one guest of that invite, right after its welcome,
 * telling the host which guest took it.
 */
import assert from "node:assert/strict";
import { newRoomId, Peer, verifierOf, withServer } from "./_peer.ts";

type Frame = Record<string, unknown>;
const HELLO = { type: "sealed", v: 1, role: "host", nonce: "n".repeat(22), seq: 0 };

Deno.test("Room hands the host's waiting hello to exactly one of two guests joining at once, and tells the host which", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    assert.equal((await host.next() as Frame).hellos, true);
    host.send({ type: "waiting_hello", data: HELLO });
    // A frame after it, answered, so the hello is in the room before the guests join.
    host.send({ type: "signal", to: "nobody", data: {}, id: 1 });
    assert.equal((await host.next() as Frame).code, "unknown_peer");
    const guests = await Promise.all([Peer.guest(server, room), Peer.guest(server, room)]);
    const ids: string[] = [];
    for (const guest of guests) {
      const welcome = await guest.next() as Frame;
      assert.equal(welcome.type, "welcome");
      assert.equal(welcome.hellos, undefined, "only the host's welcome says it");
      ids.push(welcome.peer as string);
    }
    const joins = [await host.next() as Frame, await host.next() as Frame];
    const took = joins.filter((join) => join.hello === true);
    assert.equal(took.length, 1, JSON.stringify(joins));
    const taker = ids.indexOf(took[0].peer as string);
    assert.notEqual(taker, -1);
    // The taker's next frame is the hello, as a signal from the host; the other gets nothing.
    assert.deepEqual(await guests[taker].next(), { type: "signal", from: "host", data: HELLO });
    await guests[1 - taker].nothing(100);
    // A third guest, with the hello taken and none left since, gets none either.
    const third = await Peer.guest(server, room);
    assert.equal((await third.next() as Frame).type, "welcome");
    assert.equal((await host.next() as Frame).hello, undefined);
    await third.nothing(100);
    await Promise.all([...guests, third].map((guest) => guest.close()));
    await host.close();
  });
});

Deno.test("Room gives the waiting hello only to a guest of the host's own invite, and refuses one from a guest", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await host.next();
    host.send({
      type: "invite",
      name: "alice",
      verifier: await verifierOf("alice-key-00000000000"),
      id: 1,
    });
    assert.equal((await host.next() as Frame).type, "invited");
    host.send({ type: "waiting_hello", data: HELLO });
    const alice = await Peer.guest(server, room, "alice-key-00000000000");
    assert.equal((await alice.next() as Frame).type, "welcome");
    const join = await host.next() as Frame;
    assert.equal(join.invite, "alice");
    assert.equal(join.hello, undefined);
    // A guest may not leave one.
    alice.send({ type: "waiting_hello", data: HELLO, id: 2 });
    const refused = await alice.next() as Frame;
    assert.equal(refused.code, "host_only");
    assert.equal(refused.ref, 2);
    // The guest of the host's own invite still gets the host's.
    const guest = await Peer.guest(server, room);
    assert.equal((await guest.next() as Frame).type, "welcome");
    assert.deepEqual(await guest.next(), { type: "signal", from: "host", data: HELLO });
    assert.equal((await host.next() as Frame).hello, true);
    await Promise.all([alice.close(), guest.close()]);
    await host.close();
  });
});

Deno.test("Room keeps one waiting hello per invite, hands each to that invite's next guest, drops one with its revoked invite, and refuses one for an invite it does not know", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await host.next();
    const aliceKey = "alice-key-00000000000";
    host.send({ type: "invite", name: "alice", verifier: await verifierOf(aliceKey), id: 1 });
    assert.equal((await host.next() as Frame).type, "invited");
    const ALICE_HELLO = { ...HELLO, nonce: "a".repeat(22) };
    host.send({ type: "waiting_hello", data: HELLO });
    host.send({ type: "waiting_hello", data: ALICE_HELLO, invite: "alice" });
    // None for an invite the room does not have.
    host.send({ type: "waiting_hello", data: HELLO, invite: "bob", id: 2 });
    const refused = await host.next() as Frame;
    assert.equal(refused.code, "invite_not_found");
    assert.equal(refused.ref, 2);
    // Alice's guest gets Alice's hello, not the host's own invite's.
    const alice = await Peer.guest(server, room, aliceKey);
    assert.equal((await alice.next() as Frame).type, "welcome");
    assert.deepEqual(await alice.next(), { type: "signal", from: "host", data: ALICE_HELLO });
    const aliceJoin = await host.next() as Frame;
    assert.equal(aliceJoin.invite, "alice");
    assert.equal(aliceJoin.hello, true);
    // The guest of the host's own invite still finds its own.
    const guest = await Peer.guest(server, room);
    assert.equal((await guest.next() as Frame).type, "welcome");
    assert.deepEqual(await guest.next(), { type: "signal", from: "host", data: HELLO });
    assert.equal((await host.next() as Frame).hello, true);
    // A hello left for Alice again goes with her invite when it is revoked.
    host.send({ type: "waiting_hello", data: ALICE_HELLO, invite: "alice" });
    host.send({ type: "revoke", name: "alice", id: 3 });
    const frames: Frame[] = [];
    while (!frames.some((frame) => frame.type === "revoked")) {
      frames.push(await host.next() as Frame);
    }
    host.send({ type: "invite", name: "alice", verifier: await verifierOf(aliceKey), id: 4 });
    assert.equal((await host.next() as Frame).type, "invited");
    const again = await Peer.guest(server, room, aliceKey);
    assert.equal((await again.next() as Frame).type, "welcome");
    assert.equal((await host.next() as Frame).hello, undefined);
    await again.nothing(100);
    await Promise.all([alice.close(), guest.close(), again.close()]);
    await host.close();
  });
});
