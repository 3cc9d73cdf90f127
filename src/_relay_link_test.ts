import assert from "node:assert/strict";
import { RelayKeyShare } from "./_relay_crypto.ts";
import { RELAY_MAX_MESSAGE_SIZE, type RelayChannel, RelayLink } from "./_relay_link.ts";
import { DataChannelTransport } from "./data_channel_transport.ts";
import { RelayError } from "./errors.ts";
import type { RelayPipe } from "./signaling/relay_protocol.ts";
import { RELAY_FALLBACK_DELAY } from "./constants.ts";

type Handlers = Parameters<RelayPipe["listen"]>[0];

/** Two linked in-memory pipes; `wire` sees (and may rewrite) every frame from a to b. */
function pipes(wire: (frame: Uint8Array) => Uint8Array[] = (frame) => [frame]) {
  const handlers: (Handlers | undefined)[] = [undefined, undefined];
  const make = (side: 0 | 1): RelayPipe & { shut(): void } => ({
    limits: { maxFrameBytes: 1 << 20, bytesPerSecond: 1e12 },
    send(payload) {
      const copy = payload.slice();
      const out = side === 0 ? wire(copy) : [copy];
      queueMicrotask(() => out.forEach((frame) => handlers[1 - side]?.message(frame)));
      return Promise.resolve();
    },
    listen(h) {
      handlers[side] = h;
    },
    close() {},
    shut() {
      handlers[side]?.close();
    },
  });
  return [make(0), make(1)] as const;
}

async function links(wire?: (frame: Uint8Array) => Uint8Array[]) {
  const [a, b] = await Promise.all([RelayKeyShare.create(), RelayKeyShare.create()]);
  const [ca, cb] = await Promise.all([a.derive(b.publicKey), b.derive(a.publicKey)]);
  const [pa, pb] = pipes(wire);
  return { dialer: new RelayLink(pa, ca, true), answerer: new RelayLink(pb, cb, false), pa, pb };
}

function nextChannel(link: RelayLink): Promise<RelayChannel> {
  return new Promise((resolve) => (link.ondatachannel = resolve));
}

function nextMessage(channel: RelayChannel): Promise<unknown> {
  return new Promise((resolve) =>
    channel.addEventListener("message", (event) => resolve((event as MessageEvent).data), {
      once: true,
    })
  );
}

Deno.test("RelayLink: a channel opens on both sides with its label and protocol, and carries text and bytes in order", async () => {
  const { dialer, answerer } = await links();
  const arrived = nextChannel(answerer);
  const local = dialer.createChannel("mcp", "mcp-webrtc.v1");
  assert.equal(local.readyState, "connecting");
  await new Promise((resolve) => local.addEventListener("open", resolve));
  const remote = await arrived;
  assert.equal(remote.label, "mcp");
  assert.equal(remote.protocol, "mcp-webrtc.v1");
  assert.equal(remote.readyState, "open");
  assert.equal(local.id % 2, 0);
  const first = nextMessage(remote);
  local.send("hello");
  assert.equal(await first, "hello");
  const second = nextMessage(remote);
  local.send(new Uint8Array([1, 2, 3]));
  assert.deepEqual(new Uint8Array(await second as ArrayBuffer), new Uint8Array([1, 2, 3]));
  const back = nextMessage(local);
  remote.send("back");
  assert.equal(await back, "back");
});

Deno.test("RelayLink: a DataChannelTransport runs over a relayed channel", async () => {
  const { dialer, answerer } = await links();
  const arrived = nextChannel(answerer);
  const a = new DataChannelTransport(dialer.createChannel("mcp", "mcp-webrtc.v1"), {
    maxMessageSize: RELAY_MAX_MESSAGE_SIZE,
  });
  const b = new DataChannelTransport(await arrived, { maxMessageSize: RELAY_MAX_MESSAGE_SIZE });
  const received = new Promise((resolve) => (b.onmessage = resolve));
  await Promise.all([a.start(), b.start()]);
  const big = "é".repeat(300_000);
  await a.send({ jsonrpc: "2.0", id: 1, method: "echo", params: { big } });
  assert.deepEqual(await received, { jsonrpc: "2.0", id: 1, method: "echo", params: { big } });
  await a.close();
  await b.close();
});

Deno.test("RelayLink: closing a channel closes the other side's, and bufferedAmount drains with bufferedamountlow", async () => {
  const { dialer, answerer } = await links();
  const arrived = nextChannel(answerer);
  const local = dialer.createChannel("mcp", "p");
  const remote = await arrived;
  local.bufferedAmountLowThreshold = 0;
  const low = new Promise((resolve) => local.addEventListener("bufferedamountlow", resolve));
  local.send(new Uint8Array(1000));
  assert.equal(local.bufferedAmount, 1000);
  await low;
  assert.equal(local.bufferedAmount, 0);
  const closed = new Promise((resolve) => remote.addEventListener("close", resolve));
  local.close();
  await closed;
  assert.equal(remote.readyState, "closed");
  assert.throws(() => remote.send("late"), RelayError);
});

Deno.test("RelayLink: a message over the relayed channel's size is refused at once, like a data channel's", async () => {
  const { dialer } = await links();
  const channel = dialer.createChannel("mcp", "p");
  await new Promise((resolve) => channel.addEventListener("open", resolve));
  assert.throws(() => channel.send(new Uint8Array(RELAY_MAX_MESSAGE_SIZE + 1)), RangeError);
});

Deno.test("RelayLink: end() reaches the other side as a clean end with its reason, and closes every channel", async () => {
  const { dialer, answerer } = await links();
  const arrived = nextChannel(answerer);
  dialer.createChannel("mcp", "p");
  const remote = await arrived;
  const ended = new Promise<[Error | undefined, string]>((resolve) =>
    answerer.onend = (error, reason) => resolve([error, reason])
  );
  await dialer.end("done for today");
  assert.deepEqual(await ended, [undefined, "done for today"]);
  assert.equal(remote.readyState, "closed");
});

Deno.test("RelayLink: a pipe that closes without a sealed end is a lost link, not a clean end", async () => {
  const { answerer, pb } = await links();
  const ended = new Promise<Error | undefined>((resolve) =>
    answerer.onend = (error) => resolve(error)
  );
  pb.shut();
  const error = await ended;
  assert.ok(error instanceof RelayError);
  assert.match(error.message, /relay path was lost/);
});

Deno.test("RelayLink: an altered frame ends the link with a RelayError and delivers nothing after it", async () => {
  let count = 0;
  const { dialer, answerer } = await links((frame) => {
    if (++count === 3) frame[frame.length - 1] ^= 1;
    return [frame];
  });
  const arrived = nextChannel(answerer);
  const local = dialer.createChannel("mcp", "p");
  const remote = await arrived;
  const messages: unknown[] = [];
  remote.addEventListener("message", (event) => messages.push((event as MessageEvent).data));
  const ended = new Promise<Error | undefined>((resolve) =>
    answerer.onend = (error) => resolve(error)
  );
  local.send("one");
  local.send("two (altered)");
  local.send("three");
  const error = await ended;
  assert.ok(error instanceof RelayError);
  assert.match(error.message, /Refused relayed frame 2/);
  assert.deepEqual(messages, ["one"]);
  assert.equal(remote.readyState, "closed");
});

Deno.test("RelayLink: a channel the answering side opens is odd-numbered and reaches the dialler", async () => {
  const { dialer, answerer } = await links();
  const arrived = nextChannel(dialer);
  const channel = answerer.createChannel("mcp", "p");
  assert.equal(channel.id % 2, 1);
  assert.equal((await arrived).id, channel.id);
});

Deno.test("RELAY_FALLBACK_DELAY is the documented default of relayAfter (3000 ms)", () => {
  assert.equal(RELAY_FALLBACK_DELAY, 3_000);
});
