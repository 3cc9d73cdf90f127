import assert from "node:assert/strict";
import { type NativeChannel, NativeDataChannel } from "./_native_channel.ts";

/** A scripted stand-in for node-datachannel's native channel. */
class FakeNative implements NativeChannel {
  open = false;
  threshold = -1;
  sent: (string | Uint8Array)[] = [];
  closed = 0;
  callbacks: Record<string, (...args: never[]) => void> = {};
  getLabel = () => "mcp";
  getProtocol = () => "mcp-webrtc.v1";
  isOpen = () => this.open;
  bufferedAmount = () => 42;
  setBufferedAmountLowThreshold = (bytes: number) => void (this.threshold = bytes);
  sendMessage = (message: string) => (this.sent.push(message), true);
  sendMessageBinary = (message: Uint8Array) => (this.sent.push(message), true);
  close = () => void this.closed++;
  onOpen = (callback: () => void) => void (this.callbacks.open = callback);
  onClosed = (callback: () => void) => void (this.callbacks.closed = callback);
  onError = (callback: (error: string) => void) => void (this.callbacks.error = callback);
  onBufferedAmountLow = (callback: () => void) => void (this.callbacks.low = callback);
  onMessage = (callback: (message: string | ArrayBuffer | Uint8Array) => void) =>
    void (this.callbacks.message = callback);
  fire(name: string, ...args: unknown[]) {
    (this.callbacks[name] as (...args: unknown[]) => void)(...args);
  }
}

function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("NativeDataChannel goes from connecting to open and sends only when open", () => {
  const native = new FakeNative();
  const channel = new NativeDataChannel(native);
  assert.equal(channel.label, "mcp");
  assert.equal(channel.protocol, "mcp-webrtc.v1");
  assert.equal(channel.readyState, "connecting");
  assert.throws(() => channel.send("x"), /Cannot send on a data channel that is connecting/);
  let opened = 0;
  channel.addEventListener("open", () => opened++);
  native.fire("open");
  assert.equal(channel.readyState, "open");
  assert.equal(opened, 1);
  channel.send("text");
  channel.send(new Uint8Array([1, 2]));
  assert.deepEqual(native.sent, ["text", new Uint8Array([1, 2])]);
  assert.equal(channel.bufferedAmount, 42);
  channel.bufferedAmountLowThreshold = 1024;
  assert.equal(native.threshold, 1024);
  assert.equal(channel.bufferedAmountLowThreshold, 1024);
});

Deno.test("NativeDataChannel hands messages to its listeners in order, binary ones as their own ArrayBuffer", () => {
  const native = new FakeNative();
  native.open = true;
  const channel = new NativeDataChannel(native);
  const got: unknown[] = [];
  const listener = (event: Event) => got.push((event as MessageEvent).data);
  channel.addEventListener("message", listener);
  channel.addEventListener("message", listener); // Once only, as with EventTarget.
  let once = 0;
  channel.addEventListener("message", () => once++, { once: true });
  native.fire("message", "first");
  const backing = new Uint8Array([9, 1, 2, 3, 9]);
  native.fire("message", backing.subarray(1, 4));
  native.fire("message", new Uint8Array([4]).buffer);
  assert.equal(once, 1);
  assert.equal(got[0], "first");
  assert.ok(got[1] instanceof ArrayBuffer && got[2] instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(got[1] as ArrayBuffer)], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(got[2] as ArrayBuffer)], [4]);
  channel.removeEventListener("message", listener);
  native.fire("message", "unheard");
  assert.equal(got.length, 3);
});

Deno.test("NativeDataChannel closes on the next turn, as the polyfill does", async () => {
  const native = new FakeNative();
  native.open = true;
  const channel = new NativeDataChannel(native);
  const events: string[] = [];
  for (const type of ["closing", "close"]) {
    channel.addEventListener(type, () => events.push(`${type}:${channel.readyState}`));
  }
  channel.close();
  assert.equal(native.closed, 0, "not from inside the caller's turn");
  await turn();
  assert.equal(native.closed, 1);
  native.fire("closed");
  assert.deepEqual(events, [], "close comes on the turn after the native side closed");
  await turn();
  assert.deepEqual(events, ["close:closed"]);
  assert.throws(() => channel.send("x"), /closed/);
});

Deno.test("NativeDataChannel reports a close it did not ask for as closing, then closed", async () => {
  const native = new FakeNative();
  native.open = true;
  const channel = new NativeDataChannel(native);
  const events: string[] = [];
  for (const type of ["closing", "close", "error"]) {
    channel.addEventListener(type, (event) => {
      const error = (event as unknown as { error?: Error }).error;
      events.push(error ? `${type}:${error.message}` : `${type}:${channel.readyState}`);
    });
  }
  native.fire("error", "SCTP failed");
  native.fire("closed");
  await turn();
  assert.deepEqual(events, ["error:SCTP failed", "closing:closing", "close:closed"]);
});

Deno.test("NativeDataChannel refuses a binary type other than arraybuffer", () => {
  const channel = new NativeDataChannel(new FakeNative());
  channel.binaryType = "arraybuffer";
  assert.throws(() => (channel.binaryType = "blob"), /ArrayBuffers only/);
});

Deno.test("NativeDataChannel reports a listener's exception on a turn of its own and still calls the others", async () => {
  const native = new FakeNative();
  native.open = true;
  const channel = new NativeDataChannel(native);
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const got: string[] = [];
    channel.addEventListener("message", () => {
      throw new Error("listener failed");
    });
    channel.addEventListener("message", (event) => got.push((event as MessageEvent).data));
    native.fire("message", "still delivered");
    assert.deepEqual(got, ["still delivered"]);
    // Not inside the native callback, where an unhandled one aborted the process.
    assert.deepEqual(reported, []);
    await turn();
    assert.equal((reported[0] as Error).message, "listener failed");
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
