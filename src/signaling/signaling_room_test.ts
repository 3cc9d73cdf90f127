import assert from "node:assert/strict";
import { type LocalSignaling, startLocalSignaling } from "../../worker/local.ts";
import type { Signaling, SignalingMessage } from "./signaling.ts";
import type { IceServer } from "../peer.ts";
import { keyVerifier } from "./room_protocol.ts";
import { createRoomId, createRoomKey, SignalingRoom } from "./signaling_room.ts";
import { SignalingRoomError } from "../errors.ts";
import { WebSocketSignaling } from "./websocket_signaling.ts";
import { useClock } from "../_clock.ts";
import { ManualClock } from "../_test_clock.ts";

const HOST_KEY = createRoomKey();
const GUEST_KEY = createRoomKey();
const GUEST_VERIFIER = await keyVerifier(GUEST_KEY);

/** Resolves with the first value passed to the callback, or rejects after 3 s. */
function once<T = void>(install: (callback: (value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("Expected a callback within 3 s")), 3000);
    install((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** Collects a view's messages; `next()` waits at most 3 s for one. */
function inbox(signaling: Signaling): { next(): Promise<SignalingMessage> } {
  const queue: SignalingMessage[] = [];
  let wake: (() => void) | undefined;
  signaling.onmessage = (message) => {
    queue.push(message);
    wake?.();
  };
  return {
    async next() {
      if (queue.length === 0) await once<void>((callback) => (wake = callback));
      return queue.shift()!;
    },
  };
}

/**
 * Counts the frames a room connection receives that `match`, before the room
 * reads them: `reach(n)` resolves once `n` did (or rejects after 5 s), so a
 * test awaits what the room sent instead of waiting for it to arrive.
 */
function frameCounter(match: (data: unknown) => boolean) {
  let count = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  class CountingWebSocket extends WebSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols);
      this.addEventListener("message", (event) => {
        if (!match(event.data)) return;
        count++;
        for (const waiter of waiters.filter((waiter) => count >= waiter.n)) waiter.resolve();
      });
    }
  }
  return {
    WebSocket: CountingWebSocket,
    get count(): number {
      return count;
    },
    reach(n: number): Promise<void> {
      if (count >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`Expected ${n} frames within 5 s`)), 5000);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

async function withServer(
  fn: (server: LocalSignaling, url: string) => Promise<void>,
  vars?: Record<string, string>,
): Promise<void> {
  const server = await startLocalSignaling({ vars });
  try {
    await fn(server, `${server.url}/v1/rooms/${createRoomId()}`);
  } finally {
    await server.close();
  }
}

function joinHost(
  url: string,
  options: {
    reconnect?: { minDelay: number; maxDelay: number };
    WebSocket?: new (url: string, protocols: string[]) => WebSocket;
  } = {},
) {
  return SignalingRoom.join(url, {
    role: "host",
    key: HOST_KEY,
    guestVerifier: GUEST_VERIFIER,
    ...options,
  });
}

Deno.test("SignalingRoom and WebSocketSignaling relay messages both ways, kept until start()", async () => {
  await withServer(async (_server, url) => {
    const signals = frameCounter((data) => String(data).includes('"type":"signal"'));
    const host = await joinHost(url, { WebSocket: signals.WebSocket });
    assert.equal(host.peer, "host");
    assert.deepEqual(host.peers, []);
    const joined = once<string>((callback) => (host.onpeerjoin = callback));
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    const guestId = await joined;
    assert.equal(guest.room.peer, guestId);
    assert.deepEqual(host.peers, [guestId]);
    await guest.send({ type: "offer", sdp: "v=0" });
    await guest.send({ type: "candidate", candidate: "a" });
    await signals.reach(2); // both arrive before start()
    const view = host.signaling(guestId);
    assert.equal(host.signaling(guestId), view);
    const fromGuest = inbox(view);
    await view.start!();
    assert.deepEqual(await fromGuest.next(), { type: "offer", sdp: "v=0" });
    assert.deepEqual(await fromGuest.next(), { type: "candidate", candidate: "a" });
    const fromHost = inbox(guest);
    await guest.start();
    await view.send({ type: "answer", sdp: "v=0" });
    assert.deepEqual(await fromHost.next(), { type: "answer", sdp: "v=0" });
    const left = once<string>((callback) => (host.onpeerleave = callback));
    const viewClosed = once((callback) => (view.onclose = callback));
    await guest.close();
    assert.equal(await left, guestId);
    await viewClosed;
    assert.deepEqual(host.peers, []);
    assert.throws(() => host.signaling(guestId), /not in the room: wait for onpeerjoin$/);
    await host.close();
  });
});

Deno.test("WebSocketSignaling closes once when the host leaves", async () => {
  await withServer(async (_server, url) => {
    const host = await joinHost(url);
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    let closes = 0;
    const closed = once((callback) =>
      guest.onclose = () => {
        closes++;
        callback();
      }
    );
    await host.close();
    await closed;
    await guest.close();
    assert.equal(closes, 1);
    await assert.rejects(guest.send({ type: "offer" }), /is closed$/);
  });
});

Deno.test("WebSocketSignaling.connect waits for the host, within hostTimeout", async () => {
  await withServer(async (_server, url) => {
    const first = await joinHost(url);
    await first.close(); // the room is set up, the host is away
    await assert.rejects(
      WebSocketSignaling.connect(url, { key: GUEST_KEY, hostTimeout: 100 }),
      (error: unknown) => error instanceof SignalingRoomError && error.code === "host_absent",
    );
    let waiting!: () => void;
    const waits = once((callback) => (waiting = callback));
    const connecting = WebSocketSignaling.connect(url, {
      key: GUEST_KEY,
      hostTimeout: 3000,
      onwaitforhost: () => waiting(),
    });
    await waits;
    const host = await joinHost(url);
    const guest = await connecting;
    assert.deepEqual(host.peers, [guest.room.peer]);
    await guest.close();
    await host.close();
  });
});

Deno.test("SignalingRoom.join says why the room refused", async () => {
  await withServer(async (_server, url) => {
    const refused = (code: string) => (error: unknown) => {
      assert.ok(error instanceof SignalingRoomError);
      assert.equal(error.code, code);
      assert.match(error.message, /^Cannot join room as .*: [A-Z].*[^.]$/);
      return true;
    };
    await assert.rejects(
      SignalingRoom.join(url, { role: "guest", key: GUEST_KEY }),
      refused("room_not_found"),
    );
    const host = await joinHost(url);
    await assert.rejects(
      SignalingRoom.join(url, { role: "guest", key: createRoomKey() }),
      refused("key_refused"),
    );
    await assert.rejects(
      SignalingRoom.join(url, { role: "host", key: GUEST_KEY, guestVerifier: GUEST_VERIFIER }),
      refused("key_refused"),
    );
    const guest = await SignalingRoom.join(url, { role: "guest", key: GUEST_KEY });
    await assert.rejects(
      SignalingRoom.join(url, { role: "guest", key: GUEST_KEY }),
      refused("room_full"),
    );
    await guest.close();
    await host.close();
  }, { MAX_GUESTS: "1" });
});

Deno.test("SignalingRoom.join checks its arguments before connecting", async () => {
  const url = `ws://127.0.0.1:9/v1/rooms/${createRoomId()}`;
  const cases: [Parameters<typeof SignalingRoom.join>, RegExp][] = [
    [["ftp://127.0.0.1/", { role: "guest", key: GUEST_KEY }], /URL must start with/],
    [[url, { role: "admin" as "host", key: GUEST_KEY }], /role must be/],
    [[url, { role: "guest", key: "short" }], /16 to 128 base64url/],
    [[url, { role: "host", key: HOST_KEY }], /without a guest verifier/],
    [[url, { role: "guest", key: GUEST_KEY, guestVerifier: GUEST_VERIFIER }], /only the host/],
    [[url, { role: "guest", key: GUEST_KEY, timeout: 0 }], /'timeout' must be a positive/],
  ];
  for (const [args, message] of cases) {
    await assert.rejects(SignalingRoom.join(...args), message);
  }
  const aborted = AbortSignal.abort(new Error("stop"));
  await assert.rejects(
    SignalingRoom.join(url, { role: "guest", key: GUEST_KEY, signal: aborted }),
    /stop/,
  );
});

Deno.test("SignalingRoom.join reports an unreachable server", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  await assert.rejects(
    SignalingRoom.join(`ws://127.0.0.1:${port}/v1/rooms/${createRoomId()}`, {
      role: "guest",
      key: GUEST_KEY,
    }),
    (error: unknown) => error instanceof SignalingRoomError && error.code === "unreachable",
  );
});

Deno.test("SignalingRoom host replaced by a newer one closes for good", async () => {
  await withServer(async (_server, url) => {
    const first = await joinHost(url, { reconnect: { minDelay: 10, maxDelay: 20 } });
    const clock = new ManualClock();
    useClock(first, clock);
    const closed = once<SignalingRoomError | undefined>((callback) => (first.onclose = callback));
    const second = await joinHost(url);
    const error = await closed;
    assert.equal(error?.code, "host_replaced");
    // No reconnect is scheduled that would replace it back: time moves past any.
    assert.equal(clock.pending, 0);
    await clock.advance(1_000);
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    assert.deepEqual(second.peers, [guest.room.peer]);
    await guest.close();
    await Promise.all([first.close(), second.close()]);
  });
});

Deno.test("SignalingRoom reconnects after a drop and pairs a new guest", async () => {
  await withServer(async (server, url) => {
    const host = await joinHost(url, { reconnect: { minDelay: 10, maxDelay: 50 } });
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    const guestClosed = once((callback) => (guest.onclose = callback));
    const dropped = once<Error>((callback) => (host.onerror = callback));
    const left = once<string>((callback) => (host.onpeerleave = callback));
    const roomName = new URL(url).pathname.split("/").at(-1)!;
    await server.miniflare.unsafeEvictDurableObject("mcp-webrtc-signal", "Room", {
      name: roomName,
      webSockets: "close",
    });
    assert.ok(await dropped instanceof SignalingRoomError);
    assert.equal(await left, guest.room.peer);
    await guestClosed;
    const joined: string[] = [];
    host.onpeerjoin = (peer) => joined.push(peer);
    const deadline = Date.now() + 3000;
    let again: WebSocketSignaling | undefined;
    while (!again && Date.now() < deadline) {
      again = await WebSocketSignaling.connect(url, { key: GUEST_KEY, hostTimeout: 500 })
        .catch(() => undefined);
    }
    assert.ok(again, "Expected the host back within 3 s");
    while (!joined.includes(again.room.peer!) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const view = host.signaling(again.room.peer!);
    const fromGuest = inbox(view);
    await view.start!();
    await again.send({ type: "offer" });
    assert.deepEqual(await fromGuest.next(), { type: "offer" });
    await again.close();
    await guest.close();
    await host.close();
  });
});

Deno.test("SignalingRoom pairs with the room hibernating between every step", async () => {
  await withServer(async (server, url) => {
    const roomName = new URL(url).pathname.split("/").at(-1)!;
    const hibernate = () =>
      server.miniflare.unsafeEvictDurableObject("mcp-webrtc-signal", "Room", {
        name: roomName,
        webSockets: "hibernate",
      });
    const pongs = frameCounter((data) => data === "pong");
    const host = await SignalingRoom.join(url, {
      role: "host",
      key: HOST_KEY,
      guestVerifier: GUEST_VERIFIER,
      // The room's auto-response must answer, hibernating or not, within one
      // interval: 500 ms leaves room for a loaded machine and the evictions.
      pingInterval: 500,
      WebSocket: pongs.WebSocket,
    });
    const errors: Error[] = [];
    host.onerror = (error) => errors.push(error);
    await hibernate();
    const joined = once<string>((callback) => (host.onpeerjoin = callback));
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    const view = host.signaling(await joined);
    const fromGuest = inbox(view);
    const fromHost = inbox(guest);
    await Promise.all([view.start!(), guest.start()]);
    await hibernate();
    await guest.send({ type: "offer" });
    assert.deepEqual(await fromGuest.next(), { type: "offer" });
    await hibernate();
    await view.send({ type: "answer" });
    assert.deepEqual(await fromHost.next(), { type: "answer" });
    await hibernate();
    await pongs.reach(pongs.count + 3); // a few pings, answered while hibernating
    assert.deepEqual(errors, []);
    assert.equal(host.peer, "host");
    const viewClosed = once((callback) => (view.onclose = callback));
    await guest.close();
    await viewClosed;
    await host.close();
  });
});

Deno.test("Signaling views reject what the room would drop, and sends after close", async () => {
  await withServer(async (_server, url) => {
    const host = await joinHost(url);
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    await assert.rejects(
      guest.send({ type: "offer", sdp: "x".repeat(70_000) }),
      (error: unknown) =>
        error instanceof RangeError && /the room relays at most 65536$/.test(error.message),
    );
    await assert.rejects(
      guest.send({ sdp: "x" } as unknown as SignalingMessage),
      /must be an object with a string type$/,
    );
    await guest.close();
    await assert.rejects(guest.send({ type: "offer" }), /is closed$/);
    await host.close();
  });
});

Deno.test("SignalingRoom closes when its signal aborts", async () => {
  await withServer(async (_server, url) => {
    const controller = new AbortController();
    const host = await SignalingRoom.join(url, {
      role: "host",
      key: HOST_KEY,
      guestVerifier: GUEST_VERIFIER,
      signal: controller.signal,
    });
    const closed = once<SignalingRoomError | undefined>((callback) => (host.onclose = callback));
    controller.abort();
    assert.equal(await closed, undefined);
    await host.close();
  });
});

/**
 * A stand-in room on 127.0.0.1 that welcomes, never answers pings, and echoes
 * errors. Its clients use Deno's own WebSocket, whose subprotocol list it parses.
 */
function fakeRoom(onFrame: (socket: WebSocket, frame: Record<string, unknown>) => void) {
  const sockets: WebSocket[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mcp-webrtc.v1" });
    sockets.push(socket);
    socket.onopen = () =>
      socket.send(JSON.stringify({ type: "welcome", peer: "host", role: "host", peers: ["a"] }));
    socket.onmessage = (event) => event.data !== "ping" && onFrame(socket, JSON.parse(event.data));
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}/v1/rooms/${createRoomId()}`,
    sockets,
    async close() {
      for (const socket of sockets) if (socket.readyState < WebSocket.CLOSING) socket.close();
      await server.shutdown();
    },
  };
}

/** The room's refusal of frame `ref`, sent to a peer that is not in the room. */
function unknownPeer(ref: unknown): string {
  return JSON.stringify({
    type: "error",
    code: "unknown_peer",
    message: "That peer is not in the room: wait for its join frame",
    ref,
  });
}

/** Joins a fake room as the host, with the platform's WebSocket. */
function joinAsHost(url: string): Promise<SignalingRoom> {
  return SignalingRoom.join(url, {
    // Deno.upgradeWebSocket only parses ", "-separated subprotocols; ws sends ",".
    WebSocket: globalThis.WebSocket,
    role: "host",
    key: HOST_KEY,
    guestVerifier: GUEST_VERIFIER,
  });
}

Deno.test("SignalingRoom routes an error frame to the view that sent the frame", async () => {
  const fake = fakeRoom((socket, frame) => socket.send(unknownPeer(frame.id)));
  try {
    const room = await joinAsHost(fake.url);
    const view = room.signaling("a");
    const error = once<Error>((callback) => (view.onerror = callback));
    await view.send({ type: "offer" });
    assert.match((await error).message, /^Signalling room refused a frame: That peer/);
    await room.close();
  } finally {
    await fake.close();
  }
});

Deno.test("SignalingRoom drops an error frame about a frame to a peer that left since (its goodbye, say)", async () => {
  let answered!: () => void;
  const answer = new Promise<void>((resolve) => (answered = resolve));
  const fake = fakeRoom((socket, frame) => {
    // The peer left before the room refused the frame sent to it.
    socket.send(JSON.stringify({ type: "leave", peer: "a" }));
    socket.send(unknownPeer(frame.id));
    // An error about a frame the room never had: still reported.
    socket.send(JSON.stringify({ type: "error", code: "bad_frame", message: "Bad", ref: 9_999 }));
    answered();
  });
  try {
    const room = await joinAsHost(fake.url);
    const errors: string[] = [];
    // The frames arrive in order: once the second is reported, the first was handled.
    const reported = new Promise<void>((resolve) =>
      room.onerror = (error) => {
        errors.push(error.message);
        resolve();
      }
    );
    const view = room.signaling("a");
    view.onerror = (error) => errors.push(`view: ${error.message}`);
    await view.send({ type: "bye" });
    await answer;
    await reported;
    assert.deepEqual(errors, ["Signalling room refused a frame: Bad (bad_frame)"]);
    await room.close();
  } finally {
    await fake.close();
  }
});

Deno.test("SignalingRoom notices a room that stopped answering pings and reconnects", async () => {
  const fake = fakeRoom(() => {});
  try {
    const room = await SignalingRoom.join(fake.url, {
      // Deno.upgradeWebSocket only parses ", "-separated subprotocols; ws sends ",".
      WebSocket: globalThis.WebSocket,
      role: "host",
      key: HOST_KEY,
      guestVerifier: GUEST_VERIFIER,
      pingInterval: 30,
      reconnect: { minDelay: 10, maxDelay: 20 },
    });
    const lost = await once<Error>((callback) => (room.onerror = callback));
    assert.ok(lost instanceof SignalingRoomError && lost.code === "connection_lost");
    const back = await once<string>((callback) => (room.onpeerjoin = callback));
    assert.equal(back, "a");
    assert.equal(fake.sockets.length, 2);
    await room.close();
  } finally {
    await fake.close();
  }
});

Deno.test("SignalingRoom uses the injected WebSocket and keeps the key out of the URL", async () => {
  await withServer(async (_server, url) => {
    const opened: { url: string; protocols: string[] }[] = [];
    class RecordingWebSocket extends WebSocket {
      constructor(url: string, protocols: string[]) {
        super(url, protocols);
        opened.push({ url, protocols });
      }
    }
    const host = await SignalingRoom.join(url.replace(/^ws/, "http"), {
      role: "host",
      key: HOST_KEY,
      guestVerifier: GUEST_VERIFIER,
      WebSocket: RecordingWebSocket,
    });
    assert.deepEqual(opened, [{
      url: `${url}?role=host`,
      protocols: [
        "mcp-webrtc.v1",
        `mcp-webrtc.key.${HOST_KEY}`,
        `mcp-webrtc.guest-verifier.${GUEST_VERIFIER}`,
      ],
    }]);
    await host.close();
  });
});

Deno.test("SignalingRoom that pings less often than the room's silence limit is closed as silent, and reconnects", async () => {
  await withServer(async (_server, url) => {
    const host = await SignalingRoom.join(url, {
      role: "host",
      key: HOST_KEY,
      guestVerifier: GUEST_VERIFIER,
      pingInterval: 60_000,
      reconnect: { minDelay: 10, maxDelay: 50 },
    });
    const error = await once<Error>((callback) => (host.onerror = callback));
    assert.ok(error instanceof SignalingRoomError);
    assert.equal(error.code, "connection_lost");
    assert.match(error.message, /silent/);
    const guest = await WebSocketSignaling.connect(url, { key: GUEST_KEY, hostTimeout: 3000 });
    assert.deepEqual(guest.room.peers, ["host"]);
    await guest.close();
    await host.close();
  }, { SILENCE_SECONDS: "1" });
});

Deno.test("SignalingRoom asks the room for ICE servers only when asked, reuses them while half their TTL is left, then asks again", async () => {
  await withServer(async (_server, url) => {
    const host = await joinHost(url);
    assert.equal(host.iceServers, undefined, "a join mints nothing");
    const first = await host.requestIceServers();
    assert.equal(first?.length, 1);
    assert.deepEqual(first![0]!.urls, ["turn:127.0.0.1:3478"]);
    assert.match(first![0]!.username!, /^\d+:host$/);
    assert.equal(host.iceServers, first);
    // Asked again at once: the same, without asking the room (whose quota is 2 an hour here).
    assert.equal(await host.requestIceServers(), first);
    // Past half their TTL (2 s of 4; the username's expiry is in whole seconds,
    // so at most 1 s early): asked again, fresh ones. The clock is the event
    // here; wait for it, bounded.
    const halfLife = (servers: IceServer[] | undefined) =>
      Number(servers![0]!.username!.split(":")[0]) - 1 + 0.2;
    const waitUntil = async (seconds: number) => {
      for (let i = 0; i < 200 && Date.now() / 1000 < seconds; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await waitUntil(halfLife(first));
    const fresh = await host.requestIceServers();
    assert.notEqual(fresh, first);
    assert.ok(fresh![0]!.username! > first![0]!.username!);
    // The quota is spent: the room refuses, onerror says so, and the valid ones stay in use.
    await waitUntil(halfLife(fresh));
    const refused = once<Error>((callback) => (host.onerror = callback));
    assert.equal(await host.requestIceServers(), fresh);
    assert.match((await refused).message, /ice_servers_limited/);
    await host.close();
  }, {
    TURN_SECRET: "secret",
    TURN_URLS: "turn:127.0.0.1:3478",
    TURN_TTL_SECONDS: "4",
    TURN_PER_ADDRESS_PER_HOUR: "2",
  });
});

Deno.test("SignalingRoom's host invites and revokes keys, and names each guest's invite", async () => {
  await withServer(async (_server, url) => {
    const host = await joinHost(url);
    const aliceKey = createRoomKey();
    await host.invite("alice", await keyVerifier(aliceKey));
    await host.invite("alice", await keyVerifier(aliceKey)); // the same again: no change
    let joined = once<string>((callback) => (host.onpeerjoin = callback));
    const ticketGuest = await WebSocketSignaling.connect(url, { key: GUEST_KEY });
    assert.equal(await joined, ticketGuest.room.peer);
    joined = once<string>((callback) => (host.onpeerjoin = callback));
    const alice = await WebSocketSignaling.connect(url, { key: aliceKey });
    assert.equal(await joined, alice.room.peer);
    const aliceError = once<Error>((callback) => (alice.onerror = callback));
    assert.equal(host.inviteOf(ticketGuest.room.peer!), "guest");
    assert.equal(host.inviteOf(alice.room.peer!), "alice");
    assert.equal(alice.room.inviteOf("host"), undefined);
    const left = once<string>((callback) => (host.onpeerleave = callback));
    assert.equal(await host.revoke("alice"), 1);
    assert.equal(await left, alice.room.peer);
    assert.equal(host.inviteOf(alice.room.peer!), undefined);
    const error = await aliceError as SignalingRoomError;
    assert.equal(error.code, "revoked");
    assert.match(error.message, /host revoked/);
    await assert.rejects(
      WebSocketSignaling.connect(url, { key: aliceKey }),
      (error: SignalingRoomError) => error.code === "key_refused",
    );
    await assert.rejects(
      host.revoke("alice"),
      (error: SignalingRoomError) =>
        error.code === "frame_refused" &&
        /^Cannot revoke "alice" as .*invite_not_found/.test(error.message),
    );
    await assert.rejects(host.invite("a b", await keyVerifier(aliceKey)), TypeError);
    await assert.rejects(host.invite("alice", "short"), TypeError);
    await assert.rejects(
      ticketGuest.room.invite("mine", await keyVerifier(aliceKey)),
      /^TypeError: Cannot invite as a guest/,
    );
    assert.equal(host.inviteOf(ticketGuest.room.peer!), "guest");
    await ticketGuest.close();
    await host.close();
    await assert.rejects(
      host.revoke("guest"),
      (error: SignalingRoomError) => error.code === "disconnected",
    );
  });
});

Deno.test("SignalingRoom's host learns the invites of the guests present when it joins", async () => {
  await withServer(async (_server, url) => {
    const first = await joinHost(url);
    const aliceKey = createRoomKey();
    await first.invite("alice", await keyVerifier(aliceKey));
    const joined = once<string>((callback) => (first.onpeerjoin = callback));
    // A guest's room connection stays when the host leaves (a WebSocketSignaling closes).
    const alice = await SignalingRoom.join(url, { role: "guest", key: aliceKey });
    const aliceId = await joined;
    await first.close();
    // A host that joins later hears of alice, and of her invite, in its welcome.
    const host = await joinHost(url);
    assert.deepEqual(host.peers, [aliceId]);
    assert.equal(host.inviteOf(aliceId), "alice");
    await alice.close();
    await host.close();
  });
});
