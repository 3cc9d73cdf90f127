import assert from "node:assert/strict";
import { JsonAssembler, jsonPieces, LARGE_STRING } from "./_json_pieces.ts";
import { plainInJson, type PlainScan } from "./_plain_json.ts";
import { prng } from "./_test_prng.ts";

/** A large string whose characters need every kind of escape and every UTF-8 length. */
function awkwardString(length: number, random: () => number): string {
  const alphabet = ['"', "\\", "\n", "\u0001", "/", "a", "é", "€", "😀", "\ud800", "x"];
  let text = "";
  while (text.length < length) text += alphabet[Math.floor(random() * alphabet.length)];
  return text;
}

/** Both ways a slice is told plain: the WebAssembly scan, and none (where it is missing). */
const SCANS: [string, PlainScan][] = [["scan", plainInJson], ["no scan", () => undefined]];

function assemble(pieces: Iterable<string>, plain?: PlainScan): unknown {
  const assembler = new JsonAssembler(plain);
  for (const piece of pieces) assembler.push(piece);
  return assembler.end();
}

/** Cuts `text` at random places, including inside escapes and surrogate pairs. */
function cutRandomly(text: string, random: () => number, most: number): string[] {
  const pieces: string[] = [];
  for (let at = 0; at < text.length;) {
    const next = Math.min(text.length, at + 1 + Math.floor(random() * most));
    pieces.push(text.slice(at, next));
    at = next;
  }
  return pieces;
}

Deno.test("jsonPieces() gives a message without a large string as one JSON.stringify piece", () => {
  const message = { jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: "hi" }] } };
  assert.deepEqual([...jsonPieces(message)], [JSON.stringify(message)]);
});

Deno.test("jsonPieces() gives exactly the text of JSON.stringify for large strings in slices", () => {
  const random = prng(7);
  const message = {
    jsonrpc: "2.0",
    id: 9,
    result: {
      content: [
        { type: "text", text: awkwardString(3 * LARGE_STRING + 17, random) },
        { type: "image", data: "A".repeat(LARGE_STRING), mimeType: "image/png" },
      ],
      skipped: undefined,
    },
  };
  for (const [name, plain] of SCANS) {
    const pieces = [...jsonPieces(message, plain)];
    assert.ok(pieces.length > 4, name);
    assert.equal(pieces.join(""), JSON.stringify(message), name);
  }
});

Deno.test("jsonPieces() never parts a surrogate pair at a slice boundary", () => {
  const text = `${"a".repeat(LARGE_STRING - 1)}😀${"b".repeat(10)}`;
  assert.equal([...jsonPieces({ text })].join(""), JSON.stringify({ text }));
});

Deno.test("jsonPieces() serialises a large object key whole", () => {
  const message = { [`k${"y".repeat(LARGE_STRING)}`]: "x".repeat(LARGE_STRING) };
  assert.equal([...jsonPieces(message)].join(""), JSON.stringify(message));
});

Deno.test("jsonPieces() throws as JSON.stringify does for a value it cannot serialise", () => {
  const cyclic: Record<string, unknown> = { text: "x".repeat(LARGE_STRING) };
  cyclic.self = cyclic;
  assert.throws(() => jsonPieces(cyclic), TypeError);
  assert.throws(() => jsonPieces({ n: 1n }), TypeError);
});

Deno.test("JsonAssembler parses JSON cut anywhere as JSON.parse does", () => {
  const random = prng(11);
  for (let round = 0; round < 20; round++) {
    const value = {
      small: awkwardString(50, random),
      large: awkwardString(LARGE_STRING + Math.floor(random() * 3 * LARGE_STRING), random),
      list: [1, true, null, "\\\\", awkwardString(LARGE_STRING, random)],
      after: "end",
    };
    const text = JSON.stringify(value);
    const most = [1, 7, 5000, 70_000][round % 4];
    const [name, plain] = SCANS[round % 2];
    assert.deepEqual(assemble(cutRandomly(text, random, most), plain), JSON.parse(text), name);
  }
});

Deno.test("JsonAssembler cuts a large string only between escape sequences", () => {
  // Backslash runs and \u escapes straddle the slice boundary at every offset.
  for (let offset = 0; offset < 8; offset++) {
    const value = "a".repeat(LARGE_STRING - 6 + offset) + '\\\\\\"\u0001é'.repeat(3);
    const text = JSON.stringify([value]);
    const pieces = [text.slice(0, LARGE_STRING + 1), text.slice(LARGE_STRING + 1)];
    for (const [name, plain] of SCANS) assert.deepEqual(assemble(pieces, plain), [value], name);
  }
});

Deno.test("JsonAssembler parses a large string used as an object key", () => {
  const value = { [`k${"y".repeat(LARGE_STRING)}`]: { [`z${"w".repeat(LARGE_STRING)}`]: 1 } };
  const text = JSON.stringify(value);
  assert.deepEqual(assemble(cutRandomly(text, prng(3), 9000)), value);
});

Deno.test("JsonAssembler refuses text that is not one JSON value", () => {
  const large = "x".repeat(LARGE_STRING);
  for (const [, plain] of SCANS) {
    assert.throws(() => assemble(['{"a":'], plain), SyntaxError);
    assert.throws(() => assemble([`{"a":"${large}`], plain), SyntaxError);
    assert.throws(() => assemble([`{"a":"${large}\u0001"}`], plain), SyntaxError);
    assert.throws(() => assemble([`{"a":"${large}\\q"}`], plain), SyntaxError);
    assert.throws(() => assemble([`{"a":"${large}"} x`], plain), SyntaxError);
  }
});

Deno.test("JsonAssembler does not take a peer's string for one of its placeholders", () => {
  const value = { a: "\u0000mcp-webrtc-0:0", b: "x".repeat(LARGE_STRING) };
  assert.deepEqual(assemble([JSON.stringify(value)]), value);
});

Deno.test("JsonAssembler keeps a large plain string's text as its value and still refuses control characters", () => {
  const text = "abc".repeat(LARGE_STRING);
  const broken = `{"a":"${"x".repeat(3 * LARGE_STRING)}\n${"x".repeat(10)}"}`;
  for (const [name, plain] of SCANS) {
    const pieces = cutRandomly(JSON.stringify({ text }), prng(5), 100_000);
    assert.deepEqual(assemble(pieces, plain), { text }, name);
    assert.throws(() => assemble(cutRandomly(broken, prng(6), 100_000), plain), SyntaxError, name);
  }
});

Deno.test("JsonAssembler parses a long run of backslashes as its pieces come, never whole", () => {
  // Escaped backslashes pair up: a run of them was kept unparsed to its end
  // and scanned again with every piece (2 Mi backslashes took 3 s to parse).
  // The second value's runs are odd in the text: their last one begins \u0001.
  const values = ["\\".repeat(8 * LARGE_STRING), "\\\\\\\u0001".repeat(LARGE_STRING)];
  for (const [value, cut] of [[values[0], 32_768], [values[1], 32_767]] as const) {
    const told: number[] = [];
    const spy: PlainScan = (slice) => (told.push(slice.length), plainInJson(slice));
    const text = JSON.stringify({ value });
    const pieces = [];
    for (let at = 0; at < text.length; at += cut) pieces.push(text.slice(at, at + cut));
    assert.deepEqual(assemble(pieces, spy), { value });
    assert.ok(told.length > 4, `${told.length} slices`);
    assert.ok(Math.max(...told) <= LARGE_STRING + cut, `a slice of ${Math.max(...told)}`);
  }
});
