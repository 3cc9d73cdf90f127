import assert from "node:assert/strict";
import { RelayKeyShare } from "./crypto.ts";
import {
  readRelayWindow,
  RELAY_MAX_FRAME_SIZE,
  RELAY_MAX_MESSAGE_SIZE,
  type RelayChannel,
  RelayLink,
  type RelayWindows,
} from "./link.ts";
import { DataChannelTransport } from "../data_channel_transport.ts";
import { RelayError } from "../errors.ts";
import type { RelayPipe } from "./protocol.ts";
import { RELAY_FALLBACK_DELAY, RELAY_MIN_WINDOW, RELAY_WINDOW } from "../constants.ts";

type Handlers = Parameters<RelayPipe["listen"]>[0];

type Wire = (frame: Uint8Array) => Uint8Array[];

/**
 * Two linked in-memory pipes; `wire` sees (and may rewrite) every frame from a
 * to b, `back` every frame from b to a.
 */
function pipes(wire: Wire = (frame) => [frame], back: Wire = (frame) => [frame]) {
  const handlers: (Handlers | undefined)[] = [undefined, undefined];
  const make = (side: 0 | 1): RelayPipe & { shut(): void } => ({
    limits: { maxFrameBytes: 1 << 20, bytesPerSecond: 1e12 },
    send(payload) {
      const copy = payload.slice();
      const out = side === 0 ? wire(copy) : back(copy);
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
  return [
    make(0),
    make(1),
    (to: 0 | 1, frame: Uint8Array) => handlers[to]?.message(frame),
  ] as const;
}

async function links(
  wire?: Wire,
  flow?: { dialer?: RelayWindows; answerer?: RelayWindows; back?: Wire },
) {
  const [a, b] = await Promise.all([RelayKeyShare.create(), RelayKeyShare.create()]);
  const [ca, cb] = await Promise.all([a.derive(b.publicKey), b.derive(a.publicKey)]);
  const [pa, pb, inject] = pipes(wire, flow?.back);
  return {
    inject,
    dialer: new RelayLink(pa, ca, true, flow?.dialer),
    answerer: new RelayLink(pb, cb, false, flow?.answerer),
    pa,
    pb,
  };
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

Deno.test("RelayLink: a pipe that closes right after a sealed end still ends cleanly with its reason", async () => {
  // The room tells of the other peer's leaving as soon as its last frame: the
  // end, still being opened here, is what the link reports.
  const { dialer, answerer, pb } = await links((frame) => {
    queueMicrotask(() => queueMicrotask(() => pb.shut()));
    return [frame];
  });
  const ended = new Promise<[Error | undefined, string]>((resolve) =>
    answerer.onend = (error, reason) => resolve([error, reason])
  );
  await dialer.end("refused a frame");
  assert.deepEqual(await ended, [undefined, "refused a frame"]);
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

/** A wire that can hold what it carries, and counts it. */
function gate() {
  const held: Uint8Array[] = [];
  const state = {
    closed: false,
    bytes: 0,
    /** Called with the number of frames held, each time one more is held. */
    onhold: undefined as ((count: number) => void) | undefined,
    wire: ((frame) => {
      state.bytes += frame.byteLength;
      if (!state.closed) return [frame];
      held.push(frame);
      state.onhold?.(held.length);
      return [];
    }) as Wire,
    /** Delivers what was held with `deliver`, then lets frames through. */
    open(deliver: (frame: Uint8Array) => void) {
      state.closed = false;
      for (const frame of held.splice(0)) deliver(frame);
    },
  };
  return state;
}

const CHUNK = RELAY_MAX_MESSAGE_SIZE;
/** The sealed size of a chunk's frame: the chunk, the 5-byte header, the 16-byte tag. */
const CHUNK_FRAME = CHUNK + 5 + 16;

/** A dialler's channel open on both sides. */
async function openChannel(dialer: RelayLink, answerer: RelayLink) {
  const arrived = nextChannel(answerer);
  const local = dialer.createChannel("mcp", "p");
  await new Promise((resolve) => local.addEventListener("open", resolve));
  return { local, remote: await arrived };
}

Deno.test("RelayLink with flow control: a sender stops at the window the reader granted, its channel's bufferedAmount stays up, and it goes on as the reader reads", async () => {
  const window = 4 * CHUNK_FRAME;
  const wire = gate();
  const windows = { send: window, receive: window };
  const { dialer, answerer, inject } = await links(wire.wire, {
    dialer: windows,
    answerer: windows,
  });
  const { local, remote } = await openChannel(dialer, answerer);
  const received: number[] = [];
  const all = new Promise<void>((resolve) =>
    remote.addEventListener("message", (event) => {
      received.push(new Uint8Array((event as MessageEvent).data)[0]);
      if (received.length === 12) resolve();
    })
  );
  // The reader reads nothing; the sender has twelve chunks for a window of four.
  wire.closed = true;
  for (let i = 0; i < 12; i++) local.send(new Uint8Array(CHUNK).fill(i));
  const flow = dialer.flow!;
  assert.ok(flow.sent <= window, `${flow.sent} bytes were sent into a window of ${window}`);
  assert.ok(flow.waiting >= 8 * CHUNK_FRAME, `only ${flow.waiting} bytes wait for credit`);
  assert.equal(local.bufferedAmount, 12 * CHUNK);
  // The reader reads again: everything arrives in order, and the sender's buffer drains.
  local.bufferedAmountLowThreshold = 0;
  const drained = new Promise((resolve) => local.addEventListener("bufferedamountlow", resolve));
  wire.open((frame) => inject(1, frame));
  await all;
  await drained;
  assert.deepEqual(received, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(dialer.flow!.waiting, 0);
  assert.equal(dialer.flow!.sent, wire.bytes);
  assert.ok(dialer.flow!.limit >= wire.bytes);
  assert.equal(answerer.flow!.read, wire.bytes);
});

Deno.test("RelayLink with flow control: end() reaches a reader that stopped reading, and what waited for credit is dropped", async () => {
  const window = 2 * CHUNK_FRAME;
  const windows = { send: window, receive: window };
  // The answerer's credits are lost on the way back: the dialler never gets more.
  const { dialer, answerer } = await links(undefined, {
    dialer: windows,
    answerer: windows,
    back: () => [],
  });
  const { local } = await openChannel(dialer, answerer);
  for (let i = 0; i < 6; i++) local.send(new Uint8Array(CHUNK));
  assert.ok(dialer.flow!.waiting > 0);
  const ended = new Promise<[Error | undefined, string]>((resolve) =>
    answerer.onend = (error, reason) => resolve([error, reason])
  );
  await dialer.end("leaving");
  assert.deepEqual(await ended, [undefined, "leaving"]);
  assert.equal(local.readyState, "closed");
  assert.equal(dialer.flow!.waiting, 0);
});

Deno.test("RelayLink with flow control: a peer that sends beyond the window it was granted is refused and the link ends", async () => {
  const granted = 2 * CHUNK_FRAME;
  const wire = gate();
  // The dialler ignores the answerer's window (as a faulty peer would).
  const { dialer, answerer, inject } = await links(wire.wire, {
    dialer: { send: 1e12, receive: granted },
    answerer: { send: granted, receive: granted },
  });
  const { local } = await openChannel(dialer, answerer);
  const ended = new Promise<Error | undefined>((resolve) =>
    answerer.onend = (error) => resolve(error)
  );
  // Six chunks arrive at once, before the reader could grant more: four past its window.
  wire.closed = true;
  const allSealed = new Promise<void>((resolve) =>
    wire.onhold = (count) => count === 6 && resolve()
  );
  for (let i = 0; i < 6; i++) local.send(new Uint8Array(CHUNK));
  await allSealed;
  wire.open((frame) => inject(1, frame));
  const error = await ended;
  assert.ok(error instanceof RelayError);
  assert.match(error.message, /beyond the window this side granted \(RELAY_WINDOW/);
});

for (
  const [what, back] of [
    ["replays", (frame: Uint8Array) => [frame, frame]],
    [
      "forges",
      (frame: Uint8Array) => {
        const forged = new Uint8Array(5 + 8 + 16);
        forged[0] = 6;
        new DataView(forged.buffer).setBigUint64(5, 2n ** 40n);
        return [frame, forged];
      },
    ],
  ] as const
) {
  Deno.test(`RelayLink with flow control: a room that ${what} a credit is detected, and the sender gets no credit from it`, async () => {
    const window = 2 * CHUNK_FRAME;
    const windows = { send: window, receive: window };
    // Only the first credit is tampered with.
    let credits = 0;
    const { dialer, answerer } = await links(undefined, {
      dialer: windows,
      answerer: windows,
      back: (frame) => frame.byteLength === 5 + 8 + 16 && credits++ === 0 ? back(frame) : [frame],
    });
    const { local } = await openChannel(dialer, answerer);
    const ended = new Promise<Error | undefined>((resolve) =>
      dialer.onend = (error) => resolve(error)
    );
    for (let i = 0; i < 8; i++) local.send(new Uint8Array(CHUNK));
    const error = await ended;
    assert.ok(error instanceof RelayError);
    assert.match(error.message, /Refused relayed frame \d+/);
    assert.ok(dialer.flow!.limit < 2 ** 40);
  });
}

Deno.test("readRelayWindow() reads a hello's window: absent for a peer of an earlier version, refused below one frame or not an integer", () => {
  assert.equal(readRelayWindow({ type: "relay", v: 1, key: "k" }), undefined);
  assert.equal(readRelayWindow({ window: 1_048_576 }), 1_048_576);
  assert.equal(readRelayWindow({ window: RELAY_MIN_WINDOW }), RELAY_MIN_WINDOW);
  assert.equal(readRelayWindow({ window: RELAY_MIN_WINDOW - 1 }), null);
  assert.equal(readRelayWindow({ window: 1.5e6 + 0.5 }), null);
  assert.equal(readRelayWindow({ window: "1048576" }), null);
  assert.equal(readRelayWindow({ window: 2 ** 60 }), null);
  assert.equal(RELAY_MIN_WINDOW, RELAY_MAX_FRAME_SIZE);
});

Deno.test("RELAY_WINDOW is the documented default of the relay's window (1 MiB)", () => {
  assert.equal(RELAY_WINDOW, 1_048_576);
});
