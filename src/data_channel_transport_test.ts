import assert from "node:assert/strict";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { DataChannelTransport } from "./data_channel_transport.ts";
import { FrameError, MessageSizeError, PeerLostError } from "./errors.ts";
import {
  CHUNK_SIZE,
  HIGH_WATER_MARK,
  LOW_WATER_MARK,
  MAX_FRAME_SIZE,
  MESSAGE_TOO_LARGE,
  SEND_SLICE_MS,
  UNFINISHED_MESSAGE_TIMED_OUT,
} from "./constants.ts";
import { FRAME_KEEPALIVE, FRAME_LAST, FRAME_MORE, MemoryBudget } from "./framing.ts";
import { useClock } from "./_clock.ts";
import { yieldToEventLoop } from "./_async.ts";
import { ManualClock } from "./_test_clock.ts";
import { createLinkedChannelPair, type LinkedChannelPairOptions } from "./testing.ts";
import { StuckChannel } from "./_test_stuck_channel.ts";

function bigResult(id: number, size: number): JSONRPCMessage {
  return {
    jsonrpc: "2.0",
    id,
    result: { content: [{ type: "text", text: "é".repeat(size / 2) }] },
  };
}

async function pair(
  channelOptions: LinkedChannelPairOptions = {},
  options: ConstructorParameters<typeof DataChannelTransport>[1] = {},
) {
  const [left, right] = createLinkedChannelPair(channelOptions);
  const a = new DataChannelTransport(left, options);
  const b = new DataChannelTransport(right, options);
  const received: JSONRPCMessage[] = [];
  const errors: Error[] = [];
  b.onmessage = (message) => received.push(message);
  b.onerror = (error) => errors.push(error);
  await Promise.all([a.start(), b.start()]);
  const close = async () => {
    await a.close();
    await b.close();
  };
  return { a, b, left, right, received, errors, close };
}

function frameOf(kind: number, bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const frame = new Uint8Array(bytes.length + 1);
  frame[0] = kind;
  frame.set(bytes, 1);
  return frame;
}

function until(condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`Condition not met within ${ms} ms`));
      setTimeout(check, 5);
    };
    check();
  });
}

Deno.test("DataChannelTransport.send() delivers small messages as text frames in order", async () => {
  const t = await pair({}, { keepaliveInterval: 0 });
  for (let id = 0; id < 50; id++) await t.a.send({ jsonrpc: "2.0", id, method: "ping" });
  await until(() => t.received.length === 50);
  assert.deepEqual(t.received.map((m) => (m as { id: number }).id), [...Array(50).keys()]);
  assert.ok(t.left.sent.every((frame) => typeof frame === "string"));
  await t.close();
});

Deno.test("DataChannelTransport.send() puts a small message on the channel before it returns, never ahead of an earlier one", async () => {
  const t = await pair({}, { keepaliveInterval: 0 });
  const before = t.left.sent.length;
  const sending = t.a.send({ jsonrpc: "2.0", id: 1, method: "ping" });
  assert.equal(t.left.sent.length, before + 1, "the frame was not handed over in send()");
  await sending;
  // A large message is written over several turns: a small one sent meanwhile waits for it.
  const large = t.a.send(bigResult(2, 1024 * 1024));
  const small = t.a.send({ jsonrpc: "2.0", id: 3, method: "ping" });
  await Promise.all([large, small]);
  await until(() => t.received.length === 3);
  assert.deepEqual(t.received.map((m) => (m as { id: number }).id), [1, 2, 3]);
  await t.close();
});

Deno.test("DataChannelTransport.send() chunks a message over maxMessageSize and stays within it", async () => {
  const t = await pair({ maxMessageSize: 16_384 }, {
    maxMessageSize: 16_384,
    keepaliveInterval: 0,
  });
  const message = bigResult(7, 300_000);
  await t.a.send(message);
  await until(() => t.received.length === 1);
  assert.deepEqual(t.received[0], message);
  assert.ok(t.left.sent.length > 18);
  assert.ok(t.left.sent.every((frame) => typeof frame !== "string" && frame.byteLength <= 16_384));
  await t.close();
});

Deno.test("DataChannelTransport never sends frames over 256 KiB whatever the peer allows", async () => {
  const t = await pair({ maxMessageSize: 1 << 30 }, {
    maxMessageSize: 1 << 30,
    keepaliveInterval: 0,
  });
  await t.a.send(bigResult(1, 2_000_000));
  await until(() => t.received.length === 1);
  assert.ok(
    t.left.sent.every((frame) =>
      (typeof frame === "string" ? frame.length : frame.byteLength) <= MAX_FRAME_SIZE
    ),
  );
  await t.close();
});

Deno.test("DataChannelTransport sends what fits the peer's frames whole, and anything larger in 64 KiB chunks", async () => {
  const t = await pair({ maxMessageSize: 262_144 }, {
    maxMessageSize: 262_144,
    keepaliveInterval: 0,
  });
  const whole = bigResult(1, 200_000);
  await t.a.send(whole);
  await until(() => t.received.length === 1);
  assert.deepEqual(t.left.sent.map((frame) => typeof frame), ["string"]);
  const chunked = bigResult(2, 1_000_000);
  await t.a.send(chunked);
  await until(() => t.received.length === 2);
  const chunks = t.left.sent.slice(1) as Uint8Array[];
  assert.ok(chunks.length >= 1_000_000 / CHUNK_SIZE, `${chunks.length} chunks`);
  assert.ok(chunks.every((chunk) => typeof chunk !== "string" && chunk.byteLength <= CHUNK_SIZE));
  assert.deepEqual(t.received, [whole, chunked]);
  await t.close();
});

Deno.test("DataChannelTransport writes the chunks of large messages into one buffer, which the channel copies", async () => {
  const t = await pair({ maxMessageSize: 262_144 }, {
    maxMessageSize: 262_144,
    keepaliveInterval: 0,
  });
  const buffers = new Set<ArrayBufferLike>();
  const send = t.left.send.bind(t.left);
  t.left.send = (data) => {
    if (typeof data !== "string") buffers.add(data.buffer);
    send(data);
  };
  const messages = [bigResult(1, 500_000), bigResult(2, 300_000)];
  for (const message of messages) await t.a.send(message);
  await until(() => t.received.length === 2);
  assert.deepEqual(t.received, messages);
  assert.equal(buffers.size, 1, `${buffers.size} buffers for ${t.left.sent.length} chunks`);
  await t.close();
});

Deno.test("DataChannelTransport.send() never interleaves the chunks of concurrent messages", async () => {
  const t = await pair({ maxMessageSize: 4096 }, { maxMessageSize: 4096, keepaliveInterval: 0 });
  const messages = Array.from({ length: 20 }, (_, i) => bigResult(i, 10_000 + i * 1000));
  await Promise.all(messages.map((message) => t.a.send(message)));
  await until(() => t.received.length === 20);
  assert.deepEqual(t.received, messages);
  assert.equal(t.errors.length, 0);
  await t.close();
});

Deno.test("DataChannelTransport.send() lets the event loop run every SEND_SLICE_MS of its clock while it encodes a large message", async () => {
  const t = await pair({}, { keepaliveInterval: 0 });
  // Each chunk handed to the channel takes 1 ms of the sender's clock.
  let now = 0;
  useClock(t.a, {
    now: () => now,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (id) => clearTimeout(id as number),
  });
  const send = t.left.send.bind(t.left);
  let chunks = 0;
  t.left.send = (data) => {
    if (typeof data !== "string") {
      chunks++;
      now++;
    }
    send(data);
  };
  const message = bigResult(1, 2 * 1024 * 1024);
  // Other work on the event loop notes how many chunks had gone each time it ran.
  const seen: number[] = [];
  let sending = true;
  const other = (async () => {
    for (let i = 0; i < 10_000 && sending; i++) {
      seen.push(chunks);
      await yieldToEventLoop();
    }
  })();
  await t.a.send(message);
  sending = false;
  await other;
  const gaps = seen.slice(1).map((at, i) => at - seen[i]);
  assert.ok(chunks > 4 * SEND_SLICE_MS, `${chunks} chunks`);
  assert.ok(
    Math.max(...gaps, chunks - seen.at(-1)!) <= SEND_SLICE_MS + 1,
    `chunks handed between two turns of other work: ${gaps.join(" ")}`,
  );
  await until(() => t.received.length === 1);
  assert.deepEqual(t.received[0], message);
  await t.close();
});

Deno.test("DataChannelTransport.send() waits for bufferedamountlow above the high-water mark", async () => {
  const t = await pair({ bytesPerTick: 512 * 1024 }, {
    maxMessageSize: 262_144,
    keepaliveInterval: 0,
  });
  const message = bigResult(1, 16 * 1024 * 1024);
  let resolved = false;
  const sent = t.a.send(message).then(() => (resolved = true));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(resolved, false, "send() must not resolve while the channel is full");
  await sent;
  assert.ok(t.left.bufferedAmount <= HIGH_WATER_MARK);
  await until(() => t.received.length === 1, 20_000);
  assert.deepEqual(t.received[0], message);
  // Never more than the high-water mark plus one frame was queued at once.
  assert.ok(
    t.left.peakBufferedAmount <= HIGH_WATER_MARK + MAX_FRAME_SIZE,
    `peak ${t.left.peakBufferedAmount}`,
  );
  assert.equal(t.left.bufferedAmountLowThreshold, LOW_WATER_MARK);
  await t.close();
});

Deno.test("DataChannelTransport drops a response over the receive cap, turning it into an error for its caller", async () => {
  const t = await pair({ maxMessageSize: 65_536 }, {
    maxMessageSize: 65_536,
    maxReceiveSize: 100_000,
    keepaliveInterval: 0,
  });
  await t.a.send(bigResult(1, 200_000));
  await t.a.send({ jsonrpc: "2.0", id: 2, method: "after" });
  await until(() => t.received.length === 2);
  const [refused, after] = t.received as Record<string, unknown>[];
  assert.equal(refused.id, 1);
  assert.equal((refused.error as { code: number }).code, MESSAGE_TOO_LARGE);
  assert.match((refused.error as { message: string }).message, /maxReceiveSize/);
  assert.deepEqual(after, { jsonrpc: "2.0", id: 2, method: "after" });
  assert.equal(t.errors.length, 1);
  assert.ok(t.errors[0] instanceof MessageSizeError);
  await t.close();
});

Deno.test("DataChannelTransport answers a request over the receive cap with an error response", async () => {
  const t = await pair({ maxMessageSize: 65_536 }, {
    maxMessageSize: 65_536,
    maxReceiveSize: 10_000,
    keepaliveInterval: 0,
  });
  const answers: JSONRPCMessage[] = [];
  t.a.onmessage = (message) => answers.push(message);
  await t.a.send({
    jsonrpc: "2.0",
    id: "big",
    method: "tools/call",
    params: { x: "y".repeat(50_000) },
  });
  await until(() => answers.length === 1);
  const answer = answers[0] as { id: string; error: { code: number; data: { limit: number } } };
  assert.equal(answer.id, "big");
  assert.equal(answer.error.code, MESSAGE_TOO_LARGE);
  assert.equal(answer.error.data.limit, 10_000);
  assert.equal(t.received.length, 0, "the request itself never reached the receiver's handler");
  await t.close();
});

Deno.test("DataChannelTransport sends a peer that takes no chunks every message as one text frame, or refuses it", async () => {
  // The peer is another stack: it reads one JSON-RPC message per text frame.
  const [left, right] = createLinkedChannelPair({ maxMessageSize: 65_536 });
  const plain: unknown[] = [];
  right.addEventListener("message", (event) => plain.push((event as MessageEvent).data));
  const ours = new DataChannelTransport(left, {
    maxMessageSize: 65_536,
    keepalive: false,
    chunks: () => false,
  });
  const errors: Error[] = [];
  ours.onerror = (error) => errors.push(error);
  await ours.start();
  // Up to the peer's limit, as one text frame, even with a string of the size
  // that is otherwise sent in slices.
  const fits = bigResult(1, 60_000);
  await ours.send(fits);
  // A notification or request beyond it is refused, saying why; nothing is sent.
  const large = {
    jsonrpc: "2.0",
    method: "notifications/message",
    params: { level: "info", data: "x".repeat(65_536) },
  } as JSONRPCMessage;
  await assert.rejects(ours.send(large), (error: Error) => {
    assert.ok(error instanceof MessageSizeError);
    assert.match(error.message, /does not reassemble chunks/);
    return true;
  });
  await assert.rejects(
    ours.send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { x: "y".repeat(70_000) } }),
    MessageSizeError,
  );
  // A response beyond it fails the peer's request at once instead of leaving it waiting.
  await ours.send(bigResult(4, 200_000));
  await until(() => plain.length === 2);
  assert.ok(plain.every((frame) => typeof frame === "string"));
  assert.deepEqual(JSON.parse(plain[0] as string), fits);
  const refusal = JSON.parse(plain[1] as string);
  assert.equal(refusal.id, 4);
  assert.equal(refusal.error.code, MESSAGE_TOO_LARGE);
  assert.equal(refusal.error.data.limit, 65_536);
  assert.ok(refusal.error.data.size > 200_000);
  assert.equal(errors.length, 1, "the refused response is reported here too");
  assert.ok(errors[0] instanceof MessageSizeError);
  await ours.close();
});

Deno.test("DataChannelTransport chunks again once the peer shows it speaks the framing", async () => {
  const t = await pair({ maxMessageSize: 65_536 }, {
    maxMessageSize: 65_536,
    keepalive: false,
    keepaliveInterval: 10,
    chunks: false,
  });
  const request = (id: number) =>
    ({ jsonrpc: "2.0", id, method: "tools/call", params: { x: "y".repeat(100_000) } }) as const;
  await assert.rejects(t.a.send(request(1)), MessageSizeError);
  // A keepalive from the peer: it speaks this module's framing after all.
  t.right.send(new Uint8Array([FRAME_KEEPALIVE]));
  await until(() => t.left.sent.some((frame) => frame instanceof Uint8Array));
  await t.a.send(request(2));
  await until(() => t.received.length === 1);
  assert.equal((t.received[0] as { id: number }).id, 2);
  await t.close();
});

Deno.test("DataChannelTransport reports malformed frames through onerror and drops them", async () => {
  const t = await pair({ open: true }, { keepaliveInterval: 0 });
  t.left.send("not json");
  t.left.send('{"hello":"world"}');
  t.left.send(new Uint8Array([9, 9, 9]));
  t.left.send('{"jsonrpc":"2.0","id":3,"method":"ok"}');
  await until(() => t.received.length === 1);
  assert.equal(t.errors.length, 3);
  assert.ok(t.errors.every((error) => error instanceof FrameError));
  assert.match(t.errors[0].message, /not JSON/);
  assert.match(t.errors[1].message, /not a JSON-RPC 2.0 message/);
  assert.match(t.errors[2].message, /unknown header byte 9/);
  await t.close();
});

Deno.test("DataChannelTransport.start() twice throws with a hint about connect()", async () => {
  const t = await pair({}, { keepaliveInterval: 0 });
  await assert.rejects(() => t.a.start(), /connect\(\) calls start\(\) automatically/);
  await t.close();
});

Deno.test("DataChannelTransport.close() is idempotent and fires onclose once on both sides", async () => {
  const t = await pair({}, { keepaliveInterval: 0 });
  let aClosed = 0;
  let bClosed = 0;
  t.a.onclose = () => aClosed++;
  t.b.onclose = () => bClosed++;
  await Promise.all([t.a.close(), t.a.close()]);
  await t.a.close();
  await until(() => bClosed === 1);
  await t.b.close();
  assert.equal(aClosed, 1);
  assert.equal(bClosed, 1);
});

Deno.test("DataChannelTransport.send() after close rejects clearly", async () => {
  const t = await pair({}, { keepaliveInterval: 0 });
  await t.close();
  await assert.rejects(
    () => t.a.send({ jsonrpc: "2.0", id: 1, method: "x" }),
    /Cannot send message as the transport is closed/,
  );
});

Deno.test("DataChannelTransport.close() delivers what was sent before it", async () => {
  const t = await pair({ bytesPerTick: 64 * 1024 }, { keepaliveInterval: 0 });
  const message = bigResult(1, 1_000_000);
  t.a.send(message);
  await t.a.close();
  await until(() => t.received.length === 1);
  assert.deepEqual(t.received[0], message);
  await t.b.close();
});

Deno.test("DataChannelTransport notices a silent peer within the idle timeout", async () => {
  const [left, right] = createLinkedChannelPair();
  const a = new DataChannelTransport(left, { keepaliveInterval: 20, idleTimeout: 100 });
  // The other end never runs a transport: it opens but never speaks.
  const errors: Error[] = [];
  let closed = 0;
  a.onerror = (error) => errors.push(error);
  a.onclose = () => closed++;
  const started = Date.now();
  await a.start();
  await until(() => closed === 1, 2_000);
  assert.ok(Date.now() - started >= 100);
  assert.ok(errors[0] instanceof PeerLostError);
  await until(() => right.readyState === "closed", 1_000);
});

Deno.test("DataChannelTransport sends keepalives to a plain peer only after it sends one", async () => {
  const [left, right] = createLinkedChannelPair();
  const quiet = new DataChannelTransport(left, { keepalive: false, keepaliveInterval: 10 });
  await quiet.start();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(left.sent.length, 0, "no binary frame towards a peer that never sent one");
  const loud = new DataChannelTransport(right, { keepalive: true, keepaliveInterval: 10 });
  await loud.start();
  await until(() => left.sent.length > 0);
  assert.ok(left.sent.every((frame) => frame instanceof Uint8Array && frame.byteLength === 1));
  await quiet.close();
  await loud.close();
});

Deno.test("DataChannelTransport rejects options out of range", () => {
  const [left] = createLinkedChannelPair({ open: true });
  assert.throws(() => new DataChannelTransport(left, { maxMessageSize: 1 }), RangeError);
  assert.throws(() => new DataChannelTransport(left, { maxReceiveSize: -1 }), RangeError);
  assert.throws(() => new DataChannelTransport(left, { idleTimeout: 0 }), /idleTimeout/);
  for (const bad of [0, NaN, -5, 2.5]) {
    assert.throws(
      () => new DataChannelTransport(left, { unfinishedMessageTimeout: bad }),
      /'unfinishedMessageTimeout' must be an integer of at least 1/,
    );
    assert.throws(() => new DataChannelTransport(left, { openTimeout: bad }), /'openTimeout'/);
  }
  assert.throws(
    () => new DataChannelTransport(left, { budget: { limit: 5 } as unknown as MemoryBudget }),
    (error: Error) =>
      error instanceof TypeError && /'budget' is not a MemoryBudget/.test(error.message),
  );
});

/** Chunk frames of a request whose text is `bytes` long and whose last chunk is not sent. */
function unfinishedRequest(id: number, chunks: number, size = 1_000): Uint8Array<ArrayBuffer>[] {
  const text = JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { x: "y".repeat(chunks * size) },
  });
  const bytes = new TextEncoder().encode(text);
  return Array.from({ length: chunks }, (_, i) => {
    const frame = new Uint8Array(size + 1);
    frame[0] = FRAME_MORE;
    frame.set(bytes.subarray(i * size, (i + 1) * size), 1);
    return frame;
  });
}

Deno.test("DataChannelTransport drops a chunked request whose chunks stop for unfinishedMessageTimeout, answers it naming the deadline, and closes", async () => {
  const [left, right] = createLinkedChannelPair();
  const budget = new MemoryBudget("unfinishedBudget", 1_000_000);
  const b = new DataChannelTransport(right, {
    keepaliveInterval: 0,
    unfinishedMessageTimeout: 100,
    budget,
  });
  const clock = new ManualClock(0);
  useClock(b, clock);
  const errors: Error[] = [];
  b.onerror = (error) => errors.push(error);
  const closed = new Promise<void>((resolve) => (b.onclose = resolve));
  const answers: string[] = [];
  left.addEventListener("message", (event) => answers.push((event as MessageEvent).data));
  await b.start();
  await new Promise<void>((resolve) =>
    left.readyState === "open" ? resolve() : left.addEventListener("open", () => resolve())
  );
  for (const frame of unfinishedRequest(9, 3)) left.send(frame);
  await until(() => budget.used === 3_000);
  await clock.advance(99);
  assert.equal(errors.length, 0, "nothing is dropped before the deadline");
  await clock.advance(1);
  await closed;
  assert.equal(budget.used, 0, "what the message held is given back");
  assert.match(
    errors[0].message,
    /no chunk of an unfinished message.*unfinishedMessageTimeout is 100 ms/,
  );
  const answer = JSON.parse(answers.find((data) => typeof data === "string")!);
  assert.equal(answer.id, 9);
  assert.equal(answer.error.code, UNFINISHED_MESSAGE_TIMED_OUT);
  assert.equal(answer.error.data.budget, "unfinishedMessageTimeout");
});

Deno.test("DataChannelTransport takes a slow message whole as long as each chunk comes within unfinishedMessageTimeout", async () => {
  const [left, right] = createLinkedChannelPair({ maxMessageSize: 65_536 });
  const clock = new ManualClock(0);
  // The budget shows what the transport holds, so each chunk is seen to arrive.
  const budget = new MemoryBudget("unfinishedBudget", 1_000_000);
  const b = new DataChannelTransport(right, {
    keepaliveInterval: 0,
    unfinishedMessageTimeout: 150,
    budget,
  });
  useClock(b, clock);
  const received: JSONRPCMessage[] = [];
  const errors: Error[] = [];
  b.onmessage = (message) => received.push(message);
  b.onerror = (error) => errors.push(error);
  let closed = false;
  b.onclose = () => (closed = true);
  await b.start();
  await new Promise<void>((resolve) =>
    left.readyState === "open" ? resolve() : left.addEventListener("open", () => resolve())
  );
  const text = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "slow",
    params: { x: "y".repeat(4_000) },
  });
  const bytes = new TextEncoder().encode(text);
  // Five chunks 149 ms apart: 596 ms in all, four times the deadline, never 150 ms without one.
  const size = Math.ceil(bytes.length / 5);
  for (let at = 0; at < bytes.length; at += size) {
    if (at > 0) await clock.advance(149);
    const frame = new Uint8Array(Math.min(size, bytes.length - at) + 1);
    frame[0] = at + size >= bytes.length ? FRAME_LAST : FRAME_MORE;
    frame.set(bytes.subarray(at, at + size), 1);
    left.send(frame);
    const held = at + size < bytes.length ? at + size : 0;
    await until(() => budget.used === held || errors.length > 0);
  }
  await until(() => received.length === 1 || errors.length > 0);
  assert.deepEqual(errors, []);
  assert.equal(clock.now(), 4 * 149);
  assert.deepEqual(received[0], JSON.parse(text));
  assert.equal(closed, false);
  // The same pause plus one millisecond, in the middle of the next message, closes the session.
  left.send(frameOf(FRAME_MORE, bytes.subarray(0, size)));
  await until(() => budget.used === size);
  await clock.advance(150);
  await until(() => closed);
  assert.match((errors as Error[])[0].message, /no chunk of an unfinished message for 150 ms/);
  left.close();
});

Deno.test("DataChannelTransport answers a request refused by its budget with an error naming the budget; the session goes on", async () => {
  const budget = new MemoryBudget("maxUnfinishedBytesPerAgent", 10_000);
  const [left, right] = createLinkedChannelPair();
  const a = new DataChannelTransport(left, { maxMessageSize: 4_096, keepaliveInterval: 0 });
  const b = new DataChannelTransport(right, { budget, keepaliveInterval: 0 });
  const received: JSONRPCMessage[] = [];
  b.onmessage = (message) => received.push(message);
  const answers: JSONRPCMessage[] = [];
  a.onmessage = (message) => answers.push(message);
  await Promise.all([a.start(), b.start()]);
  budget.reserve(5_000); // Another session of the agent holds half the budget.
  await a.send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { x: "y".repeat(16_000) } });
  await until(() => answers.length === 1);
  const answer = answers[0] as {
    id: number;
    error: { code: number; message: string; data: Record<string, unknown> };
  };
  assert.equal(answer.id, 3);
  assert.equal(answer.error.code, MESSAGE_TOO_LARGE);
  assert.equal(answer.error.data.budget, "maxUnfinishedBytesPerAgent");
  assert.match(answer.error.message, /'maxUnfinishedBytesPerAgent' \(10000 bytes\)/);
  assert.equal(budget.used, 5_000);
  await a.send({ jsonrpc: "2.0", id: 4, method: "small" });
  await until(() => received.length === 1);
  await a.close();
  await b.close();
});

Deno.test("DataChannelTransport.start() gives up on a channel that does not open within openTimeout, and closes it", async () => {
  const channel = Object.assign(new EventTarget(), {
    label: "mcp",
    readyState: "connecting",
    bufferedAmount: 0,
    bufferedAmountLowThreshold: 0,
    binaryType: "blob",
    closed: 0,
    send() {},
    close() {
      this.closed++;
    },
  });
  const transport = new DataChannelTransport(channel, { openTimeout: 50 });
  const clock = new ManualClock(0);
  useClock(transport, clock);
  const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
  let settled = false;
  const starting = transport.start().finally(() => (settled = true));
  await clock.advance(49);
  assert.equal(settled, false, "still waiting 1 ms before the deadline");
  await clock.advance(1);
  await assert.rejects(starting, /did not open within 50 ms \(openTimeout\)/);
  await closed;
  assert.equal(channel.closed, 1);
});

Deno.test("DataChannelTransport holds at most its queue budget of messages waiting for a peer that stops reading: the send past it is refused naming the budget, and the transport closes", async () => {
  const channel = new StuckChannel();
  const a = new DataChannelTransport(channel, {
    keepalive: false,
    queueBudget: new MemoryBudget("maxQueuedBytes", 3_000_000),
  });
  const errors: Error[] = [];
  a.onerror = (error) => errors.push(error);
  let closed = false;
  a.onclose = () => void (closed = true);
  await a.start();
  // The first fills the channel's buffer past the high-water mark; the next
  // ones wait behind it, each reserving its size, until one does not fit.
  const sends = [a.send(bigResult(1, 5_000_000)).catch((error) => error)];
  // 1.2 million characters each: two fit 3 million, the third does not.
  for (let id = 2; id <= 4; id++) {
    sends.push(a.send(bigResult(id, 2_400_000)).catch((error) => error));
  }
  const refused = await sends[3];
  assert.ok(refused instanceof Error, `the fourth message is refused: ${refused}`);
  assert.match(refused.message, /would exceed 'maxQueuedBytes' \(3000000 bytes/);
  assert.ok(errors.includes(refused), "and reported through onerror");
  // Nothing sent after it goes either: the other peer never sees a gap in the stream.
  await assert.rejects(a.send({ jsonrpc: "2.0", method: "later" }), /'maxQueuedBytes'/);
  // The transport closes: every send waiting in it fails, and what they reserved goes back.
  await until(() => closed);
  for (const send of await Promise.all(sends)) assert.ok(send instanceof Error);
});
