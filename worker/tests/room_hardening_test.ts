/**
 * The room under attack and under neglect, against the worker in Miniflare on
 * 127.0.0.1: room ids in other spellings, hosts that replace each other, guests
 * that fall silent, and exceptions nobody expected.
 */
import assert from "node:assert/strict";
import { SignalingRoom } from "../../src/signaling/signaling_room.ts";
import type { SignalingRoomError } from "../../src/errors.ts";
import type { LocalSignaling } from "../local.ts";
import { listenerPid, settle, tcpSocketsOf } from "./_proc.ts";
import { upgradeAnswer, within } from "./_raw_socket.ts";
import {
  DEFAULT_RELAY,
  GUEST_KEY,
  GUEST_VERIFIER,
  HOST_KEY,
  newRoomId,
  OTHER_KEY,
  pair,
  Peer,
  verifierOf,
  withServer,
} from "./_peer.ts";

/** Writes the character at `index` as a percent-escape, in upper or lower case hex. */
function escapeAt(room: string, index: number, lower = false): string {
  const hex = room.charCodeAt(index).toString(16).padStart(2, "0");
  return `${room.slice(0, index)}%${lower ? hex : hex.toUpperCase()}${room.slice(index + 1)}`;
}

Deno.test("a ticket's room id spelt with percent-escapes is refused with 400 before any room wakes, so no other key can claim the room", async () => {
  await withServer(async (server) => {
    const room = await verifierOf(HOST_KEY); // 43 characters: bound to the host key
    const spellings = [
      escapeAt(room, 0),
      escapeAt(room, 20, true),
      `${room.slice(0, 41)}%41`, // 43 characters long as sent
      `${room.slice(0, 42)}%2d`,
    ];
    const headers = {
      "Sec-WebSocket-Protocol":
        `mcp-webrtc.v1, mcp-webrtc.key.${OTHER_KEY}, mcp-webrtc.guest-verifier.${GUEST_VERIFIER}`,
    };
    for (const spelling of spellings) {
      const response = await fetch(`${server.httpUrl}/v1/rooms/${spelling}?role=host`, { headers });
      assert.equal(response.status, 400, spelling);
      const body = await response.json() as { error: { code: string; message: string } };
      assert.equal(body.error.code, "bad_room_id", spelling);
      assert.match(body.error.message, /^[A-Z].*[^.]$/);
      const squatter = await Peer.open(server, spelling, "host", OTHER_KEY, {
        verifier: GUEST_VERIFIER,
      });
      await squatter.closed;
      assert.deepEqual(squatter.frames, [], `${spelling} was let in`);
    }
    assert.deepEqual(await server.miniflare.listDurableObjectIds("ROOMS"), []);
    const desktop = await Peer.host(server, room);
    assert.deepEqual(await desktop.next(), {
      type: "welcome",
      peer: "host",
      role: "host",
      peers: [],
      relay: DEFAULT_RELAY,
      hellos: true,
    });
    const agent = await Peer.guest(server, room, GUEST_KEY);
    assert.equal((await agent.next() as Record<string, unknown>).type, "welcome");
    await agent.close();
    await desktop.close();
  });
});

Deno.test("twenty host replacements and twenty refused joins leave no connection behind in workerd", async () => {
  if (Deno.build.os !== "linux") {
    // The sockets of a process are read from /proc.
    console.log("skipped: counting a process's sockets needs Linux's /proc");
    return;
  }
  await withServer(async (server) => {
    const port = Number(new URL(server.httpUrl).port);
    const pid = listenerPid(port);
    const room = newRoomId();
    const url = `${server.url}/v1/rooms/${room}`;
    // The runtime's own WebSocket closes its end as soon as it answered the
    // room's close: the client that showed the half-closed connections.
    const join = () =>
      SignalingRoom.join(url, {
        role: "host",
        key: HOST_KEY,
        guestVerifier: GUEST_VERIFIER,
        WebSocket: globalThis.WebSocket,
        reconnect: false,
      });
    let host = await join();
    const guest = await Peer.guest(server, room);
    assert.equal((await guest.next() as Record<string, unknown>).type, "welcome");
    for (let i = 0; i < 20; i++) {
      const replaced = new Promise<SignalingRoomError | undefined>((resolve) =>
        host.onclose = resolve
      );
      const next = await join();
      assert.equal((await replaced)?.code, "host_replaced");
      host = next;
    }
    for (let i = 0; i < 20; i++) {
      const error = await SignalingRoom.join(url, {
        role: "host",
        key: OTHER_KEY,
        guestVerifier: GUEST_VERIFIER,
        WebSocket: globalThis.WebSocket,
      }).catch((error) => error);
      assert.equal((error as SignalingRoomError).code, "key_refused");
    }
    // One host and one guest are connected: nothing else may stay open.
    const open = { LISTEN: 1, ESTABLISHED: 2 };
    assert.deepEqual(await settle(() => tcpSocketsOf(pid, port), open), open);
    await guest.close();
    await host.close();
    assert.deepEqual(await settle(() => tcpSocketsOf(pid, port), { LISTEN: 1 }), { LISTEN: 1 });
  });
});

/** The next frame that is not a `pong`. */
async function nextSignal(peer: Peer): Promise<Record<string, unknown>> {
  for (let i = 0; i < 1000; i++) {
    const frame = await peer.next();
    if (frame !== "pong") return frame as Record<string, unknown>;
  }
  throw new Error("Expected a frame other than pong");
}

Deno.test("a guest that sends nothing, not even ping, is evicted after SILENCE_SECONDS and frees its slot; a pinging host stays", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    // The host only pings: the runtime answers without waking the room, so only
    // the auto-response timestamp shows that it is alive.
    const pinger = setInterval(() => host.send("ping"), 100);
    try {
      await server.hibernate(room);
      const closed = await within(guest.closed, 20_000, "the silent guest to be closed");
      assert.equal(closed.code, 4408);
      assert.equal(closed.reason, "silent");
      const error = guest.frames.at(-1) as Record<string, unknown>;
      assert.equal(error.code, "silent");
      assert.match(error.message as string, /^[A-Z].*[^.]$/);
      assert.deepEqual(await nextSignal(host), { type: "leave", peer: guestId });
      const next = await Peer.guest(server, room);
      const welcome = await next.next() as Record<string, unknown>;
      assert.equal(welcome.type, "welcome", "the evicted guest's slot is free");
      assert.deepEqual(await nextSignal(host), {
        type: "join",
        peer: welcome.peer,
        invite: "guest",
      });
      next.signal("host", { type: "offer" });
      assert.deepEqual(await nextSignal(host), {
        type: "signal",
        from: welcome.peer,
        data: { type: "offer" },
      });
      await next.close();
    } finally {
      clearInterval(pinger);
    }
    await host.close();
  }, { SILENCE_SECONDS: "3", MAX_GUESTS: "1" }); // well above the host's pings, even on a loaded machine
});

/**
 * A worker whose `env` throws when `name` is read, in the routes and in the
 * room alike: an exception nobody expected, at a seam of the real code.
 */
function faultyWorker(name: string): string {
  return `
import worker, { Room as RealRoom } from "./worker.js";
const faulty = (env) => new Proxy(env, {
  get(target, key) {
    if (key === ${JSON.stringify(name)}) throw new Error("injected fault");
    return target[key];
  },
});
export class Room extends RealRoom {
  constructor(ctx, env) {
    super(ctx, faulty(env));
  }
}
export default { fetch: (request, env, ctx) => worker.fetch(request, faulty(env), ctx) };
`;
}

/** Sends a WebSocket upgrade request over plain TCP and reads the whole answer. */
async function upgradeRequest(
  server: LocalSignaling,
  path: string,
  protocols: string[],
): Promise<{ status: number; body: string }> {
  const { status, text } = await upgradeAnswer(server.httpUrl, `GET ${path} HTTP/1.1`, protocols);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

/** Collects what the worker logs, and waits for a line. */
class LogWatch {
  text = "";
  #wake?: () => void;
  readonly onLog = (text: string) => {
    this.text += text;
    this.#wake?.();
  };
  async waitFor(pattern: RegExp): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (!pattern.test(this.text)) {
      assert.ok(Date.now() < deadline, `Expected the worker to log ${pattern}: ${this.text}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  }
}

const HOST_PROTOCOLS = [
  "mcp-webrtc.v1",
  `mcp-webrtc.key.${HOST_KEY}`,
  `mcp-webrtc.guest-verifier.${GUEST_VERIFIER}`,
];

function assertInternalError(answer: { status: number; body: string }): void {
  assert.equal(answer.status, 500, answer.body);
  const { error } = JSON.parse(answer.body) as { error: { code: string; message: string } };
  assert.equal(error.code, "internal_error");
  assert.match(error.message, /^[A-Z].*: .*[^.]$/);
}

/**
 * Asks to join a room as host from a worker whose `binding` throws when read,
 * and checks the answer is the documented JSON error and the fault is logged.
 */
async function assertHostJoinFaults(binding: string): Promise<void> {
  const log = new LogWatch();
  await withServer(
    async (server) => {
      const answer = await upgradeRequest(
        server,
        `/v1/rooms/${newRoomId()}?role=host`,
        HOST_PROTOCOLS,
      );
      assertInternalError(answer);
      await log.waitFor(/injected fault/);
    },
    {},
    { entry: faultyWorker(binding), onLog: log.onLog },
  );
}

Deno.test("an exception in the routes answers the documented JSON error and is logged", async () => {
  await assertHostJoinFaults("ROOMS");
});

Deno.test("an exception in a room's join answers the documented JSON error and is logged", async () => {
  await assertHostJoinFaults("MAX_GUESTS");
});

Deno.test("an exception while a room handles a frame answers an internal_error frame, is logged, and the socket stays", async () => {
  const log = new LogWatch();
  await withServer(
    async (server) => {
      const { host, guest } = await pair(server);
      guest.signal("host", { type: "offer" }, { id: 5 });
      assert.deepEqual({ ...await guest.next() as object, message: "" }, {
        type: "error",
        code: "internal_error",
        message: "",
        ref: 5,
      });
      await log.waitFor(/injected fault/);
      guest.send("ping");
      assert.equal(await guest.next(), "pong");
      assert.equal(guest.ws.readyState, WebSocket.OPEN);
      await guest.close();
      await host.close();
    },
    {},
    { entry: faultyWorker("RATE_PER_SECOND"), onLog: log.onLog },
  );
});
