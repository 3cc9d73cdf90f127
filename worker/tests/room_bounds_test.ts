/**
 * What one socket can make the room hold, against the worker in Miniflare on
 * 127.0.0.1: every frame is charged to the socket's rate limit, error replies
 * come from a budget per socket, refused joins end their connections, and a
 * room answers only GET.
 */
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { ERROR_REPLY_BURST, keyVerifier } from "../../src/signaling/room_protocol.ts";
import { bundleWorker } from "../local.ts";
import { listenerPid, rssOf, settle, tcpSocketsOf } from "./_proc.ts";
import {
  bodyOf,
  concat,
  parseFrames,
  rawGuest,
  textFrames,
  upgradeAnswer,
  within,
} from "./_raw_socket.ts";
import { GUEST_KEY, newRoomId, OTHER_KEY, pair, Peer, withServer } from "./_peer.ts";

/** The error frames a peer received, by code. */
function errorCodes(peer: Peer): string[] {
  return peer.frames.flatMap((frame) =>
    typeof frame === "object" && frame.type === "error" ? [frame.code as string] : []
  );
}

Deno.test("one-byte relay frames count against a guest's rate limit: it is closed as rate_limited and the host gets only what the bucket allowed", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    // The host counts the relay frames it gets (binary: not for Peer's JSON reader).
    let relayed = 0;
    host.ws.binaryType = "arraybuffer";
    const read = host.ws.onmessage!;
    host.ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) relayed++;
      else read.call(host.ws, event);
    };
    const frame = new Uint8Array([0x52, 0x01]);
    const started = Date.now();
    for (let i = 0; i < 3_000; i++) guest.ws.send(frame);
    const closed = await within(guest.closed, 10_000, "the flooding guest to be closed");
    const seconds = (Date.now() - started) / 1000;
    assert.equal(closed.code, 4429);
    assert.equal(closed.reason, "rate_limited");
    // The bucket: RATE_BURST (200) frames at once and RATE_PER_SECOND (50) a
    // second, a relay frame costing an eighth.
    assert.ok(relayed <= (200 + 50 * seconds) * 8, `${relayed} frames in ${seconds} s`);
    assert.ok(relayed < 3_000, `${relayed} of 3000 frames reached the host`);
    await host.close();
  });
});

Deno.test("a guest that keeps sending malformed binary frames gets ERROR_REPLY_BURST error frames, then too_many_errors and close 4429; the host sees it leave", async () => {
  await withServer(async (server) => {
    const { host, guest, guestId } = await pair(server);
    for (let i = 0; i < 150; i++) guest.ws.send(new Uint8Array([1]));
    const closed = await within(guest.closed, 10_000, "the guest to be closed");
    assert.equal(closed.code, 4429);
    assert.equal(closed.reason, "too_many_errors");
    const codes = errorCodes(guest);
    assert.equal(codes.length, ERROR_REPLY_BURST + 1);
    assert.deepEqual(new Set(codes.slice(0, -1)), new Set(["binary_frame"]));
    assert.equal(codes.at(-1), "too_many_errors");
    const last = guest.frames.at(-1) as Record<string, unknown>;
    assert.match(last.message as string, /ERROR_REPLY_BURST.*: .*[^.]$/);
    assert.deepEqual(await host.next(), { type: "leave", peer: guestId });
    await host.close();
  });
});

Deno.test("an occasional refused frame never closes a socket: the error budget refills", async () => {
  await withServer(async (server) => {
    const { host, guest } = await pair(server);
    // Half the burst, twice, a second apart with the budget refilling meanwhile:
    // far under what closes, and every one answered.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < ERROR_REPLY_BURST / 2; i++) guest.signal("0123456789abcdef", {});
      for (let i = 0; i < ERROR_REPLY_BURST / 2; i++) {
        assert.equal((await guest.next() as Record<string, unknown>).code, "forbidden_recipient");
      }
    }
    guest.signal("host", { type: "offer" });
    assert.equal((await host.next() as Record<string, unknown>).type, "signal");
    assert.equal(guest.ws.readyState, WebSocket.OPEN);
    await guest.close();
    await host.close();
  });
});

/** One client frame, masked with a zero key (the payload as is). */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + 4 + payload.length);
  out.set([0x80 | opcode, 0x80 | payload.length]);
  out.set(payload, 6);
  return out;
}

Deno.test("a guest that never reads and floods one-byte binary frames is queued at most ERROR_REPLY_BURST error frames, then closed", async () => {
  await withServer(async (server) => {
    const pid = listenerPid(Number(new URL(server.httpUrl).port));
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await host.next();
    const connection = await rawGuest(server.httpUrl, room);
    const before = rssOf(pid);
    // 20,000 frames written without reading one byte of the answers.
    const one = clientFrame(2, new Uint8Array([1]));
    const batch = new Uint8Array(one.length * 1_000);
    for (let i = 0; i < 1_000; i++) batch.set(one, i * one.length);
    try {
      for (let i = 0; i < 20; i++) await within(connection.write(batch), 5_000, "a write");
    } catch (error) {
      // The room may close the connection while the flood is still being written.
      if (
        !(error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe)
      ) {
        throw error;
      }
    }
    const grown = rssOf(pid) - before;
    // Now read everything the room queued, until it closed.
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65_536);
    let total = 0;
    for (let i = 0; i < 100_000; i++) {
      const read = await within(connection.read(buffer), 5_000, "the room to close").catch(
        (error) => {
          if (error instanceof Deno.errors.ConnectionReset) return null;
          throw error;
        },
      );
      if (read === null) break;
      chunks.push(buffer.slice(0, read));
      total += read;
      const text = new TextDecoder().decode(buffer.slice(0, read));
      if (text.includes("too_many_errors") && chunks.length > 0) {
        if (parseFrames(bodyOf(concat(chunks))).some((frame) => frame.opcode === 8)) break;
      }
    }
    connection.close();
    const frames = parseFrames(bodyOf(concat(chunks)));
    const texts = textFrames(frames);
    const errors = texts.filter((f) => f.type === "error").map((f) => f.code);
    console.log(`workerd grew by ${grown.toFixed(1)} MiB; the room queued ${total} bytes`);
    assert.equal(errors.length, ERROR_REPLY_BURST + 1, `${errors.length} error frames`);
    assert.equal(errors.at(-1), "too_many_errors");
    const close = frames.find((f) => f.opcode === 8);
    assert.ok(close, "the room closed the connection");
    assert.equal((close.payload[0]! << 8) | close.payload[1]!, 4429);
    assert.ok(total < 64 * 1024, `${total} bytes queued for a socket that never read`);
    await host.close();
  });
});

Deno.test("refused joins of a client that ignores the error frame leave no half-closed connection in workerd", async () => {
  if (Deno.build.os !== "linux") {
    console.log("skipped: counting a process's sockets needs Linux's /proc");
    return;
  }
  await withServer(async (server) => {
    const port = Number(new URL(server.httpUrl).port);
    const pid = listenerPid(port);
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await host.next();
    // Peer reads the error frame and does not close: the room closes after its grace.
    for (let i = 0; i < 5; i++) {
      const squatter = await Peer.guest(server, room, OTHER_KEY);
      const closed = await within(squatter.closed, 10_000, "the refused join to be closed");
      assert.equal(closed.code, 4403);
      assert.deepEqual(errorCodes(squatter), ["key_refused"]);
    }
    const open = { LISTEN: 1, ESTABLISHED: 1 };
    assert.deepEqual(await settle(() => tcpSocketsOf(pid, port), open), open);
    await host.close();
  });
});

/** The worker on a socket of its own, without Miniflare's entry worker in front. */
async function directWorker(): Promise<{ url: URL; miniflare: Miniflare }> {
  const config = JSON.parse(
    (await Deno.readTextFile(new URL("../wrangler.jsonc", import.meta.url))).replace(
      /^\s*\/\/.*$/gm,
      "",
    ),
  );
  const miniflare = new Miniflare({
    name: config.name,
    modules: [{ type: "ESModule", path: "index.js", contents: await bundleWorker() }],
    compatibilityDate: config.compatibility_date,
    durableObjects: { ROOMS: { className: "Room", useSQLite: true } },
    bindings: config.vars,
    host: "127.0.0.1",
    port: 0,
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
  });
  await miniflare.ready;
  return { url: await miniflare.unsafeGetDirectURL(), miniflare };
}

Deno.test("a room asked with an Upgrade header and any method but GET answers 405 method_not_allowed, never a 5xx, and no room wakes", async () => {
  const { url, miniflare } = await directWorker();
  try {
    const room = await keyVerifier(newRoomId());
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]) {
      const { status, text } = await upgradeAnswer(
        url,
        `${method} /v1/rooms/${room}?role=guest HTTP/1.1`,
        ["mcp-webrtc.v1", `mcp-webrtc.key.${GUEST_KEY}`],
        ["Content-Length: 0"],
      );
      assert.equal(status, 405, `${method}: ${text}`);
      assert.match(text, /\r\nallow: GET\r\n/i, method);
      if (method !== "HEAD") assert.match(text, /"code":"method_not_allowed"/, method);
    }
    assert.deepEqual(await miniflare.listDurableObjectIds("ROOMS"), []);
  } finally {
    await miniflare.dispose();
  }
});

Deno.test("after a guest is refused, rate-limited or closed for its errors, the others in the room go on", async () => {
  await withServer(async (server) => {
    const { room, host, guest, guestId } = await pair(server);
    const flooder = await Peer.guest(server, room);
    const welcome = await flooder.next() as Record<string, unknown>;
    assert.deepEqual(await host.next(), { type: "join", peer: welcome.peer, invite: "guest" });
    for (let i = 0; i < 150; i++) flooder.ws.send(new Uint8Array([1]));
    assert.equal((await within(flooder.closed, 10_000, "the flooder closed")).code, 4429);
    assert.deepEqual(await host.next(), { type: "leave", peer: welcome.peer });
    guest.signal("host", { type: "offer" });
    assert.deepEqual(await host.next(), { type: "signal", from: guestId, data: { type: "offer" } });
    host.signal(guestId, { type: "answer" });
    assert.deepEqual(await guest.next(), {
      type: "signal",
      from: "host",
      data: { type: "answer" },
    });
    await guest.close();
    await host.close();
  });
});

Deno.test("killed guests' slots are freed at once, also in a hibernated room: the host sees every leave and a full room admits new guests", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await host.next();
    const url = `${server.url}/v1/rooms/${room}?role=guest`;
    const children: Deno.ChildProcess[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-net",
            new URL("./_guest_process.ts", import.meta.url).pathname,
            url,
            GUEST_KEY,
          ],
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        children.push(child);
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        const { value } = await within(reader.read(), 10_000, "a guest process to join");
        assert.match(value ?? "", /joined/);
        reader.releaseLock();
        assert.equal((await host.next() as Record<string, unknown>).type, "join");
      }
      // The room is full: MAX_GUESTS is 4 here.
      const refused = await Peer.guest(server, room);
      await refused.closed;
      assert.deepEqual(errorCodes(refused), ["room_full"]);
      // Asleep, as an idle room is: the first close wakes it.
      assert.ok(await server.hibernate(room));
      const killed = Date.now();
      for (const child of children) child.kill("SIGKILL");
      const leaves: number[] = [];
      for (let i = 0; i < 4; i++) {
        assert.equal((await host.next() as Record<string, unknown>).type, "leave");
        leaves.push(Date.now() - killed);
      }
      console.log(`leaves seen after ${leaves.join(", ")} ms`);
      assert.ok(leaves.at(-1)! < 1_000, `the last slot was freed after ${leaves.at(-1)} ms`);
      const next = await Peer.guest(server, room);
      assert.equal((await next.next() as Record<string, unknown>).type, "welcome");
      await next.close();
    } finally {
      for (const child of children) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await child.status;
      }
    }
    await host.close();
  }, { MAX_GUESTS: "4" });
});
