/**
 * The room protocol, end to end against the worker in Miniflare on 127.0.0.1:
 * raw WebSockets, so every frame and close code is checked as sent.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_RELAY,
  GUEST_KEY,
  GUEST_VERIFIER,
  hibernate,
  HOST_KEY,
  newRoomId,
  OTHER_KEY,
  pair,
  Peer,
  verifierOf,
  withServer,
} from "./_peer.ts";

Deno.test("worker answers health, unknown routes and malformed joins without waking a room", async () => {
  await withServer(async (server) => {
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${server.httpUrl}${path}`, { headers });
      return {
        status: response.status,
        body: await response.json() as { error: { code: string; message: string } },
      };
    };
    assert.deepEqual(await get("/health"), { status: 200, body: { ok: true } });
    const room = newRoomId();
    const key = { "Sec-WebSocket-Protocol": `mcp-webrtc.v1, mcp-webrtc.key.${GUEST_KEY}` };
    const cases: [string, Record<string, string>, number, string][] = [
      ["/nope", {}, 404, "not_found"],
      ["/v1/rooms/short?role=guest", key, 400, "bad_room_id"],
      [`/v1/rooms/${room}?role=admin`, key, 400, "bad_role"],
      [`/v1/rooms/${room}?role=guest`, {}, 401, "key_missing"],
      [`/v1/rooms/${room}?role=guest`, { Authorization: "Bearer short" }, 400, "bad_key"],
      [`/v1/rooms/${room}?role=guest`, { Authorization: "Basic abc" }, 400, "bad_key"],
      [
        `/v1/rooms/${room}?role=guest`,
        { ...key, Authorization: `Bearer ${GUEST_KEY}` },
        400,
        "bad_key",
      ],
      [
        `/v1/rooms/${room}?role=guest`,
        { "Sec-WebSocket-Protocol": `mcp-webrtc.key.${GUEST_KEY}` },
        400,
        "bad_protocol",
      ],
      [`/v1/rooms/${room}?role=host`, key, 400, "guest_verifier_missing"],
      [
        `/v1/rooms/${room}?role=guest`,
        { ...key, "X-Guest-Verifier": GUEST_VERIFIER },
        400,
        "bad_guest_verifier",
      ],
      [
        `/v1/rooms/${room}?role=host`,
        { ...key, "X-Guest-Verifier": "tooshort" },
        400,
        "bad_guest_verifier",
      ],
      [
        `/v1/rooms/${room}?role=host`,
        { ...key, "X-Guest-Verifier": GUEST_VERIFIER, "X-Host-Verifier": GUEST_VERIFIER },
        400,
        "bad_host_verifier",
      ],
      [
        `/v1/rooms/${room}?role=guest`,
        { ...key, "X-Host-Verifier": "tooshort" },
        400,
        "bad_host_verifier",
      ],
      [
        `/v1/rooms/${room}?role=guest`,
        {
          "Sec-WebSocket-Protocol":
            `mcp-webrtc.v1, mcp-webrtc.key.${GUEST_KEY}, mcp-webrtc.host-verifier.${GUEST_VERIFIER}`,
          "X-Host-Verifier": GUEST_VERIFIER,
        },
        400,
        "bad_host_verifier",
      ],
      [
        `/v1/rooms/${room}?role=guest`,
        { ...key, "X-Host-Verifier": GUEST_VERIFIER },
        426,
        "upgrade_required",
      ],
      [
        `/v1/rooms/${room}?role=guest`,
        {
          "Sec-WebSocket-Protocol":
            `mcp-webrtc.v1, mcp-webrtc.key.${GUEST_KEY}, mcp-webrtc.invites-only`,
        },
        400,
        "bad_role",
      ],
      [`/v1/rooms/${room}?role=guest`, key, 426, "upgrade_required"],
    ];
    for (const [path, headers, status, code] of cases) {
      const { status: got, body } = await get(path, headers);
      assert.equal(got, status, `${path} ${JSON.stringify(headers)}`);
      assert.equal(body.error.code, code);
      assert.match(body.error.message, /^[A-Z].*[^.]$/);
    }
    assert.deepEqual(await server.miniflare.listDurableObjectIds("ROOMS"), []);
  });
});

Deno.test("Room relays signals both ways and stamps the sender itself", async () => {
  await withServer(async (server) => {
    const { host, guest, guestId } = await pair(server);
    guest.signal("host", { type: "offer", sdp: "v=0" }, { from: "host" });
    assert.deepEqual(await host.next(), {
      type: "signal",
      from: guestId,
      data: { type: "offer", sdp: "v=0" },
    });
    host.signal(guestId, { type: "answer" });
    assert.deepEqual(await guest.next(), {
      type: "signal",
      from: "host",
      data: { type: "answer" },
    });
    assert.deepEqual((await guest.close(4000)).code, 4000);
    assert.deepEqual(await host.next(), { type: "leave", peer: guestId });
    await host.close();
  });
});

Deno.test("Room accepts the key and verifier as headers too", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.open(server, room, "host", "", {
      headers: { Authorization: `Bearer ${HOST_KEY}`, "X-Guest-Verifier": GUEST_VERIFIER },
    });
    assert.equal(host.ws.protocol, "");
    assert.equal((await host.next() as Record<string, unknown>).type, "welcome");
    const guest = await Peer.open(server, room, "guest", "", {
      headers: { Authorization: `Bearer ${GUEST_KEY}` },
    });
    assert.equal((await guest.next() as Record<string, unknown>).type, "welcome");
    await guest.close();
    await host.close();
  });
});

Deno.test("Room answers every bad frame with an error frame and keeps relaying", async () => {
  await withServer(async (server) => {
    const { host, guest, guestId } = await pair(server);
    const cases: [unknown, string, unknown?][] = [
      ["not json", "bad_json"],
      [new Uint8Array([1, 2, 3]), "binary_frame"],
      [[1, 2], "bad_frame"],
      [{ type: "hello" }, "unknown_type"],
      [{ type: "signal", data: {}, id: 1 }, "bad_recipient", 1],
      [{ type: "signal", to: "host", data: [], id: "a" }, "bad_data", "a"],
      [{ type: "signal", to: "host", data: "sdp" }, "bad_data"],
      [{ type: "signal", to: "host", data: null }, "bad_data"],
      [{ type: "signal", to: "host", data: { pad: "x".repeat(65_536) } }, "frame_too_large"],
    ];
    for (const [frame, code, ref] of cases) {
      if (frame instanceof Uint8Array) guest.ws.send(frame);
      else guest.send(frame);
      const error = await guest.next() as Record<string, unknown>;
      assert.equal(error.type, "error");
      assert.equal(error.code, code);
      assert.equal(error.ref, ref);
      assert.match(error.message as string, /^[A-Z].*[^.]$/);
    }
    host.signal("0123456789abcdef", { type: "offer" }, { id: 9 });
    assert.deepEqual(
      { ...await host.next() as object, message: "" },
      { type: "error", code: "unknown_peer", message: "", ref: 9 },
    );
    await host.nothing();
    guest.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), { type: "signal", from: guestId, data: { type: "offer" } });
    await guest.close();
    await host.close();
  });
});

Deno.test("Room refuses guest-to-guest signals and tells no guest about another", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    const other = await Peer.guest(server, room);
    const welcome = await other.next() as Record<string, unknown>;
    assert.deepEqual(welcome.peers, ["host"]);
    assert.deepEqual(await host.next(), { type: "join", peer: welcome.peer, invite: "guest" });
    other.signal(guestId, { type: "offer" });
    assert.equal((await other.next() as Record<string, unknown>).code, "forbidden_recipient");
    other.signal("not-a-guest", { type: "offer" });
    assert.equal((await other.next() as Record<string, unknown>).code, "forbidden_recipient");
    await guest.nothing();
    await host.nothing(0);
    await Promise.all([guest.close(), other.close()]);
    await host.close();
  });
});

Deno.test("Room refuses a wrong key, a room without host, a second host key and a full room", async () => {
  await withServer(async (server) => {
    const expectRefusal = async (peer: Peer, code: string, closeCode: number) => {
      assert.equal((await peer.next() as Record<string, unknown>).code, code);
      const closed = await peer.closed;
      assert.equal(closed.code, closeCode);
      assert.equal(closed.reason, code);
    };
    const room = newRoomId();
    await expectRefusal(await Peer.guest(server, room), "room_not_found", 4404);
    const { host, guest } = await pair(server, room);
    await expectRefusal(await Peer.guest(server, room, OTHER_KEY), "key_refused", 4403);
    await expectRefusal(await Peer.guest(server, room, HOST_KEY), "key_refused", 4403);
    await expectRefusal(await Peer.host(server, room, OTHER_KEY), "key_refused", 4403);
    const second = await Peer.guest(server, room);
    await second.next();
    await expectRefusal(await Peer.guest(server, room), "room_full", 4409);
    assert.equal((await host.next() as Record<string, unknown>).type, "join"); // the second guest
    await host.nothing();
    await Promise.all([guest.close(), second.close()]);
    await host.close();
  }, { MAX_GUESTS: "2" });
});

Deno.test("Room lets a host with the right key replace the connected one", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    const next = await Peer.host(server, room);
    assert.deepEqual(await next.next(), {
      type: "welcome",
      peer: "host",
      role: "host",
      peers: [guestId],
      relay: DEFAULT_RELAY,
      peerInvites: { [guestId]: "guest" },
      hellos: true,
    });
    assert.equal((await host.next() as Record<string, unknown>).code, "host_replaced");
    assert.equal((await host.closed).code, 4409);
    assert.deepEqual(await guest.next(), { type: "leave", peer: "host" });
    assert.deepEqual(await guest.next(), { type: "join", peer: "host" });
    guest.signal("host", { type: "offer" });
    assert.deepEqual(await next.next(), { type: "signal", from: guestId, data: { type: "offer" } });
    await guest.nothing();
    await guest.close();
    await next.close();
  });
});

Deno.test("Room keeps working after the host reconnects, with a new guest verifier", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    await host.close();
    assert.deepEqual(await guest.next(), { type: "leave", peer: "host" });
    const newGuestKey = "guest-key-11111111111";
    const back = await Peer.host(server, room, HOST_KEY, await verifierOf(newGuestKey));
    assert.deepEqual((await back.next() as Record<string, unknown>).peers, [guestId]);
    assert.deepEqual(await guest.next(), { type: "join", peer: "host" });
    const refused = await Peer.guest(server, room);
    assert.equal((await refused.next() as Record<string, unknown>).code, "key_refused");
    await refused.closed;
    const fresh = await Peer.guest(server, room, newGuestKey);
    const freshId = (await fresh.next() as Record<string, unknown>).peer;
    assert.deepEqual(await back.next(), { type: "join", peer: freshId, invite: "guest" });
    fresh.signal("host", { type: "offer" });
    assert.deepEqual(await back.next(), { type: "signal", from: freshId, data: { type: "offer" } });
    await Promise.all([guest.close(), fresh.close()]);
    await back.close();
  });
});

Deno.test("Room keeps frames inside their room", async () => {
  await withServer(async (server) => {
    const a = await pair(server);
    const b = await pair(server);
    a.guest.signal("host", { type: "offer", room: "a" });
    b.host.signal(b.guestId, { type: "answer", room: "b" });
    a.host.signal(b.guestId, { type: "answer", room: "a" });
    assert.deepEqual(await a.host.next(), {
      type: "signal",
      from: a.guestId,
      data: { type: "offer", room: "a" },
    });
    assert.equal((await a.host.next() as Record<string, unknown>).code, "unknown_peer");
    assert.deepEqual(await b.guest.next(), {
      type: "signal",
      from: "host",
      data: { type: "answer", room: "b" },
    });
    await Promise.all([a.guest.nothing(), b.host.nothing(), b.guest.nothing()]);
    await Promise.all([a.guest.close(), b.guest.close()]);
    await Promise.all([a.host.close(), b.host.close()]);
  });
});

Deno.test("Room closes only the socket that floods it", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    const calm = await Peer.guest(server, room);
    const calmId = (await calm.next() as Record<string, unknown>).peer;
    await host.next();
    for (let i = 0; i < 30; i++) guest.signal("host", { type: "candidate", i });
    const closed = await guest.closed;
    assert.equal(closed.code, 4429);
    assert.equal(
      guest.frames.at(-1) && (guest.frames.at(-1) as Record<string, unknown>).code,
      "rate_limited",
    );
    const relayed = [];
    for (let frame = await host.next();; frame = await host.next()) {
      if ((frame as Record<string, unknown>).type === "leave") {
        assert.deepEqual(frame, { type: "leave", peer: guestId });
        break;
      }
      relayed.push(frame);
    }
    assert.equal(relayed.length, 10);
    calm.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), { type: "signal", from: calmId, data: { type: "offer" } });
    await calm.close();
    await host.close();
  }, { RATE_PER_SECOND: "1", RATE_BURST: "10" });
});

Deno.test("Room survives hibernation between every step", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    assert.equal((await host.next() as Record<string, unknown>).type, "welcome");
    await hibernate(server, room);
    const guest = await Peer.guest(server, room);
    const guestId = (await guest.next() as Record<string, unknown>).peer as string;
    assert.deepEqual(await host.next(), { type: "join", peer: guestId, invite: "guest" });
    await hibernate(server, room);
    guest.send("ping");
    assert.equal(await guest.next(), "pong");
    // The auto-response answered without waking the object: there is nothing to evict.
    await assert.rejects(hibernate(server, room), /not currently running/);
    guest.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), { type: "signal", from: guestId, data: { type: "offer" } });
    await hibernate(server, room);
    host.signal(guestId, { type: "answer" });
    assert.deepEqual(await guest.next(), {
      type: "signal",
      from: "host",
      data: { type: "answer" },
    });
    await hibernate(server, room);
    guest.signal("0123456789abcdef", { type: "offer" });
    assert.equal((await guest.next() as Record<string, unknown>).code, "forbidden_recipient");
    await hibernate(server, room);
    assert.equal((await guest.close(4001)).code, 4001);
    assert.deepEqual(await host.next(), { type: "leave", peer: guestId });
    await hibernate(server, room);
    assert.equal((await host.close()).code, 1000);
  });
});

Deno.test("Room answers ping with pong", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    for (let i = 0; i < 3; i++) {
      host.send("ping");
      assert.equal(await host.next(), "pong");
    }
    await guest.nothing(0);
    await guest.close();
    await host.next();
    await host.close();
  });
});

Deno.test("Room forgets its keys once empty for its TTL, not while anyone is connected", async () => {
  await withServer(async (server) => {
    const { room, host, guest } = await pair(server);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // longer than the TTL
    const late = await Peer.guest(server, room);
    assert.equal((await late.next() as Record<string, unknown>).type, "welcome");
    await late.close();
    await guest.close();
    await host.close();
    // A guest that gets in re-arms the alarm when it leaves, so wait longer than the TTL each time.
    let refusal: Record<string, unknown> = {};
    for (let attempt = 0; attempt < 4 && refusal.code !== "room_not_found"; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 1200));
      const peer = await Peer.guest(server, room);
      refusal = await peer.next() as Record<string, unknown>;
      await peer.close();
    }
    assert.equal(refusal.code, "room_not_found");
    const claimed = await Peer.host(server, room, OTHER_KEY);
    assert.equal((await claimed.next() as Record<string, unknown>).type, "welcome");
    await claimed.close();
  }, { ROOM_TTL_SECONDS: "1" });
});
