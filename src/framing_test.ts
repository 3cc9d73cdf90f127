import assert from "node:assert/strict";
import { MessageSizeError } from "./errors.ts";
import { encodeFrames, FRAME_KEEPALIVE, FRAME_LAST, FRAME_MORE, FrameDecoder } from "./framing.ts";

function roundTrip(text: string, frameSize: number, cap = 1 << 30) {
  const frames = [...encodeFrames(text, frameSize)];
  const decoder = new FrameDecoder(cap);
  const results = frames.map((frame) => decoder.push(frame));
  return { frames, results };
}

Deno.test("encodeFrames() sends a message that fits as one text frame", () => {
  const { frames } = roundTrip('{"jsonrpc":"2.0","id":1,"method":"ping"}', 1024);
  assert.deepEqual(frames, ['{"jsonrpc":"2.0","id":1,"method":"ping"}']);
});

Deno.test("encodeFrames() keeps a message of exactly the frame size as text", () => {
  const text = "a".repeat(100);
  assert.deepEqual([...encodeFrames(text, 100)], [text]);
  const over = [...encodeFrames("a".repeat(101), 100)];
  assert.equal(over.length, 2);
  assert.ok(over.every((frame) => frame instanceof Uint8Array && frame.byteLength <= 100));
});

Deno.test("encodeFrames() measures the limit in UTF-8 bytes, not characters", () => {
  // 40 characters of 3 bytes each: 120 bytes, over a 100-byte frame.
  const frames = [...encodeFrames("€".repeat(40), 100)];
  assert.equal(frames.length, 2);
  assert.ok(frames.every((frame) => typeof frame !== "string" && frame.byteLength <= 100));
});

Deno.test("encodeFrames() marks every chunk but the last as more", () => {
  const frames = [...encodeFrames("x".repeat(25), 11)] as Uint8Array[];
  assert.deepEqual(frames.map((frame) => frame[0]), [FRAME_MORE, FRAME_MORE, FRAME_LAST]);
  assert.deepEqual(frames.map((frame) => frame.byteLength), [11, 11, 6]);
});

Deno.test("encodeFrames() refuses a frame size too small to hold a header and a byte", () => {
  assert.throws(() => [...encodeFrames("x", 1)], RangeError);
  assert.throws(() => [...encodeFrames("x", 2.5)], /must be an integer of at least 2/);
});

Deno.test("FrameDecoder reassembles multi-byte characters split across chunks", () => {
  // Sizes that cut 2-, 3- and 4-byte sequences at every offset.
  const text = JSON.stringify({ s: "é€😀".repeat(50) + "ascii" });
  for (const size of [2, 3, 4, 5, 7, 13, 64]) {
    const { results } = roundTrip(text, size);
    assert.deepEqual(results.at(-1), { kind: "message", text }, `frame size ${size}`);
    assert.ok(results.slice(0, -1).every((result) => result.kind === "partial"));
  }
});

Deno.test("FrameDecoder accepts a message of exactly the cap and refuses one byte more", () => {
  const text = "z".repeat(1000);
  assert.deepEqual(roundTrip(text, 64, 1000).results.at(-1), { kind: "message", text });
  const { results } = roundTrip(text + "z", 64, 1000);
  const errors = results.filter((result) => result.kind === "error");
  assert.equal(errors.length, 1, "one error for the whole message");
  assert.ok(errors[0].kind === "error" && errors[0].error instanceof MessageSizeError);
  assert.ok(results.every((result) => result.kind !== "message"));
});

Deno.test("FrameDecoder refuses an oversized text frame and keeps decoding", () => {
  const decoder = new FrameDecoder(10);
  const result = decoder.push("0123456789ab");
  assert.equal(result.kind, "error");
  assert.deepEqual(decoder.push("[1]"), { kind: "message", text: "[1]" });
});

Deno.test("FrameDecoder goes on after a refused chunked message", () => {
  const decoder = new FrameDecoder(50);
  for (const frame of encodeFrames("y".repeat(200), 16)) decoder.push(frame);
  const next = [...encodeFrames('"ok"'.padEnd(40, " "), 16)].map((frame) => decoder.push(frame));
  assert.deepEqual(next.at(-1), { kind: "message", text: '"ok"'.padEnd(40, " ") });
});

Deno.test("FrameDecoder recognises keepalives, also between chunks", () => {
  const decoder = new FrameDecoder(1000);
  const frames = [...encodeFrames("k".repeat(30), 8)];
  const results = [];
  for (const frame of frames) {
    results.push(decoder.push(frame));
    results.push(decoder.push(new Uint8Array([FRAME_KEEPALIVE])));
  }
  assert.equal(results.filter((r) => r.kind === "keepalive").length, frames.length);
  assert.deepEqual(results.find((r) => r.kind === "message"), {
    kind: "message",
    text: "k".repeat(30),
  });
});

Deno.test("FrameDecoder reports malformed binary frames without throwing", () => {
  const decoder = new FrameDecoder(1000);
  for (
    const frame of [
      new Uint8Array([]),
      new Uint8Array([7, 1, 2]),
      new Uint8Array([FRAME_KEEPALIVE, 0]),
      new Uint8Array([FRAME_LAST, 0xff, 0xfe]),
    ]
  ) {
    const result = decoder.push(frame);
    assert.equal(result.kind, "error", `frame ${frame}`);
  }
  assert.deepEqual(decoder.push(new Uint8Array([FRAME_LAST, 0x5b, 0x5d]).buffer), {
    kind: "message",
    text: "[]",
  });
});

Deno.test("FrameDecoder drops an unfinished chunked message when a text frame arrives", () => {
  const decoder = new FrameDecoder(1000);
  decoder.push(new Uint8Array([FRAME_MORE, 0x5b]));
  assert.deepEqual(decoder.push("{}"), { kind: "message", text: "{}" });
  // The stray tail decodes on its own; the transport then refuses it as not JSON.
  assert.deepEqual(decoder.push(new Uint8Array([FRAME_LAST, 0x5d])), {
    kind: "message",
    text: "]",
  });
});

Deno.test("FrameDecoder refuses a cap that is not a positive integer", () => {
  assert.throws(() => new FrameDecoder(0), RangeError);
  assert.throws(() => new FrameDecoder(1.5), /positive integer/);
});
