import assert from "node:assert/strict";
import wabtInit from "wabt";
import {
  createPlainScan,
  PLAIN_SCAN_LIMIT,
  plainInJson,
  SCAN_WASM,
  SCAN_WAT,
} from "./_plain_json.ts";
import { prng } from "./_test_prng.ts";

/** What the scan must say: whether JSON.stringify only adds the quotes. */
function expected(text: string): boolean {
  return JSON.stringify(text) === `"${text}"`;
}

/** Characters on both sides of every limit the scan draws, in every UTF-8 length. */
const EDGES = [
  "\u0000",
  "\u001f",
  " ",
  "!",
  '"',
  "#",
  "[",
  "\\",
  "]",
  "\u007f",
  "\u0080",
  "é",
  "\u2028",
  "€",
  "\ud800",
  "\udfff",
  "😀",
  "\uffff",
];

Deno.test("the scan's WebAssembly is its text compiled", async () => {
  const wabt = await wabtInit();
  const module = wabt.parseWat("scan.wat", SCAN_WAT);
  try {
    const { buffer } = module.toBinary({});
    assert.equal(btoa(String.fromCharCode(...buffer)), SCAN_WASM);
  } finally {
    module.destroy();
  }
});

Deno.test("plainInJson() tells what JSON.stringify escapes, wherever it sits in a block", () => {
  assert.equal(plainInJson(""), true);
  for (const edge of EDGES) {
    for (let length = 1; length <= 40; length++) {
      for (let at = 0; at < length; at++) {
        const text = "a".repeat(at) + edge + "b".repeat(length - at - 1);
        assert.equal(plainInJson(text), expected(text), JSON.stringify(text));
      }
    }
  }
});

Deno.test("plainInJson() agrees with JSON.stringify on random text", () => {
  const random = prng(21);
  for (let round = 0; round < 5000; round++) {
    let text = "";
    const length = Math.floor(random() * 300);
    while (text.length < length) {
      text += random() < 0.97 ? "x" : EDGES[Math.floor(random() * EDGES.length)];
    }
    assert.equal(plainInJson(text), expected(text), JSON.stringify(text));
  }
});

Deno.test("plainInJson() tells a text of the limit in three-byte characters, and not one longer", () => {
  const widest = "€".repeat(PLAIN_SCAN_LIMIT);
  assert.equal(plainInJson(widest), true);
  assert.equal(plainInJson(`${"€".repeat(PLAIN_SCAN_LIMIT - 1)}\\`), false);
  assert.equal(plainInJson(`${widest}x`), undefined);
});

Deno.test("plainInJson() is not misled by the bytes a longer text left behind", () => {
  assert.equal(plainInJson(`${"a".repeat(100)}\u0001`), false);
  // The next, shorter text ends inside what the control character's block held.
  assert.equal(plainInJson("a".repeat(99)), true);
});

Deno.test("createPlainScan() gives no scan where WebAssembly is missing, lacks SIMD or is refused", () => {
  assert.equal(createPlainScan(null), undefined);
  const { Instance, Module } = WebAssembly;
  const noSimd = { validate: () => false, Instance, Module } as unknown as typeof WebAssembly;
  assert.equal(createPlainScan(noSimd), undefined);
  const refused = {
    validate: () => true,
    Instance,
    Module: function () {
      throw new WebAssembly.CompileError("Refused to compile: no 'wasm-unsafe-eval'");
    },
  } as unknown as typeof WebAssembly;
  assert.equal(createPlainScan(refused), undefined);
  assert.equal(typeof createPlainScan(), "function");
});
