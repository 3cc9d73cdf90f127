/**
 * TURN credentials handed out by the worker, against the worker in Miniflare
 * on 127.0.0.1: minted only when a member asks, within limits per client
 * address (across rooms) and per room; the TURN REST API convention with a
 * shared secret, and Cloudflare Realtime TURN through an outbound fetch
 * answered here.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { LocalSignaling } from "../local.ts";
import { GUEST_KEY, GUEST_VERIFIER, HOST_KEY, newRoomId, pair, Peer, withServer } from "./_peer.ts";

const SECRET = "turn-shared-secret-for-tests";
const TURN = {
  TURN_SECRET: SECRET,
  TURN_URLS: "turn:127.0.0.1:3478, turn:127.0.0.1:3478?transport=tcp",
  TURN_TTL_SECONDS: "600",
};

function expectedCredential(username: string): string {
  return createHmac("sha1", SECRET).update(username).digest("base64");
}

type IceServer = { urls: string[]; username: string; credential: string };

/** Asks for ICE servers and returns the room's answer (a frame other than pong). */
async function ask(peer: Peer, id = 1): Promise<Record<string, unknown>> {
  peer.send({ type: "ice_servers", id });
  for (let i = 0; i < 100; i++) {
    const frame = await peer.next();
    if (frame !== "pong") return frame as Record<string, unknown>;
  }
  throw new Error("Expected an answer other than pong");
}

/** A member joined from `address` (as the edge's CF-Connecting-IP says), past its welcome. */
async function joinFrom(
  server: LocalSignaling,
  room: string,
  role: "host" | "guest",
  address: string,
): Promise<Peer> {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${role === "host" ? HOST_KEY : GUEST_KEY}`,
    "CF-Connecting-IP": address,
    ...role === "host" && { "X-Guest-Verifier": GUEST_VERIFIER },
  };
  const peer = await Peer.open(server, room, role, "", { headers });
  const welcome = await peer.next() as Record<string, unknown>;
  assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
  return peer;
}

Deno.test("a join mints no TURN credentials: the welcome only says the room hands them out on request", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    for (const peer of [host, guest]) {
      assert.equal(peer.welcome!.iceServers, undefined);
      assert.equal(peer.welcome!.ice, true);
    }
    await guest.close();
    await host.close();
  }, TURN);
});

Deno.test("with a TURN secret, each member that asks gets its own credentials valid for TURN_TTL_SECONDS, and never the secret", async () => {
  await withServer(async (server) => {
    const { host, guest, guestId } = await pair(server);
    for (const [peer, id] of [[host, "host"], [guest, guestId]] as const) {
      const before = Math.floor(Date.now() / 1000);
      const answer = await ask(peer);
      const after = Math.floor(Date.now() / 1000);
      assert.ok(!JSON.stringify(answer).includes(SECRET), "the secret left the worker");
      assert.equal(answer.type, "ice_servers");
      assert.equal(answer.ttl, 600);
      const [turn] = answer.iceServers as IceServer[];
      assert.deepEqual(turn!.urls, ["turn:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=tcp"]);
      const [expiry, who] = turn!.username.split(":");
      assert.equal(who, id);
      assert.ok(Number(expiry) >= before + 600 && Number(expiry) <= after + 600, expiry);
      assert.equal(turn!.credential, expectedCredential(turn!.username));
    }
    await guest.close();
    await host.close();
  }, TURN);
});

Deno.test("the default lifetime of TURN credentials is an hour", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    const answer = await ask(host);
    assert.equal(answer.ttl, 3600);
    const expiry = Number((answer.iceServers as IceServer[])[0]!.username.split(":")[0]);
    assert.ok(Math.abs(expiry - (Date.now() / 1000 + 3600)) < 60, String(expiry));
    await guest.close();
    await host.close();
  }, { TURN_SECRET: SECRET, TURN_URLS: "turn:127.0.0.1:3478" });
});

Deno.test("a stranger opening rooms of its own gets TURN_PER_ADDRESS_PER_HOUR credentials in all, then ice_servers_limited; another address still gets them", async () => {
  await withServer(async (server) => {
    const stranger = "192.0.2.66";
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const host = await joinFrom(server, newRoomId(), "host", stranger);
      const answer = await ask(host, i);
      answers.push(answer.type === "error" ? answer.code as string : answer.type as string);
      if (answer.type === "error") {
        assert.equal(answer.ref, i);
        assert.match(answer.message as string, /TURN_PER_ADDRESS_PER_HOUR.*: .*[^.]$/);
        // A refusal of a request does not end the socket.
        host.send("ping");
        assert.equal(await host.next(), "pong");
      }
      await host.close();
    }
    assert.deepEqual(answers, [
      "ice_servers",
      "ice_servers",
      "ice_servers",
      "ice_servers_limited",
      "ice_servers_limited",
    ]);
    const other = await joinFrom(server, newRoomId(), "host", "198.51.100.7");
    assert.equal((await ask(other)).type, "ice_servers");
    await other.close();
  }, { ...TURN, TURN_PER_ADDRESS_PER_HOUR: "3" });
});

Deno.test("a room mints at most TURN_PER_ROOM_PER_HOUR credentials, whatever addresses its members ask from", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await joinFrom(server, room, "host", "192.0.2.1");
    assert.equal((await ask(host)).type, "ice_servers");
    const codes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const guest = await joinFrom(server, room, "guest", `192.0.2.${10 + i}`);
      const answer = await ask(guest);
      codes.push(answer.type === "error" ? answer.code as string : answer.type as string);
      await guest.close();
    }
    assert.deepEqual(codes, ["ice_servers", "ice_servers_limited", "ice_servers_limited"]);
    await host.close();
  }, { ...TURN, TURN_PER_ROOM_PER_HOUR: "2" });
});

Deno.test("without TURN configuration the welcome offers no ICE servers, and a request gets none", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    assert.equal(host.welcome!.iceServers, undefined);
    assert.equal(host.welcome!.ice, undefined);
    assert.deepEqual(await ask(guest), { type: "ice_servers", iceServers: [] });
    await guest.close();
    await host.close();
  });
});

Deno.test("with a Cloudflare TURN key, the API is asked only when a member asks, then once per half TTL for the room", async () => {
  const calls: { url: string; method: string; auth: string | null; body: unknown }[] = [];
  const iceServers = [
    { urls: ["stun:stun.cloudflare.com:3478"] },
    {
      urls: ["turn:turn.cloudflare.com:3478?transport=udp"],
      username: "cf-user",
      credential: "cf-credential",
    },
  ];
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    assert.equal(calls.length, 0, "a join called the API");
    for (const peer of [host, guest]) {
      const answer = await ask(peer);
      assert.deepEqual(answer.iceServers, iceServers);
      assert.ok(!JSON.stringify(answer).includes("api-token"));
    }
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0], {
      url: "https://rtc.live.cloudflare.com/v1/turn/keys/key-id/credentials/generate-ice-servers",
      method: "POST",
      auth: "Bearer api-token",
      body: { ttl: 600 },
    });
    await guest.close();
    await host.close();
  }, {
    CLOUDFLARE_TURN_KEY_ID: "key-id",
    CLOUDFLARE_TURN_API_TOKEN: "api-token",
    TURN_TTL_SECONDS: "600",
  }, {
    outbound: async (request) => {
      calls.push({
        url: request.url,
        method: request.method,
        auth: request.headers.get("Authorization"),
        body: await request.json(),
      });
      return Response.json({ iceServers }, { status: 201 });
    },
  });
});

Deno.test("a Cloudflare API that fails is logged and the member is told ice_servers_unavailable; the socket stays", async () => {
  let log = "";
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    const answer = await ask(guest, 9);
    assert.equal(answer.code, "ice_servers_unavailable");
    assert.equal(answer.ref, 9);
    guest.signal("host", { type: "offer" });
    assert.equal((await host.next() as Record<string, unknown>).type, "signal");
    await guest.close();
    await host.close();
    assert.match(log, /Cloudflare TURN credentials.*401/s);
  }, {
    CLOUDFLARE_TURN_KEY_ID: "key-id",
    CLOUDFLARE_TURN_API_TOKEN: "wrong-token",
  }, {
    outbound: () => Response.json({ errors: ["unauthorized"] }, { status: 401 }),
    onLog: (text) => (log += text),
  });
});

Deno.test("restTurnServer imports the HMAC key of a secret once, and again only for another secret", async () => {
  const { restTurnServer } = await import("../src/turn.ts");
  const subtle = crypto.subtle;
  const importKey = subtle.importKey;
  let imports = 0;
  subtle.importKey = function (this: SubtleCrypto, ...args: Parameters<typeof importKey>) {
    imports++;
    return importKey.apply(this, args);
  } as typeof importKey;
  try {
    const urls = ["turn:127.0.0.1:3478"];
    for (const id of ["0123456789abcdef", "fedcba9876543210", "00112233445566aa"]) {
      const server = await restTurnServer(SECRET, urls, id, 2_000_000_000);
      assert.equal(server.credential, expectedCredential(`2000000000:${id}`));
    }
    assert.equal(imports, 1);
    const other = await restTurnServer("another-secret", urls, "0123456789abcdef", 2_000_000_000);
    assert.equal(
      other.credential,
      createHmac("sha1", "another-secret").update("2000000000:0123456789abcdef").digest("base64"),
    );
    assert.equal(imports, 2);
  } finally {
    subtle.importKey = importKey;
  }
});
