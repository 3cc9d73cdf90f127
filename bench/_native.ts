/**
 * The floor the benchmark divides by: node-datachannel's native API on
 * 127.0.0.1 with no layer of this module in between.
 *
 * - {@linkcode nativePair}: two native peer connections negotiated directly in
 *   this process, with one open data channel between them.
 * - {@linkcode BareTransport}: the least an MCP transport can do on such a
 *   channel (one `JSON.stringify` out, one `JSON.parse` in, no framing, no
 *   validation): the SDK over it is the floor of a `tools/call` round trip.
 * - {@linkcode rawTransfer}: bytes in 64 KiB messages with the same water
 *   marks as this module, no serialisation, the way a result goes: the floor
 *   of a large result.
 *
 * @module
 */
import nodeDataChannel from "node-datachannel";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { HIGH_WATER_MARK, LOOPBACK_MTU, LOW_WATER_MARK } from "../src/constants.ts";

type NativeChannel = nodeDataChannel.DataChannel;

/** Two open native channels, one per peer connection, and how to close everything. */
export interface NativePair {
  offerer: NativeChannel;
  answerer: NativeChannel;
  close(): Promise<void>;
}

/**
 * Connects two native peer connections on 127.0.0.1 with the MTU this
 * module uses there, so that the floor and the transport share one path.
 */
export async function nativePair(mtu = LOOPBACK_MTU): Promise<NativePair> {
  const config = { iceServers: [], bindAddress: "127.0.0.1", mtu };
  const a = new nodeDataChannel.PeerConnection("floor-a", config);
  const b = new nodeDataChannel.PeerConnection("floor-b", config);
  const answered = Promise.withResolvers<NativeChannel>();
  // A connection that cannot take the other's signalling will not open: say why now.
  linkPeers(a, b, (error) => answered.reject(error));
  b.onDataChannel((channel) => answered.resolve(channel));
  const offerer = a.createDataChannel("floor");
  const opened = new Promise<void>((resolve) => offerer.onOpen(resolve));
  const timer = setTimeout(
    () => answered.reject(new Error("The native pair did not connect")),
    10_000,
  );
  try {
    const [answerer] = await Promise.all([answered.promise, opened]);
    return {
      offerer,
      answerer,
      async close() {
        // node-datachannel releases its callbacks, which hold the process open, once
        // each channel and each connection reports itself closed.
        const closed = [
          new Promise<void>((resolve) => offerer.onClosed(resolve)),
          new Promise<void>((resolve) => answerer.onClosed(resolve)),
        ];
        offerer.close();
        await bounded(Promise.all(closed), 1_000);
        const ended = [a, b].map((pc) =>
          new Promise<void>((resolve) =>
            pc.onStateChange((state) => state === "closed" && resolve())
          )
        );
        a.close();
        b.close();
        await bounded(Promise.all(ended), 1_000);
      },
    };
  } catch (error) {
    // Nothing holds the process open after a pair that did not connect.
    a.close();
    b.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The part of a native peer connection {@linkcode linkPeers} wires to the other. */
export interface SignallingPeer {
  onLocalDescription(callback: (sdp: string, type: string) => void): void;
  onLocalCandidate(callback: (candidate: string, mid: string) => void): void;
  setRemoteDescription(sdp: string, type: string): void;
  addRemoteCandidate(candidate: string, mid: string): void;
}

/**
 * Hands each peer's description and candidates to the other, in the order
 * this module's own negotiation keeps (`src/peer/negotiate.ts`):
 *
 * - node-datachannel calls each kind of event back through a queue of its
 *   own, so a candidate may come before the description it belongs to: it
 *   waits for the description;
 * - the offerer's candidates wait until the answer is set on the offerer.
 *   Otherwise the answerer, which has them, checks the offerer and starts the
 *   DTLS handshake before the answer's callback has run, and the offerer,
 *   with no fingerprint to check the answerer's certificate against, refuses
 *   it ("certificate verify failed", "unknown CA"): the connection fails.
 *   That was 2 runs of `bench/fairness.ts` in 5 under load, and 3 in 200
 *   of its start-ups.
 *
 * Nothing thrown may leave a callback: node-datachannel calls it from native
 * code, and an exception that escapes one aborts the process (`terminate
 * called after throwing an instance of 'Napi::Error'`). A peer whose
 * connection closed or failed keeps its remote description and loses its ICE
 * transport, and adding a candidate to it throws ("Got a remote candidate
 * without ICE transport": the abort the failed handshake above ended in). Such
 * a description or candidate is dropped and `onerror` says why.
 */
export function linkPeers(
  a: SignallingPeer,
  b: SignallingPeer,
  onerror: (error: Error) => void = () => {},
): void {
  /** One peer's side: what it sends to `to` and whether that may go yet. */
  interface Side {
    from: SignallingPeer;
    to: SignallingPeer;
    name: string;
    /** Candidates for `to` that may not go yet. */
    held: [string, string][];
    /** Whether this side's description is set on `to`. */
    described: boolean;
    /** Whether this side offered and the answer is not set on it yet. */
    awaitingAnswer: boolean;
    /** Whether `to` refused something: its connection is gone. */
    failed: boolean;
  }
  const side = (from: SignallingPeer, to: SignallingPeer, name: string): Side => ({
    from,
    to,
    name,
    held: [],
    described: false,
    awaitingAnswer: false,
    failed: false,
  });
  const sides = [side(a, b, "answerer"), side(b, a, "offerer")];
  const guarded = (s: Side, what: string, apply: () => void) => {
    if (s.failed) return;
    try {
      apply();
    } catch (cause) {
      // Its connection is gone: whatever else comes for it is dropped too.
      s.failed = true;
      onerror(
        new Error(
          `Cannot add a ${what} to the native pair's ${s.name}, whose connection is closed or failed: ${
            cause instanceof Error ? cause.message : String(cause)
          }`,
          { cause },
        ),
      );
    }
  };
  const flush = (s: Side) => {
    if (!s.described || s.awaitingAnswer) return;
    const held = s.held;
    s.held = [];
    for (const [candidate, mid] of held) {
      guarded(s, "candidate", () => s.to.addRemoteCandidate(candidate, mid));
    }
  };
  for (const [s, other] of [[sides[0], sides[1]], [sides[1], sides[0]]]) {
    s.from.onLocalDescription((sdp, type) => {
      s.awaitingAnswer = type === "offer";
      guarded(s, "description", () => s.to.setRemoteDescription(sdp, type));
      s.described = true;
      if (type === "answer") other.awaitingAnswer = false;
      flush(s);
      flush(other);
    });
    s.from.onLocalCandidate((candidate, mid) => {
      s.held.push([candidate, mid]);
      flush(s);
    });
  }
}

/** Waits for `promise`, at most `ms` milliseconds. */
async function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

/** An MCP transport with nothing but `JSON.stringify` and `JSON.parse` on a native channel. */
export class BareTransport implements Transport {
  onmessage?: (message: JSONRPCMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  readonly #channel: NativeChannel;

  constructor(channel: NativeChannel) {
    this.#channel = channel;
  }

  start(): Promise<void> {
    this.#channel.onMessage((data) => this.onmessage?.(JSON.parse(data as string)));
    return Promise.resolve();
  }

  send(message: JSONRPCMessage): Promise<void> {
    this.#channel.sendMessage(JSON.stringify(message));
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.onclose?.();
    return Promise.resolve();
  }
}

/**
 * Sends `bytes` from `sender` to `receiver` in 64 KiB binary messages,
 * waiting above this module's high-water mark as it does; resolves with the
 * milliseconds from the first send to the last byte received. The benchmark
 * sends from the answerer to the offerer, the way a tool result goes (the
 * server answers); that way was 1–3% slower than the other on loopback.
 */
export async function rawTransfer(
  sender: NativeChannel,
  receiver: NativeChannel,
  bytes: number,
): Promise<number> {
  const chunk = new Uint8Array(65_536).fill(0x78);
  const received = Promise.withResolvers<void>();
  let got = 0;
  receiver.onMessage((data) => {
    got += typeof data === "string" ? data.length : (data as ArrayBuffer).byteLength;
    if (got >= bytes) received.resolve();
  });
  sender.setBufferedAmountLowThreshold(LOW_WATER_MARK);
  let low = Promise.withResolvers<void>();
  sender.onBufferedAmountLow(() => low.resolve());
  const started = performance.now();
  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    if (sender.bufferedAmount() > HIGH_WATER_MARK) {
      await low.promise;
      low = Promise.withResolvers<void>();
    }
    sender.sendMessageBinary(chunk.subarray(0, Math.min(chunk.byteLength, bytes - sent)));
  }
  await received.promise;
  return performance.now() - started;
}
