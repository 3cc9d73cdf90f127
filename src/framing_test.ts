import assert from "node:assert/strict";
import { MessageSizeError } from "./errors.ts";
import {
  encodeFrames,
  FRAME_KEEPALIVE,
  FRAME_LAST,
  FRAME_MORE,
  FRAME_READ,
  FrameDecoder,
  MemoryBudget,
  readReportFrame,
} from "./framing.ts";
import {
  CHUNK_SIZE,
  DEFAULT_MAX_RECEIVE_SIZE,
  DEFAULT_MAX_UNFINISHED_BYTES,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  MAX_FRAME_SIZE,
} from "./constants.ts";
import { jsonPieces } from "./_json_pieces.ts";

function roundTrip(text: string, frameSize: number, cap = 1 << 30) {
  const frames = [...encodeFrames(text, frameSize)];
  const decoder = new FrameDecoder(cap);
  const results = frames.map((frame) => decoder.push(frame));
  return { frames, results };
}

/** Chunk frames of `bytes` cut at `cuts` (from 0 to the end), whatever they cut. */
function chunksCutAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  return cuts.slice(1).map((end, i) => {
    const frame = new Uint8Array(end - cuts[i] + 1);
    frame[0] = i === cuts.length - 2 ? FRAME_LAST : FRAME_MORE;
    frame.set(bytes.subarray(cuts[i], end), 1);
    return frame;
  });
}

/** Asserts that `frames` decode to `text`, and with the parse option to its value. */
function assertDecodes(text: string, frames: Uint8Array[], cap: number, message?: string) {
  for (const parse of [false, true]) {
    const decoder = new FrameDecoder(cap, { parse });
    const last = frames.map((frame) => decoder.push(frame)).at(-1);
    assert.deepEqual(
      last,
      parse ? { kind: "value", value: JSON.parse(text) } : { kind: "message", text },
      message && `${message}, parse: ${parse}`,
    );
  }
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
  // 10 payload bytes per frame: 10 + 10 + 5.
  assert.deepEqual(frames.map((frame) => frame[0]), [FRAME_MORE, FRAME_MORE, FRAME_LAST]);
  assert.deepEqual(frames.map((frame) => frame.byteLength), [11, 11, 6]);
});

Deno.test("encodeFrames() refuses a frame size too small to hold a header and a character", () => {
  assert.throws(() => [...encodeFrames("x", 4)], RangeError);
  assert.throws(() => [...encodeFrames("x", 5.5)], /must be an integer of at least 5/);
});

Deno.test("encodeFrames() never splits a character across chunks", () => {
  const text = "é€😀x".repeat(40);
  for (const size of [5, 6, 7, 8, 13, 64]) {
    const frames = [...encodeFrames(text, size)] as Uint8Array[];
    const decoded = frames.map((frame) =>
      new TextDecoder("utf-8", { fatal: true }).decode(frame.subarray(1))
    );
    assert.equal(decoded.join(""), text, `frame size ${size}`);
    assert.ok(frames.every((frame) => frame.byteLength <= size));
  }
});

/** Cuts the UTF-8 bytes of `text` into chunk frames of `size` bytes, anywhere. */
function cutAnywhere(text: string, size: number): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.byteLength; offset += size - 1) {
    const end = Math.min(offset + size - 1, bytes.byteLength);
    const frame = new Uint8Array(1 + end - offset);
    frame[0] = end === bytes.byteLength ? FRAME_LAST : FRAME_MORE;
    frame.set(bytes.subarray(offset, end), 1);
    frames.push(frame);
  }
  return frames;
}

Deno.test("FrameDecoder reassembles multi-byte characters split across chunks by other senders", () => {
  // Sizes that cut 2-, 3- and 4-byte sequences at every offset.
  const text = JSON.stringify({ s: "é€😀".repeat(50) + "ascii" });
  for (const size of [2, 3, 4, 5, 7, 13, 64]) {
    const decoder = new FrameDecoder(1 << 20);
    const results = cutAnywhere(text, size).map((frame) => decoder.push(frame));
    assert.deepEqual(results.at(-1), { kind: "message", text }, `frame size ${size}`);
    assert.ok(results.slice(0, -1).every((result) => result.kind === "partial"));
  }
});

Deno.test("FrameDecoder accepts a message of exactly the cap and refuses one byte more", () => {
  const text = "z".repeat(1000);
  assert.deepEqual(roundTrip(text, 64, 1000).results.at(-1), { kind: "message", text });
  const { results } = roundTrip(text + "z", 64, 1000);
  const errors = results.filter((result) => result.kind === "oversize");
  assert.equal(errors.length, 1, "one error for the whole message");
  assert.ok(errors[0].kind === "oversize" && errors[0].error instanceof MessageSizeError);
  assert.equal(errors[0].error.size, 1001);
  assert.ok(results.every((result) => result.kind !== "message"));
});

Deno.test("FrameDecoder names the id and method of a refused message from its two ends", () => {
  const body = "q".repeat(5000);
  const cases: [unknown, { id?: string | number; method?: string }][] = [
    // The SDK writes the id last; other senders write it first.
    [{ result: { content: [{ type: "text", text: body }] }, jsonrpc: "2.0", id: 7 }, { id: 7 }],
    [{ jsonrpc: "2.0", id: "req-1", result: { text: body } }, { id: "req-1" }],
    [{
      method: "tools/call",
      params: { name: "t", arguments: { body, id: 99 } },
      jsonrpc: "2.0",
      id: 3,
    }, {
      id: 3,
      method: "tools/call",
    }],
    [{ jsonrpc: "2.0", method: "notifications/message", params: { data: body } }, {
      method: "notifications/message",
    }],
  ];
  for (const [message, envelope] of cases) {
    const text = JSON.stringify(message);
    for (const frameSize of [256, 1 << 20]) {
      const decoder = new FrameDecoder(1000);
      const results = [...encodeFrames(text, frameSize)].map((frame) => decoder.push(frame));
      const last = results.at(-1)!;
      assert.equal(last.kind, "oversize");
      assert.deepEqual(last.kind === "oversize" && last.envelope, envelope, text.slice(0, 60));
    }
  }
});

Deno.test("FrameDecoder refuses an oversized text frame and keeps decoding", () => {
  const decoder = new FrameDecoder(10);
  const result = decoder.push("0123456789ab");
  assert.equal(result.kind, "oversize");
  assert.deepEqual(decoder.push("[1]"), { kind: "message", text: "[1]" });
});

Deno.test("FrameDecoder measures a text frame against the cap in UTF-8 bytes", () => {
  const decoder = new FrameDecoder(10);
  assert.deepEqual(decoder.push("ééééé"), { kind: "message", text: "ééééé" });
  const refused = decoder.push("éééééa");
  assert.ok(refused.kind === "oversize" && refused.error.size === 11);
  assert.deepEqual(decoder.push("abc"), { kind: "message", text: "abc" });
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

Deno.test("FrameDecoder reads a read report, also between chunks, and refuses a malformed one", () => {
  const decoder = new FrameDecoder(1000);
  const frames = [...encodeFrames("r".repeat(30), 8)];
  const results = [];
  for (const [i, frame] of frames.entries()) {
    results.push(decoder.push(frame));
    results.push(decoder.push(readReportFrame(i * 8)));
  }
  assert.deepEqual(
    results.filter((r) => r.kind === "read"),
    frames.map((_, i) => ({ kind: "read", bytes: i * 8 })),
  );
  assert.deepEqual(results.find((r) => r.kind === "message"), {
    kind: "message",
    text: "r".repeat(30),
  });
  const negative = readReportFrame(0);
  new DataView(negative.buffer).setFloat64(1, -1);
  for (const frame of [new Uint8Array([FRAME_READ, 0]), negative]) {
    assert.equal(decoder.push(frame).kind, "error", `frame ${frame}`);
  }
});

Deno.test("FrameDecoder reports malformed binary frames without throwing", () => {
  const decoder = new FrameDecoder(1000);
  for (
    const frame of [
      new Uint8Array([]),
      new Uint8Array([7, 1, 2]),
      new Uint8Array([FRAME_KEEPALIVE, 0]),
    ]
  ) {
    const result = decoder.push(frame);
    assert.equal(result.kind, "error", `frame ${frame}`);
  }
  // Invalid UTF-8 becomes U+FFFD, as in a browser; the JSON check then refuses it.
  assert.deepEqual(decoder.push(new Uint8Array([FRAME_LAST, 0xff, 0xfe])), {
    kind: "message",
    text: "\ufffd\ufffd",
  });
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

Deno.test("encodeFrames() sends pieces that fit one frame together as one text frame", () => {
  assert.deepEqual([...encodeFrames(['{"a":"', "b", '"}'], 1024)], ['{"a":"b"}']);
});

Deno.test("encodeFrames() fills every chunk across piece boundaries and decodes to the joined text", () => {
  const pieces = ["{", '"a":"', "é€😀".repeat(30), "x".repeat(7), '"}'];
  const frames = [...encodeFrames(pieces, 16)] as Uint8Array[];
  assert.ok(frames.slice(0, -1).every((frame) => frame.byteLength >= 16 - 3));
  assert.ok(frames.every((frame) => frame.byteLength <= 16));
  const decoder = new FrameDecoder(1 << 20);
  const results = frames.map((frame) => decoder.push(frame));
  assert.deepEqual(results.at(-1), { kind: "message", text: pieces.join("") });
});

Deno.test("encodeFrames() keeps a surrogate pair whose halves end and start two pieces", () => {
  // Cut at every place of a message too large for one frame: before the
  // first frame's worth, inside it, and after it.
  const text = `"${"a".repeat(40)}😀${"b".repeat(40)}😀"`;
  for (const at of [text.indexOf("😀") + 1, text.lastIndexOf("😀") + 1]) {
    const pieces = [text.slice(0, at), text.slice(at)];
    for (const [maxFrameSize, chunkSize] of [[16, 16], [64, 8], [1024, 8]]) {
      const frames = [...encodeFrames(pieces, maxFrameSize, { chunkSize })];
      const decoder = new FrameDecoder(1 << 20);
      const last = frames.map((frame) => decoder.push(frame)).at(-1);
      assert.deepEqual(
        last,
        { kind: "message", text },
        `cut at ${at}, frames of ${maxFrameSize}, chunks of ${chunkSize}`,
      );
    }
  }
});

Deno.test("FrameDecoder with parse gives a chunked message parsed, and a text frame as text", () => {
  const decoder = new FrameDecoder(1 << 20, { parse: true });
  const message = { jsonrpc: "2.0", id: 1, result: { text: "é".repeat(100) } };
  const results = [...encodeFrames(JSON.stringify(message), 32)].map((f) => decoder.push(f));
  assert.deepEqual(results.at(-1), { kind: "value", value: message });
  assert.deepEqual(decoder.push('{"a":1}'), { kind: "message", text: '{"a":1}' });
});

Deno.test("FrameDecoder with parse reports a chunked message that is not JSON and goes on", () => {
  const decoder = new FrameDecoder(1 << 20, { parse: true });
  const results = [...encodeFrames(`{"a": ${"1".repeat(100)}`, 32)].map((f) => decoder.push(f));
  const last = results.at(-1)!;
  assert.equal(last.kind, "error");
  assert.match(last.kind === "error" ? last.error.message : "", /not JSON/);
  const next = [...encodeFrames(JSON.stringify({ b: "x".repeat(100) }), 32)].map((f) =>
    decoder.push(f)
  );
  assert.deepEqual(next.at(-1), { kind: "value", value: { b: "x".repeat(100) } });
});

Deno.test("FrameDecoder with parse still names a refused message by its envelope", () => {
  const decoder = new FrameDecoder(100, { parse: true });
  const text = JSON.stringify({
    jsonrpc: "2.0",
    id: 42,
    method: "tools/call",
    params: "x".repeat(500),
  });
  const results = [...encodeFrames(text, 32)].map((f) => decoder.push(f));
  const last = results.at(-1)!;
  assert.equal(last.kind, "oversize");
  assert.deepEqual(last.kind === "oversize" && last.envelope, { id: 42, method: "tools/call" });
});

Deno.test("FrameDecoder decodes chunks cut inside a character, whichever chunk ends where", () => {
  const text = JSON.stringify({ text: "aé€😀b".repeat(3) });
  const bytes = new TextEncoder().encode(text);
  for (let first = 1; first < bytes.length; first++) {
    for (const second of [first + 1, first + 2, first + 5]) {
      if (second >= bytes.length) continue;
      assertDecodes(text, chunksCutAt(bytes, [0, first, second, bytes.length]), 1 << 20);
    }
  }
});

Deno.test("FrameDecoder decodes a large frame with characters across every slice it decodes in", () => {
  // 10 bytes per repetition: characters straddle the decoder's internal slice boundaries.
  const text = JSON.stringify({ text: "aé€😀".repeat(40_000) });
  const bytes = new TextEncoder().encode(text);
  const cuts = [[0, bytes.length], [0, 100_003, bytes.length], [0, 65_537, 262_145, bytes.length]];
  for (const at of cuts) assertDecodes(text, chunksCutAt(bytes, at), 1 << 24, `cut at ${at}`);
});

Deno.test("encodeFrames() chunks at chunkSize what does not fit maxFrameSize, and refuses a chunk size too small", () => {
  const text = "é".repeat(500);
  assert.deepEqual([...encodeFrames(text, 1000)], [text]);
  const frames = [...encodeFrames(text, 900, { chunkSize: 100 })] as Uint8Array[];
  assert.ok(frames.every((frame) => frame.byteLength <= 100));
  const decoder = new FrameDecoder(1 << 20);
  assert.deepEqual(frames.map((frame) => decoder.push(frame)).at(-1), { kind: "message", text });
  assert.throws(
    () => [...encodeFrames(text, 900, { chunkSize: 4 })],
    /'chunkSize' must be an integer of at least 5/,
  );
  assert.throws(
    () => [...encodeFrames(text, 900, { chunkSize: 100, buffer: new Uint8Array(99) })],
    /'buffer' holds 99 bytes, less than a chunk of 100/,
  );
});

Deno.test("encodeFrames() writes every chunk into the buffer given, each valid until the next", () => {
  const text = JSON.stringify({ text: "aé€😀".repeat(100) });
  const fresh = [...encodeFrames(text, 64, { chunkSize: 32 })] as Uint8Array[];
  const buffer = new Uint8Array(40);
  const taken: Uint8Array[] = [];
  for (const chunk of encodeFrames(text, 64, { chunkSize: 32, buffer })) {
    assert.equal((chunk as Uint8Array).buffer, buffer.buffer);
    taken.push((chunk as Uint8Array).slice());
  }
  assert.deepEqual(taken, fresh);
});

/** The chunk frames of `text`, each carrying `size` bytes, the last marked as such unless `unfinished`. */
function chunksOf(text: string, size: number, unfinished = false): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const cuts = [];
  for (let at = 0; at < bytes.length; at += size) cuts.push(at);
  cuts.push(bytes.length);
  const frames = chunksCutAt(bytes, cuts);
  if (unfinished) frames.at(-1)![0] = FRAME_MORE;
  return frames;
}

Deno.test("MemoryBudget refuses a reservation that any enclosing scope cannot hold, and reserves nothing then", () => {
  const desktop = new MemoryBudget("maxUnfinishedBytes", 100);
  const agent = new MemoryBudget("maxUnfinishedBytesPerAgent", 60, desktop);
  assert.equal(agent.reserve(60), undefined);
  assert.equal(agent.reserve(1), agent);
  const other = new MemoryBudget("maxUnfinishedBytesPerAgent", 60, desktop);
  assert.equal(other.reserve(41), desktop);
  assert.equal(other.used, 0);
  assert.equal(desktop.used, 60);
  agent.release(60);
  assert.equal(desktop.used, 0);
  assert.throws(() => new MemoryBudget("x", 0), /'x' must be a positive integer/);
});

Deno.test("FrameDecoder reserves each chunk of an unfinished message from its budget and gives it all back at the end", () => {
  const budget = new MemoryBudget("maxUnfinishedBytesPerConnection", 1_000);
  const decoder = new FrameDecoder(10_000, { budget });
  const text = JSON.stringify({ x: "y".repeat(250) });
  const frames = chunksOf(text, 100);
  decoder.push(frames[0]);
  decoder.push(frames[1]);
  assert.equal(budget.used, 200);
  for (const frame of frames.slice(2, -1)) decoder.push(frame);
  assert.deepEqual(decoder.push(frames.at(-1)!), { kind: "message", text });
  assert.equal(budget.used, 0);
});

Deno.test("FrameDecoder refuses a message whose chunk the budget cannot hold, names the budget, and goes on", () => {
  const desktop = new MemoryBudget("maxUnfinishedBytes", 300);
  const agent = new MemoryBudget("maxUnfinishedBytesPerAgent", 1_000, desktop);
  const one = new FrameDecoder(10_000, { budget: agent, parse: true });
  const two = new FrameDecoder(10_000, { budget: agent, parse: true });
  // One session holds 200 bytes of an unfinished message.
  for (const frame of chunksOf('{"a":"' + "x".repeat(300), 100, true).slice(0, 2)) one.push(frame);
  assert.equal(desktop.used, 200);
  const request = JSON.stringify({
    jsonrpc: "2.0",
    id: 7,
    method: "tools/call",
    params: { x: "y".repeat(400) },
  });
  const results = chunksOf(request, 100).map((frame) => two.push(frame));
  const last = results.at(-1)!;
  assert.equal(last.kind, "oversize");
  if (last.kind !== "oversize") return;
  assert.equal(last.budget, "maxUnfinishedBytes");
  assert.deepEqual(last.envelope, { id: 7, method: "tools/call" });
  assert.match(
    last.error.message,
    /'maxUnfinishedBytes' \(300 bytes\).*send large messages one at a time/,
  );
  assert.equal(desktop.used, 200, "the refused message holds nothing");
  // Once the first message has ended, the second session's next message fits.
  assert.deepEqual(one.push(chunksOf('"}', 100)[0]), {
    kind: "value",
    value: { a: "x".repeat(194) },
  });
  assert.equal(desktop.used, 0);
  assert.deepEqual(two.push(chunksOf(request, 100)[0]), { kind: "partial" });
});

Deno.test("FrameDecoder.abandon() gives back what an unfinished message holds, names it, and discards the rest of it silently", () => {
  const budget = new MemoryBudget("maxUnfinishedBytesPerConnection", 10_000);
  const decoder = new FrameDecoder(10_000, { budget, parse: true });
  const request = JSON.stringify({
    jsonrpc: "2.0",
    id: "r",
    method: "tools/call",
    params: { x: "y".repeat(400) },
  });
  const frames = chunksOf(request, 100);
  decoder.push(frames[0]);
  decoder.push(frames[1]);
  assert.ok(decoder.unfinished);
  assert.deepEqual(decoder.abandon(), { id: "r", method: "tools/call" });
  assert.equal(budget.used, 0);
  assert.equal(decoder.abandon(), undefined, "nothing more to abandon");
  assert.deepEqual(
    frames.slice(2).map((frame) => decoder.push(frame).kind),
    frames.slice(2).map(() => "partial"),
  );
  assert.ok(!decoder.unfinished);
  assert.deepEqual(decoder.push('{"jsonrpc":"2.0","id":1}'), {
    kind: "message",
    text: '{"jsonrpc":"2.0","id":1}',
  });
});

Deno.test("The default budgets hold a full-size message per session, two per agent and four per desktop, and no more", () => {
  const desktop = new MemoryBudget("maxUnfinishedBytes", DEFAULT_MAX_UNFINISHED_BYTES);
  const agents = [1, 2, 3].map(() =>
    new MemoryBudget("maxUnfinishedBytesPerAgent", DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT, desktop)
  );
  assert.equal(DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT, 2 * DEFAULT_MAX_RECEIVE_SIZE);
  assert.equal(DEFAULT_MAX_UNFINISHED_BYTES, 4 * DEFAULT_MAX_RECEIVE_SIZE);
  assert.equal(DEFAULT_MAX_UNFINISHED_BYTES, 256 * 1024 * 1024);
  // Every agent tries to hold 64 sessions of 64 MiB, a chunk at a time.
  let held = 0;
  let refused = 0;
  for (const agent of agents) {
    for (let session = 0; session < 64; session++) {
      for (let chunk = 0; chunk < DEFAULT_MAX_RECEIVE_SIZE / CHUNK_SIZE; chunk++) {
        if (agent.reserve(CHUNK_SIZE)) {
          refused++;
          break;
        }
        held += CHUNK_SIZE;
      }
    }
  }
  assert.equal(agents[0].used, DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT);
  assert.equal(agents[1].used, DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT);
  assert.equal(agents[2].used, 0, "the desktop's budget is spent by the first two");
  assert.equal(held, DEFAULT_MAX_UNFINISHED_BYTES);
  assert.equal(refused, 3 * 64 - 4);
});

Deno.test("A large message with every kind of escape and character across its chunk and slice borders arrives as sent", () => {
  // The sender's path (jsonPieces, encodeFrames into one buffer) and the
  // receiver's (FrameDecoder parsing as the chunks come), at the transport's
  // sizes and at an odd chunk size. Each special text at every offset of a
  // pattern whose length (43) shares no factor with the chunk, slice or
  // decode sizes, so each meets every border at every alignment somewhere in
  // 400 Ki characters.
  const specials = ['"', "\\", "\n", "\u0001", "\u001f", "\u2028", "\ud800", "\udfff", "😀", "é€"];
  const pattern = `${specials.join("")}\\u0041\\\\"${"x".repeat(22)}`;
  assert.equal(pattern.length, 43);
  const text = pattern.repeat(Math.ceil(400_000 / pattern.length));
  const message = {
    jsonrpc: "2.0",
    id: 7,
    result: {
      content: [
        { type: "text", text },
        { type: "text", text: text.slice(5) },
        // Slices that need no escaping, one that does, and a pair across the
        // end of a slice of the sender's (its high half at 5 × 65,536 − 1).
        { type: "text", text: `${"y".repeat(200_000)}\n${"y".repeat(127_678)}😀${"y".repeat(9)}` },
      ],
    },
  };
  for (const chunkSize of [CHUNK_SIZE, 4099]) {
    const buffer = new Uint8Array(chunkSize);
    const decoder = new FrameDecoder(1 << 24, { parse: true });
    const results = [];
    for (const frame of encodeFrames(jsonPieces(message), MAX_FRAME_SIZE, { chunkSize, buffer })) {
      results.push(decoder.push(frame));
    }
    assert.ok(results.length > 10, `chunks of ${chunkSize}`);
    assert.deepEqual(results.at(-1), { kind: "value", value: message }, `chunks of ${chunkSize}`);
  }
});
