/**
 * What the room queues for a socket that does not read, when both sides of a
 * room are one attacker's (so no end-to-end window holds): the room counts
 * what it sends each socket and closes one that leaves more than its budget
 * unread, against the worker in Miniflare on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { MAX_UNREAD_BYTES, seenFrame } from "../../src/signaling/room_protocol.ts";
import { listenerPid, rssOf } from "./_proc.ts";
import { bodyOf, concat, parseFrames, rawGuest, textFrames } from "./_raw_socket.ts";
import { newRoomId, Peer, withServer } from "./_peer.ts";

/** A room that relays as fast as the test sends: only the unread budget holds. */
const FAST = {
  RELAY_BYTES_PER_SECOND: String(1024 * 1024 * 1024),
  RATE_PER_SECOND: "100000",
  RATE_BURST: "100000",
};

/** The host's next frame that is an object with this type, skipping others. */
async function nextOfType(peer: Peer, type: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 1_000; i++) {
    const frame = await peer.next();
    if (typeof frame === "object" && frame.type === type) return frame;
  }
  throw new Error(`Expected a ${type} frame`);
}

/** Sends "ping" and waits for its "pong": the room has handled every frame sent before. */
async function roundTrip(peer: Peer): Promise<void> {
  peer.send("ping");
  const kept: Peer["frames"] = [];
  try {
    for (let i = 0; i < 10_000; i++) {
      const frame = await peer.next();
      if (frame === "pong") return;
      kept.push(frame);
    }
    throw new Error("Expected a pong");
  } finally {
    peer.frames.unshift(...kept);
  }
}

/** Reads a connection to its end (or `limit` bytes), each read bounded in time. */
async function readAll(connection: Deno.TcpConn, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(256 * 1024);
  let total = 0;
  while (total < limit) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = await Promise.race([
      connection.read(buffer).catch((error) => {
        if (error instanceof Deno.errors.ConnectionReset) return null;
        throw error;
      }),
      new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 5_000))),
    ]);
    clearTimeout(timer);
    if (read === null) break;
    chunks.push(buffer.slice(0, read));
    total += read;
    // The close frame is the last thing the room sends.
    if (parseFrames(bodyOf(concat(chunks))).some((frame) => frame.opcode === 8)) break;
  }
  return concat(chunks);
}

Deno.test("a host relaying to its own guest that never reads fills at most MAX_UNREAD_BYTES: the guest is closed as unread_limit (4413), workerd stays flat", async () => {
  await withServer(async (server) => {
    const pid = listenerPid(Number(new URL(server.httpUrl).port));
    const room = newRoomId();
    const host = await Peer.host(server, room);
    host.ws.binaryType = "arraybuffer";
    const read = host.ws.onmessage!;
    host.ws.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) read.call(host.ws, event);
    };
    await nextOfType(host, "welcome");
    const guest = await rawGuest(server.httpUrl, room);
    const guestId = (await nextOfType(host, "join")).peer as string;
    const id = new Uint8Array(8);
    for (let i = 0; i < 8; i++) id[i] = parseInt(guestId.slice(2 * i, 2 * i + 2), 16);
    const frame = new Uint8Array(1 + 8 + 64 * 1024);
    frame[0] = 0x52;
    frame.set(id, 1);
    const before = rssOf(pid);
    // 48 MiB in batches of 1 MiB, each batch handled before the next; the host
    // stops once the room tells it the guest left.
    let sent = 0;
    let left = false;
    for (let batch = 0; batch < 48 && !left; batch++) {
      for (let i = 0; i < 16; i++) host.ws.send(frame);
      sent += 16 * frame.length;
      await roundTrip(host);
      left = host.frames.some((f) => typeof f === "object" && f.type === "leave");
    }
    const grown = rssOf(pid) - before;
    console.log(
      `relayed ${(sent / 2 ** 20).toFixed(0)} MiB to a guest that never reads; workerd grew by ${
        grown.toFixed(1)
      } MiB`,
    );
    assert.ok(left, `the guest was never closed: ${sent} bytes relayed to it`);
    assert.ok(grown < 16, `workerd grew by ${grown.toFixed(1)} MiB`);
    // What the room queued for the guest: its budget, the error frame and the close.
    const bytes = await readAll(guest, 64 * 1024 * 1024);
    guest.close();
    const body = bodyOf(bytes);
    const frames = parseFrames(body);
    const close = frames.find((f) => f.opcode === 8);
    assert.ok(close, "the room closed the guest");
    assert.equal((close.payload[0]! << 8) | close.payload[1]!, 4413);
    assert.equal(new TextDecoder().decode(close.payload.slice(2)), "unread_limit");
    const texts = textFrames(frames);
    const error = texts.find((f) => f.type === "error");
    assert.equal(error?.code, "unread_limit");
    assert.match(error?.message as string, /MAX_UNREAD_BYTES/);
    assert.ok(
      body.length <= MAX_UNREAD_BYTES + frame.length + 1024,
      `${body.length} bytes queued for a guest that never read`,
    );
    await host.close();
  }, FAST);
});

Deno.test("a guest that answers the room's marks reads far more than MAX_UNREAD_BYTES and stays", async () => {
  await withServer(async (server) => {
    const room = newRoomId();
    const host = await Peer.host(server, room);
    await nextOfType(host, "welcome");
    const guest = await Peer.guest(server, room);
    guest.ws.binaryType = "arraybuffer";
    let received = 0;
    let marks = 0;
    const onmessage = guest.ws.onmessage!;
    guest.ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) return void (received += event.data.byteLength);
      if (event.data.startsWith('{"type":"mark"')) {
        marks++;
        return guest.ws.send(seenFrame(JSON.parse(event.data).mark));
      }
      onmessage.call(guest.ws, event);
    };
    const guestId = (await nextOfType(host, "join")).peer as string;
    const id = new Uint8Array(8);
    for (let i = 0; i < 8; i++) id[i] = parseInt(guestId.slice(2 * i, 2 * i + 2), 16);
    const frame = new Uint8Array(1 + 8 + 64 * 1024);
    frame[0] = 0x52;
    frame.set(id, 1);
    const total = 4 * MAX_UNREAD_BYTES;
    // The host keeps to a window of 1 MiB, as the relay's peers do: each
    // batch is read (the guest's pong comes after it) before the next.
    for (let sent = 0; sent < total; sent += 16 * frame.length) {
      for (let i = 0; i < 16; i++) host.ws.send(frame);
      await roundTrip(host);
      await roundTrip(guest);
    }
    // A guest gets each frame without the id.
    assert.equal(received, Math.ceil(total / (16 * frame.length)) * 16 * (frame.length - 8));
    assert.ok(marks >= 4, `${marks} marks`);
    assert.equal(guest.ws.readyState, WebSocket.OPEN);
    assert.ok(!host.frames.some((f) => typeof f === "object" && f.type === "leave"));
    await guest.close();
    await host.close();
  }, FAST);
});
