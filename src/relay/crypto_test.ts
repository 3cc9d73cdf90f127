import assert from "node:assert/strict";
import { readRelayHello, type RelayCipher, RelayKeyShare } from "./crypto.ts";
import { RelayError } from "../errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function pair(): Promise<[RelayCipher, RelayCipher]> {
  const [a, b] = await Promise.all([RelayKeyShare.create(), RelayKeyShare.create()]);
  const keyOfA = readRelayHello({ ...a.hello() })!;
  const keyOfB = readRelayHello({ ...b.hello() })!;
  return await Promise.all([a.derive(keyOfB), b.derive(keyOfA)]);
}

function bytes(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

Deno.test("RelayCipher: frames sealed by one side open on the other, in order, both ways", async () => {
  const [a, b] = await pair();
  const one = await a.seal(bytes("tools/call echo"));
  const two = await a.seal(bytes("second"));
  assert.equal(decoder.decode(await b.open(one)), "tools/call echo");
  assert.equal(decoder.decode(await b.open(two)), "second");
  assert.equal(decoder.decode(await a.open(await b.seal(bytes("back")))), "back");
});

Deno.test("RelayCipher: a sealed frame holds no plaintext and grows by the 16-byte tag only", async () => {
  const [a] = await pair();
  const plain = bytes(
    '{"method":"tools/call","params":{"name":"echo","arguments":{"text":"secret"}}}',
  );
  const sealed = await a.seal(plain);
  assert.equal(sealed.byteLength, plain.byteLength + 16);
  const text = new TextDecoder("latin1").decode(sealed);
  for (const word of ["tools/call", "echo", "secret"]) assert.ok(!text.includes(word));
});

Deno.test("RelayCipher: an altered frame is refused, and so is every frame after it", async () => {
  const [a, b] = await pair();
  const frame = await a.seal(bytes("hello"));
  const next = await a.seal(bytes("next"));
  frame[2] ^= 1;
  await assert.rejects(b.open(frame), (error: Error) => {
    assert.ok(error instanceof RelayError);
    assert.match(error.message, /altered, dropped, replayed or reordered/);
    return true;
  });
  await assert.rejects(b.open(next), RelayError);
});

Deno.test("RelayCipher: a dropped frame makes the next one fail", async () => {
  const [a, b] = await pair();
  await a.seal(bytes("dropped"));
  const second = await a.seal(bytes("second"));
  await assert.rejects(b.open(second), /Refused relayed frame 0/);
});

Deno.test("RelayCipher: a replayed frame is refused", async () => {
  const [a, b] = await pair();
  const frame = await a.seal(bytes("once"));
  await b.open(frame);
  await assert.rejects(b.open(frame), /Refused relayed frame 1/);
});

Deno.test("RelayCipher: reordered frames are refused", async () => {
  const [a, b] = await pair();
  const first = await a.seal(bytes("first"));
  const second = await a.seal(bytes("second"));
  await assert.rejects(b.open(second), RelayError);
  await assert.rejects(b.open(first), RelayError);
});

Deno.test("RelayCipher: a frame reflected back to its sender does not open", async () => {
  const [a] = await pair();
  const frame = await a.seal(bytes("mine"));
  await assert.rejects(a.open(frame), RelayError);
});

Deno.test("RelayCipher: a truncated or empty frame is refused", async () => {
  const [a, b] = await pair();
  const frame = await a.seal(bytes("hello"));
  await assert.rejects(b.open(frame.slice(0, 10)), RelayError);
  const [, d] = await pair();
  await assert.rejects(d.open(new Uint8Array(0)), RelayError);
});

Deno.test("RelayKeyShare: keys from another exchange (a relay that swaps in its own key) do not open frames", async () => {
  const [a, b, mallory] = await Promise.all([
    RelayKeyShare.create(),
    RelayKeyShare.create(),
    RelayKeyShare.create(),
  ]);
  const toB = await a.derive(mallory.publicKey);
  const atB = await b.derive(a.publicKey);
  await assert.rejects(atB.open(await toB.seal(bytes("x"))), RelayError);
});

Deno.test("RelayKeyShare.derive() refuses a malformed, low-order or second peer key", async () => {
  const share = await RelayKeyShare.create();
  await assert.rejects(share.derive(new Uint8Array(31)), /32/);
  const low = await RelayKeyShare.create();
  // The point of order 1 (u = 0) gives an all-zero shared secret.
  await assert.rejects(low.derive(new Uint8Array(32)), RelayError);
  const used = await RelayKeyShare.create();
  await used.derive((await RelayKeyShare.create()).publicKey);
  await assert.rejects(used.derive((await RelayKeyShare.create()).publicKey), /already/);
});

Deno.test("readRelayHello() accepts only a version-1 hello with a 32-byte key", async () => {
  const share = await RelayKeyShare.create();
  const hello = share.hello("no ICE path");
  assert.deepEqual(readRelayHello({ ...hello }), share.publicKey);
  assert.equal(readRelayHello({ ...hello, v: 2 }), undefined);
  assert.equal(readRelayHello({ ...hello, key: hello.key.slice(1) }), undefined);
  assert.equal(readRelayHello({ ...hello, type: "offer" }), undefined);
  assert.equal(readRelayHello({ ...hello, key: 7 }), undefined);
  // The window of the flow control rides along; the key reads the same with it.
  const withWindow = share.hello("no ICE path", 1_048_576);
  assert.equal(withWindow.window, 1_048_576);
  assert.equal("window" in hello, false);
  assert.deepEqual(readRelayHello({ ...withWindow }), share.publicKey);
});
