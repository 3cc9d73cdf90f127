import assert from "node:assert/strict";
import { yieldToEventLoop } from "./_async.ts";
import {
  CHUNK_SIZE,
  FAIR_ACTIVE_MS,
  FAIR_REPORT_WAIT_MS,
  FAIR_WINDOW,
  FAIR_WINDOW_MAX,
  HIGH_WATER_MARK,
  LOW_WATER_MARK,
  SHARED_HIGH_WATER_MARK,
} from "./constants.ts";
import { type DataChannelLike, DataChannelTransport } from "./data_channel_transport.ts";
import { SendScheduler, useScheduler } from "./_send_scheduler.ts";
import { FRAME_READ, readReportFrame } from "./framing.ts";
import { useClock } from "./_clock.ts";
import { ManualClock } from "./_test_clock.ts";
import { createLinkedChannelPair } from "./testing.ts";

const MIB = 1024 * 1024;

/**
 * One SCTP association as libdatachannel keeps it: every channel's frames in
 * one queue, first in, first out, leaving only when the test drains it.
 */
class Association {
  /** What was handed, in order: which channel, how many bytes, whether a binary frame. */
  readonly handed: { label: string; bytes: number; binary: boolean; text?: string }[] = [];
  readonly #queue: { channel: FakeChannel; bytes: number }[] = [];

  channel(label: string): FakeChannel {
    return new FakeChannel(label, this);
  }

  push(channel: FakeChannel, bytes: number, text?: string): void {
    this.handed.push({ label: channel.label, bytes, binary: text === undefined, text });
    this.#queue.push({ channel, bytes });
  }

  /** Bytes queued now. */
  get queued(): number {
    return this.#queue.reduce((sum, item) => sum + item.bytes, 0);
  }

  /** Lets the first `bytes` of the queue leave (whole frames). */
  drain(bytes: number): void {
    while (bytes > 0 && this.#queue.length > 0) {
      const { channel, bytes: size } = this.#queue.shift()!;
      bytes -= size;
      channel.left(size);
    }
  }
}

class FakeChannel extends EventTarget implements DataChannelLike {
  readyState = "open";
  bufferedAmountLowThreshold = 0;
  binaryType = "arraybuffer";
  bufferedAmount = 0;
  constructor(readonly label: string, readonly association: Association) {
    super();
  }
  send(data: string | Uint8Array): void {
    if (this.readyState !== "open") throw new Error("closed");
    const bytes = typeof data === "string"
      ? new TextEncoder().encode(data).byteLength
      : data.byteLength;
    this.bufferedAmount += bytes;
    this.association.push(this, bytes, typeof data === "string" ? data : undefined);
  }
  left(bytes: number): void {
    const before = this.bufferedAmount;
    this.bufferedAmount -= bytes;
    const threshold = this.bufferedAmountLowThreshold;
    if (before > threshold && this.bufferedAmount <= threshold) {
      this.dispatchEvent(new Event("bufferedamountlow"));
    }
  }
  close(): void {
    this.readyState = "closed";
    this.dispatchEvent(new Event("close"));
  }
}

/** A message whose JSON text is about `bytes` long. */
function large(id: number, bytes: number) {
  return { jsonrpc: "2.0" as const, id, result: { text: "x".repeat(bytes) } };
}

/** A transport of the connection `scheduler` schedules, on `channel`, started. */
async function session(channel: FakeChannel, scheduler: SendScheduler) {
  const transport = new DataChannelTransport(channel, {
    maxMessageSize: 256 * 1024,
    keepaliveInterval: 0,
  });
  useScheduler(transport, scheduler);
  await transport.start();
  return transport;
}

/** Lets the event loop run until `done()` holds, a bounded number of turns. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (done()) return;
    await yieldToEventLoop();
  }
  throw new Error(`Gave up waiting until ${what}`);
}

Deno.test("a small message of one session leaves after at most the shared mark of another's bulk bytes", async () => {
  const association = new Association();
  const scheduler = new SendScheduler();
  const bulk = await session(association.channel("bulk"), scheduler);
  const small = await session(association.channel("small"), scheduler);
  const sending = bulk.send(large(1, 8 * MIB));
  // The association is kept full: it drains a chunk at a time, only once the bulk sender waits.
  for (let round = 0; round < 20; round++) {
    await until(() => scheduler.waiting === 1, "the bulk sender waits for its turn");
    association.drain(CHUNK_SIZE);
  }
  await until(() => scheduler.waiting === 1, "the bulk sender waits for its turn");
  const ahead = association.queued;
  await small.send({ jsonrpc: "2.0", id: 2, result: {} });
  const last = association.handed.at(-1)!;
  assert.equal(last.label, "small", "the small message was handed at once");
  assert.ok(
    ahead <= SHARED_HIGH_WATER_MARK + CHUNK_SIZE,
    `${ahead} bytes of the bulk session were ahead of the small message`,
  );
  await bulk.close();
  await small.close();
  await sending.catch(() => {});
});

Deno.test("sessions sending large messages at once take turns, one chunk each", async () => {
  const association = new Association();
  const scheduler = new SendScheduler();
  const one = await session(association.channel("one"), scheduler);
  const two = await session(association.channel("two"), scheduler);
  const sending = [one.send(large(1, 4 * MIB)), two.send(large(2, 4 * MIB))];
  await until(() => scheduler.waiting === 2, "both senders wait");
  const from = association.handed.length;
  for (let round = 0; round < 16; round++) {
    association.drain(CHUNK_SIZE);
    await until(() => scheduler.waiting === 2, "both senders wait again");
  }
  const labels = association.handed.slice(from).map((item) => item.label);
  assert.ok(labels.length >= 8, `${labels.length} chunks handed`);
  for (let i = 1; i < labels.length; i++) {
    assert.notEqual(
      labels[i],
      labels[i - 1],
      `chunk ${i} went to the same session twice: ${labels}`,
    );
  }
  assert.ok(association.queued <= SHARED_HIGH_WATER_MARK + CHUNK_SIZE);
  await one.close();
  await two.close();
  await Promise.allSettled(sending);
});

Deno.test("one session alone fills the association as a lone channel does", async () => {
  const association = new Association();
  const scheduler = new SendScheduler();
  const channel = association.channel("alone");
  const alone = await session(channel, scheduler);
  assert.equal(channel.bufferedAmountLowThreshold, LOW_WATER_MARK);
  const sending = alone.send(large(1, 8 * MIB));
  await until(() => scheduler.waiting === 1, "the sender waits");
  // Handed in one turn until over the high-water mark, as without a scheduler.
  assert.ok(association.queued > HIGH_WATER_MARK, `${association.queued} bytes handed`);
  assert.ok(association.queued <= HIGH_WATER_MARK + CHUNK_SIZE);
  // It goes on once drained to the low-water mark, not before.
  association.drain(association.queued - LOW_WATER_MARK - CHUNK_SIZE);
  await yieldToEventLoop();
  assert.equal(scheduler.waiting, 1);
  const before = association.handed.length;
  association.drain(CHUNK_SIZE);
  await until(() => association.handed.length > before, "the sender goes on");
  // A second session makes the mark the shared one; its end gives the lone mark back.
  const other = await session(association.channel("other"), scheduler);
  assert.equal(scheduler.limit, SHARED_HIGH_WATER_MARK);
  assert.equal(channel.bufferedAmountLowThreshold, SHARED_HIGH_WATER_MARK / 2);
  await other.close();
  assert.equal(scheduler.limit, HIGH_WATER_MARK);
  assert.equal(channel.bufferedAmountLowThreshold, LOW_WATER_MARK);
  await alone.close();
  await sending.catch(() => {});
});

Deno.test("a session closed while it waits for its turn stops waiting, and lets the others go", async () => {
  const association = new Association();
  const scheduler = new SendScheduler();
  const one = await session(association.channel("one"), scheduler);
  const two = await session(association.channel("two"), scheduler);
  const first = one.send(large(1, 2 * MIB));
  const second = two.send(large(2, 2 * MIB));
  await until(() => scheduler.waiting === 2, "both senders wait");
  await one.close();
  await assert.rejects(first, /closed/);
  assert.equal(scheduler.channels, 1);
  // Alone now, the other may fill the association up to the lone mark: its
  // 2 MiB go whole, with nothing drained.
  await second;
  assert.equal(scheduler.waiting, 0);
  assert.ok(association.queued > 2 * MIB);
  await two.close();
});

Deno.test("another session counts as active for FAIR_ACTIVE_MS after it last sent or received", async () => {
  const clock = new ManualClock();
  const scheduler = new SendScheduler(() => clock.now());
  const association = new Association();
  const bulk = association.channel("bulk");
  const small = association.channel("small");
  assert.equal(scheduler.othersActive(bulk), false);
  scheduler.touch(small);
  assert.equal(scheduler.othersActive(bulk), true);
  assert.equal(scheduler.othersActive(small), false, "a session's own messages do not hold it");
  await clock.advance(FAIR_ACTIVE_MS);
  assert.equal(scheduler.othersActive(bulk), true);
  await clock.advance(1);
  assert.equal(scheduler.othersActive(bulk), false);
  scheduler.touch(small);
  scheduler.delete(small);
  assert.equal(scheduler.othersActive(bulk), false, "an ended session is not active");
});

/** Bytes of binary frames `label` handed. */
function binaryHanded(association: Association, label: string): number {
  return association.handed
    .filter((item) => item.label === label && item.binary)
    .reduce((sum, item) => sum + item.bytes, 0);
}

/** Delivers the peer's report that it read `bytes` of chunk frames on `channel`. */
function report(channel: FakeChannel, bytes: number): void {
  channel.dispatchEvent(new MessageEvent("message", { data: readReportFrame(bytes).buffer }));
}

Deno.test("while another session is active, a session whose peer reports what it read keeps at most FAIR_WINDOW unread", async () => {
  const clock = new ManualClock();
  const association = new Association();
  const scheduler = new SendScheduler(() => clock.now());
  const channel = association.channel("bulk");
  const bulk = new DataChannelTransport(channel, {
    maxMessageSize: 256 * 1024,
    keepaliveInterval: 0,
  });
  useScheduler(bulk, scheduler);
  useClock(bulk, clock);
  await bulk.start();
  const small = await session(association.channel("small"), scheduler);
  // The association drains at once: only the window can hold the sender.
  const drain = setInterval(() => association.drain(association.queued), 0);
  try {
    const sending = bulk.send(large(1, 4 * MIB));
    await until(() => association.handed.length > 0, "the sender started");
    assert.equal(
      association.handed[0].text,
      JSON.stringify({ jsonrpc: "2.0", method: "mcp-webrtc/window" }),
      "the sender asks its peer for reports first",
    );
    // Until the peer reports, it is not known to report: nothing holds the sender.
    await until(() => binaryHanded(association, "bulk") > FAIR_WINDOW, "unheld chunks went");
    await small.send({ jsonrpc: "2.0", id: 2, result: {} });
    const handed = binaryHanded(association, "bulk");
    report(channel, handed);
    for (let round = 1; round <= 4; round++) {
      const read = handed + round * CHUNK_SIZE;
      // A report counts only bytes that were sent (more counts as all that was sent).
      await until(() => binaryHanded(association, "bulk") >= read, "the bytes reported went");
      report(channel, read);
      await until(
        () => binaryHanded(association, "bulk") > read + FAIR_WINDOW - CHUNK_SIZE,
        "the window filled",
      );
      for (let turn = 0; turn < 20; turn++) await yieldToEventLoop();
      assert.ok(
        binaryHanded(association, "bulk") <= read + FAIR_WINDOW,
        `${binaryHanded(association, "bulk") - read} bytes unread, above the window`,
      );
    }
    // A peer that stops reporting holds the sender for FAIR_REPORT_WAIT_MS a chunk, not for ever.
    const stalled = binaryHanded(association, "bulk");
    await clock.advance(FAIR_REPORT_WAIT_MS);
    await until(() => binaryHanded(association, "bulk") > stalled, "one chunk went after the wait");
    for (let turn = 0; turn < 20; turn++) await yieldToEventLoop();
    assert.equal(binaryHanded(association, "bulk"), stalled + CHUNK_SIZE);
    // Once the other session has been silent for FAIR_ACTIVE_MS, nothing holds it.
    await clock.advance(FAIR_ACTIVE_MS);
    await sending;
    assert.equal(
      association.handed.filter((item) => item.text?.includes("mcp-webrtc/window")).length,
      1,
      "asked once",
    );
  } finally {
    // Closing waits for the association to drain, on the test's clock: drain it till then.
    await bulk.close();
    await small.close();
    clearInterval(drain);
  }
});

Deno.test("a receiver asked for reports reports the chunk bytes it read, and the request never reaches MCP", async () => {
  const [left, right] = createLinkedChannelPair();
  const sender = new DataChannelTransport(left, { keepaliveInterval: 0 });
  useScheduler(sender, new SendScheduler());
  const receiver = new DataChannelTransport(right, { keepaliveInterval: 0 });
  const received: unknown[] = [];
  receiver.onmessage = (message) => received.push(message);
  const errors: Error[] = [];
  receiver.onerror = sender.onerror = (error) => errors.push(error);
  const reports: number[] = [];
  let chunkBytes = 0;
  left.addEventListener("message", (event) => {
    const data = new Uint8Array((event as MessageEvent).data as ArrayBuffer);
    if (data[0] === FRAME_READ) reports.push(new DataView(data.buffer).getFloat64(1));
  });
  right.addEventListener("message", (event) => {
    const data = (event as MessageEvent).data;
    if (typeof data !== "string") chunkBytes += data.byteLength;
  });
  await Promise.all([sender.start(), receiver.start()]);
  try {
    await sender.send(large(1, MIB));
    await sender.send(large(2, MIB));
    await until(() => received.length === 2 && reports.at(-1) === chunkBytes, "all was reported");
    assert.deepEqual(received.map((message) => (message as { id: number }).id), [1, 2]);
    assert.ok(reports.length >= 2 * MIB / CHUNK_SIZE, `${reports.length} reports`);
    assert.deepEqual(errors, []);
  } finally {
    await sender.close();
    await receiver.close();
  }
});

Deno.test("a receiver reports only while another session of its connection is active, catching up at once", async () => {
  const clock = new ManualClock();
  const [left, right] = createLinkedChannelPair();
  const sender = new DataChannelTransport(left, { keepaliveInterval: 0 });
  useScheduler(sender, new SendScheduler());
  const receiver = new DataChannelTransport(right, { keepaliveInterval: 0 });
  const scheduler = new SendScheduler(() => clock.now());
  useScheduler(receiver, scheduler);
  useClock(receiver, clock);
  const received: unknown[] = [];
  receiver.onmessage = (message) => received.push(message);
  const reports: number[] = [];
  let chunkBytes = 0;
  left.addEventListener("message", (event) => {
    const data = new Uint8Array((event as MessageEvent).data as ArrayBuffer);
    if (data[0] === FRAME_READ) reports.push(new DataView(data.buffer).getFloat64(1));
  });
  right.addEventListener("message", (event) => {
    const data = (event as MessageEvent).data;
    if (typeof data !== "string") chunkBytes += data.byteLength;
  });
  await Promise.all([sender.start(), receiver.start()]);
  try {
    await sender.send(large(1, MIB));
    await until(() => received.length === 1, "the first message arrived");
    assert.deepEqual(reports, [], "no report while the session is alone");
    const before = chunkBytes;
    scheduler.touch(new Association().channel("small"));
    await sender.send(large(2, MIB));
    await until(() => received.length === 2 && reports.at(-1) === chunkBytes, "all was reported");
    assert.ok(reports[0] > before, "the first report counts what was read before too");
  } finally {
    await sender.close();
    await receiver.close();
  }
});

/**
 * A path to the other peer, on the test's clock: each chunk handed leaves
 * the bottleneck `bytesPerMs` after the one before, and its report comes
 * back `rtt(now)` ms after it left (the cumulative bytes read, as a peer of
 * this module reports them).
 */
class PathChannel extends FakeChannel {
  #departure = 0;
  #handed = 0;
  /** Reports delivered: bytes read, and when. */
  readonly reports: { read: number; at: number }[] = [];
  constructor(
    readonly clock: ManualClock,
    readonly bytesPerMs: number,
    readonly rtt: (now: number) => number,
  ) {
    super("bulk", new Association());
  }
  override send(data: string | Uint8Array): void {
    super.send(data);
    // Nothing waits in the channel's own buffer: only the window holds the sender.
    this.association.drain(this.association.queued);
    if (typeof data === "string") return;
    const now = this.clock.now();
    this.#handed += data.byteLength;
    const read = this.#handed;
    this.#departure = Math.max(now, this.#departure) + data.byteLength / this.bytesPerMs;
    this.clock.setTimeout(() => {
      this.reports.push({ read, at: this.clock.now() });
      report(this, read);
    }, this.#departure - now + this.rtt(now));
  }
  get handed(): number {
    return this.#handed;
  }
}

/**
 * Sends a 64 MiB result on `channel` beside another active session, moving
 * the test's clock 1 ms a step for `ms`, and calls `step` after each.
 */
async function held(
  clock: ManualClock,
  channel: PathChannel,
  ms: number,
  step: (now: number) => void,
): Promise<void> {
  const scheduler = new SendScheduler(() => clock.now());
  const bulk = new DataChannelTransport(channel, { keepaliveInterval: 0 });
  useScheduler(bulk, scheduler);
  useClock(bulk, clock);
  await bulk.start();
  const association = new Association();
  const small = await session(association.channel("small"), scheduler);
  const other = association.channel("other");
  scheduler.add(other);
  const errors: Error[] = [];
  bulk.onerror = (error) => errors.push(error);
  // The peer reported before (as after an earlier message): it is known to report.
  scheduler.touch(other);
  report(channel, 0);
  const sending = bulk.send(large(1, 64 * MIB));
  sending.catch(() => {});
  try {
    await until(() => channel.handed > 0, "the sender started");
    const start = clock.now();
    while (clock.now() - start < ms) {
      scheduler.touch(other);
      await clock.advance(1);
      for (let turn = 0; turn < 3; turn++) await yieldToEventLoop();
      step(clock.now() - start);
    }
    assert.deepEqual(errors, []);
  } finally {
    channel.readyState = "closed";
    await bulk.close();
    await small.close();
    await sending.catch(() => {});
  }
}

/** The most bytes handed and not yet reported read at any step of `ms` beginning at `from`. */
function tracker(channel: PathChannel) {
  const unread: { at: number; bytes: number }[] = [];
  return {
    step: (at: number) =>
      unread.push({ at, bytes: channel.handed - (channel.reports.at(-1)?.read ?? 0) }),
    most: (from: number, to: number) =>
      Math.max(
        ...unread.filter((item) => item.at >= from && item.at < to).map((item) => item.bytes),
      ),
  };
}

/** Bytes reported read between `from` and `to` ms after `start`. */
function readBetween(channel: PathChannel, start: number, from: number, to: number): number {
  const before = channel.reports.filter((item) => item.at - start < from).at(-1)?.read ?? 0;
  const until = channel.reports.filter((item) => item.at - start < to).at(-1)?.read ?? 0;
  return until - before;
}

Deno.test("on a path of 50 ms, a held sender's window grows until it moves well above FAIR_WINDOW a round trip", async () => {
  const clock = new ManualClock(0);
  // 10 MB/s and 50 ms: the path holds about 500 KB in flight.
  const channel = new PathChannel(clock, 10_000, () => 50);
  const unread = tracker(channel);
  const start = clock.now();
  await held(clock, channel, 2000, unread.step);
  // The last 10 round trips: a fixed window moves FAIR_WINDOW each.
  const perRoundTrip = readBetween(channel, start, 1500, 2000) / 10;
  assert.ok(
    perRoundTrip >= 3 * FAIR_WINDOW,
    `${perRoundTrip} bytes read a round trip, under ${3 * FAIR_WINDOW}`,
  );
  assert.ok(unread.most(0, 2000) <= FAIR_WINDOW_MAX + CHUNK_SIZE);
});

Deno.test("on a path of 50 ms whose round trip then keeps rising (bytes queue), the held sender's window stops growing and shrinks", async () => {
  const clock = new ManualClock(0);
  // From 1 s on, the round trip rises by 0.5 ms each ms.
  const channel = new PathChannel(clock, 10_000, (now) => 50 + Math.max(0, now - 1000) / 2);
  const unread = tracker(channel);
  await held(clock, channel, 2500, unread.step);
  const grown = unread.most(700, 1000);
  assert.ok(grown >= 3 * FAIR_WINDOW, `the window grew to ${grown} only`);
  const late = unread.most(2000, 2500);
  assert.ok(late < grown, `${late} bytes unread while queueing, not under ${grown}`);
});

Deno.test("on a fast path (reports 0.3 ms after each chunk) a held sender's window stays FAIR_WINDOW", async () => {
  const clock = new ManualClock(0);
  const channel = new PathChannel(clock, 100_000, () => 0.3);
  const unread = tracker(channel);
  await held(clock, channel, 300, unread.step);
  assert.ok(channel.reports.length > 20, `${channel.reports.length} reports`);
  const most = unread.most(50, 300);
  assert.ok(most <= FAIR_WINDOW, `${most} bytes unread, above FAIR_WINDOW`);
});

Deno.test("a held sender goes on, with nothing thrown or reported as an error, whatever a hostile peer reports", async () => {
  const clock = new ManualClock(0);
  const channel = new PathChannel(clock, 10_000, () => 50);
  const unread = tracker(channel);
  let step = 0;
  await held(clock, channel, 1000, (at) => {
    unread.step(at);
    // Besides the path's own reports: more than was sent, backward, huge, repeated.
    const reports = [Number.MAX_SAFE_INTEGER, 0, channel.handed * 2, 1, channel.handed];
    if (step++ % 7 === 0) report(channel, reports[step % reports.length]);
  });
  assert.ok(channel.handed > FAIR_WINDOW_MAX, `${channel.handed} bytes handed`);
});

Deno.test("on a path of 200 ms, a held sender whose peer stops reporting hands a chunk per two round trips, not per FAIR_REPORT_WAIT_MS", async () => {
  const clock = new ManualClock(0);
  // The first chunks' reports come 200 ms after; later ones never.
  const channel = new PathChannel(clock, 100_000, (now) => now < 150 ? 200 : Infinity);
  const handed: { at: number; bytes: number }[] = [];
  await held(clock, channel, 3000, (at) => handed.push({ at, bytes: channel.handed }));
  assert.ok(channel.reports.length >= 2, `${channel.reports.length} reports`);
  const at = (ms: number) => handed.find((item) => item.at >= ms)!.bytes;
  const chunks = (at(3000 - 1) - at(1000)) / CHUNK_SIZE;
  // A chunk per FAIR_REPORT_WAIT_MS would be 40.
  assert.ok(chunks <= 2000 / 400 + 1, `${chunks} chunks in 2 s without a report`);
  assert.ok(chunks >= 2000 / 400 - 1, `${chunks} chunks in 2 s without a report`);
});
