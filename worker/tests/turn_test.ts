/**
 * TURN credentials handed out by the worker, against the worker in Miniflare
 * on 127.0.0.1: the TURN REST API convention with a shared secret, and
 * Cloudflare Realtime TURN through an outbound fetch answered here.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { pair, withServer } from "./_peer.ts";

const SECRET = "turn-shared-secret-for-tests";

function expectedCredential(username: string): string {
  return createHmac("sha1", SECRET).update(username).digest("base64");
}

Deno.test("with a TURN secret, every member's welcome holds its own short-lived TURN REST credentials, and never the secret", async () => {
  await withServer(async (server) => {
    const before = Math.floor(Date.now() / 1000);
    const { host, guest, guestId } = await pair(server);
    const after = Math.floor(Date.now() / 1000);
    // pair() read the welcomes: look at them again as received.
    for (const [peer, id] of [[host, "host"], [guest, guestId]] as const) {
      const text = JSON.stringify(peer.welcome);
      assert.ok(!text.includes(SECRET), "the secret left the worker");
      const [server] = peer.welcome!.iceServers as {
        urls: string[];
        username: string;
        credential: string;
      }[];
      assert.deepEqual(server!.urls, ["turn:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=tcp"]);
      const [expiry, who] = server!.username.split(":");
      assert.equal(who, id);
      assert.ok(Number(expiry) >= before + 600 && Number(expiry) <= after + 600, expiry);
      assert.equal(server!.credential, expectedCredential(server!.username));
    }
    await guest.close();
    await host.close();
  }, {
    TURN_SECRET: SECRET,
    TURN_URLS: "turn:127.0.0.1:3478, turn:127.0.0.1:3478?transport=tcp",
    TURN_TTL_SECONDS: "600",
  });
});

Deno.test("without TURN configuration the welcome holds no ICE servers", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    assert.equal(host.welcome!.iceServers, undefined);
    assert.equal(guest.welcome!.iceServers, undefined);
    await guest.close();
    await host.close();
  });
});

Deno.test("with a Cloudflare TURN key, members get the API's ICE servers, asked once per half TTL", async () => {
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
    for (const peer of [host, guest]) assert.deepEqual(peer.welcome!.iceServers, iceServers);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0], {
      url: "https://rtc.live.cloudflare.com/v1/turn/keys/key-id/credentials/generate-ice-servers",
      method: "POST",
      auth: "Bearer api-token",
      body: { ttl: 600 },
    });
    assert.ok(!JSON.stringify([host.welcome, guest.welcome]).includes("api-token"));
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

Deno.test("a Cloudflare API that fails is logged and members still join, without ICE servers", async () => {
  let log = "";
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    assert.equal(host.welcome!.iceServers, undefined);
    assert.equal(guest.welcome!.iceServers, undefined);
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

Deno.test("a member connected for half the credentials' TTL gets fresh ones before they expire", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    const first = (host.welcome!.iceServers as { username: string }[])[0]!.username;
    const renewed = await host.next() as {
      type: string;
      iceServers: { urls: string[]; username: string; credential: string }[];
    };
    assert.equal(renewed.type, "ice_servers");
    const [fresh] = renewed.iceServers;
    const [expiry, who] = fresh!.username.split(":");
    assert.equal(who, "host");
    assert.ok(Number(expiry) > Number(first.split(":")[0]), `${fresh!.username} after ${first}`);
    assert.equal(fresh!.credential, expectedCredential(fresh!.username));
    await guest.close();
    await host.close();
  }, {
    TURN_SECRET: SECRET,
    TURN_URLS: "turn:127.0.0.1:3478",
    TURN_TTL_SECONDS: "2",
  });
});
