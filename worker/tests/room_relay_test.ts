/**
 * The room's relay frames, end to end against the worker in Miniflare on
 * 127.0.0.1: raw WebSockets, so every binary frame and error frame is checked
 * as sent.
 */
import assert from "node:assert/strict";
import type { LocalSignaling } from "../local.ts";
import { encodeRelayFrame, readRelayFrame } from "../../src/relay/protocol.ts";
import { GUEST_KEY, GUEST_VERIFIER, hibernate, HOST_KEY, newRoomId, withServer } from "./_peer.ts";

type Frame = Record<string, unknown> | Uint8Array;

/** A raw client that keeps text and binary frames; every wait is bounded. */
class Client {
  readonly frames: Frame[] = [];
  readonly closed: Promise<CloseEvent>;
  #wake?: () => void;

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = ({ data }) => {
      this.frames.push(typeof data === "string" ? JSON.parse(data) : new Uint8Array(data));
      this.#wake?.();
    };
    this.closed = new Promise((resolve) => (ws.onclose = resolve));
  }

  static async open(server: LocalSignaling, room: string, role: "host" | "guest") {
    const protocols = ["mcp-webrtc.v1", `mcp-webrtc.key.${role === "host" ? HOST_KEY : GUEST_KEY}`];
    if (role === "host") protocols.push(`mcp-webrtc.guest-verifier.${GUEST_VERIFIER}`);
    const client = new Client(
      new WebSocket(`${server.url}/v1/rooms/${room}?role=${role}`, protocols),
    );
    await new Promise((resolve) => client.ws.addEventListener("open", resolve));
    return client;
  }

  async next(): Promise<Frame> {
    const deadline = Date.now() + 5000;
    while (this.frames.length === 0) {
      const left = deadline - Date.now();
      assert.ok(left > 0, "Expected a frame within 5 s");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.frames.shift()!;
  }

  /** The next text frame, skipping none. */
  async text(): Promise<Record<string, unknown>> {
    const frame = await this.next();
    assert.ok(!(frame instanceof Uint8Array), "Expected a text frame, got a binary one");
    return frame;
  }

  /** The next binary frame, skipping none. */
  async binary(): Promise<Uint8Array> {
    const frame = await this.next();
    assert.ok(frame instanceof Uint8Array, `Expected a binary frame, got ${JSON.stringify(frame)}`);
    return frame;
  }

  async close(): Promise<void> {
    this.ws.close(1000);
    await this.closed;
  }
}

/** A host and two guests, past their welcome and join frames. */
async function room(server: LocalSignaling) {
  const id = newRoomId();
  const host = await Client.open(server, id, "host");
  const welcome = await host.text();
  const a = await Client.open(server, id, "guest");
  const aId = (await a.text()).peer as string;
  const b = await Client.open(server, id, "guest");
  const bId = (await b.text()).peer as string;
  assert.deepEqual(await host.text(), { type: "join", peer: aId, invite: "guest" });
  assert.deepEqual(await host.text(), { type: "join", peer: bId, invite: "guest" });
  return {
    id,
    host,
    a,
    b,
    aId,
    bId,
    welcome,
    close: () => Promise.all([host.close(), a.close(), b.close()]),
  };
}

Deno.test("Room relays binary frames between the host and one guest, naming the guest on the host's side", async () => {
  await withServer(async (server) => {
    const { host, a, b, aId, bId, welcome, close } = await room(server);
    assert.deepEqual(welcome.relay, { maxFrameBytes: 131_072, bytesPerSecond: 8_388_608 });
    host.ws.send(encodeRelayFrame(new Uint8Array([1, 2, 3]), aId));
    assert.deepEqual(await a.binary(), encodeRelayFrame(new Uint8Array([1, 2, 3])));
    b.ws.send(encodeRelayFrame(new Uint8Array([9])));
    assert.deepEqual(readRelayFrame(await host.binary(), true), {
      peer: bId,
      payload: new Uint8Array([9]),
    });
    // A guest cannot name another guest: its frame goes to the host, stamped with its own id.
    a.ws.send(encodeRelayFrame(new Uint8Array([7]), bId));
    assert.deepEqual(readRelayFrame(await host.binary(), true)?.peer, aId);
    // B saw nothing meant for A: its next frame is the one the host sends it now.
    host.ws.send(encodeRelayFrame(new Uint8Array([4]), bId));
    assert.deepEqual(await b.binary(), encodeRelayFrame(new Uint8Array([4])));
    await close();
  });
});

Deno.test("Room relays after it hibernated: who is who lives in the sockets' attachments", async () => {
  await withServer(async (server) => {
    const { id, host, a, aId, close } = await room(server);
    await hibernate(server, id);
    host.ws.send(encodeRelayFrame(new Uint8Array([5]), aId));
    assert.deepEqual(await a.binary(), encodeRelayFrame(new Uint8Array([5])));
    await close();
  });
});

Deno.test("Room answers a relay frame it cannot deliver with an error frame naming the guest, and keeps the socket", async () => {
  await withServer(async (server) => {
    const { host, a, aId, close } = await room(server);
    host.ws.send(encodeRelayFrame(new Uint8Array([1]), "00000000000000ff"));
    const unknown = await host.text();
    assert.equal(unknown.code, "unknown_peer");
    assert.equal(unknown.peer, "00000000000000ff");
    host.ws.send(new Uint8Array([0x52, 1, 2]));
    assert.equal((await host.text()).code, "relay_bad_frame");
    host.ws.send(new Uint8Array([0x00, 1, 2]));
    assert.equal((await host.text()).code, "binary_frame");
    host.ws.send(encodeRelayFrame(new Uint8Array([2]), aId));
    assert.deepEqual(await a.binary(), encodeRelayFrame(new Uint8Array([2])));
    await close();
  });
});

Deno.test("Room with RELAY off announces relay: null and answers relay frames with relay_disabled", async () => {
  await withServer(async (server) => {
    const { host, a, aId, welcome, close } = await room(server);
    assert.equal(welcome.relay, null);
    a.ws.send(encodeRelayFrame(new Uint8Array([1])));
    const refused = await a.text();
    assert.equal(refused.code, "relay_disabled");
    assert.equal(refused.peer, aId);
    assert.match(refused.message as string, /operator turned RELAY off/);
    host.ws.send(encodeRelayFrame(new Uint8Array([1]), aId));
    assert.equal((await host.text()).code, "relay_disabled");
    await close();
  }, { RELAY: "off" });
});

Deno.test("Room refuses a relay frame over RELAY_MAX_FRAME_BYTES with relay_frame_too_large", async () => {
  await withServer(async (server) => {
    const { host, a, aId, welcome, close } = await room(server);
    const max = (welcome.relay as { maxFrameBytes: number }).maxFrameBytes;
    assert.equal(max, 70_000);
    a.ws.send(encodeRelayFrame(new Uint8Array(max)));
    const refused = await a.text();
    assert.equal(refused.code, "relay_frame_too_large");
    assert.equal(refused.peer, aId);
    a.ws.send(encodeRelayFrame(new Uint8Array(max - 1)));
    assert.equal((await host.binary()).byteLength, 1 + 8 + max - 1);
    await close();
  }, { RELAY_MAX_FRAME_BYTES: "70000" });
});

Deno.test("Room refuses relay frames beyond RELAY_BYTES_PER_SECOND for the whole room with relay_rate_limited", async () => {
  await withServer(async (server) => {
    const { host, a, b, aId, bId, close } = await room(server);
    // The budget is one second's worth, shared: A's frame takes most, B's does not fit.
    a.ws.send(encodeRelayFrame(new Uint8Array(80_000)));
    assert.equal((await host.binary()).byteLength, 1 + 8 + 80_000);
    b.ws.send(encodeRelayFrame(new Uint8Array(80_000)));
    const refused = await b.text();
    assert.equal(refused.code, "relay_rate_limited");
    assert.equal(refused.peer, bId);
    host.ws.send(encodeRelayFrame(new Uint8Array(80_000), aId));
    assert.equal((await host.text()).code, "relay_rate_limited");
    await close();
  }, { RELAY_BYTES_PER_SECOND: "100000" });
});
