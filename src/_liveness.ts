/**
 * Whether the other peer is still there: keepalive frames on one open channel
 * every `interval`, and the peer taken as lost after `idleTimeout` without a
 * frame from it on any channel (noticed 1 ms after the timeout passes, not at
 * the next keepalive). This is the module's one keepalive: a
 * {@linkcode WebRTCConnection} runs one over all its sessions' channels, and a
 * `DataChannelTransport` used on its own runs one over its channel.
 *
 * Keepalives (one-byte binary frames) go only to a peer known to speak this
 * module's framing: one whose channel announced it (its sub-protocol), or that
 * sent a keepalive itself. A peer that speaks plain text frames (the
 * reference implementations) never sees a binary frame from us, and is not
 * checked: SCTP's own heartbeat still ends a dead connection to it. While no
 * channel is open nothing is checked either, and the silence starts anew.
 *
 * Time is read from the clock given, so a test moves it instead of waiting.
 *
 * @module
 */

import type { Clock } from "./_clock.ts";
import { PeerLostError } from "./errors.ts";
import { FRAME_KEEPALIVE } from "./framing.ts";

/** What liveness needs of a channel. */
export interface LiveChannel {
  readonly readyState: string;
  send(data: Uint8Array<ArrayBuffer>): void;
  addEventListener(type: string, listener: (event: Event) => void): void;
}

/** Options of a {@linkcode Liveness}. */
export interface LivenessOptions {
  /** Milliseconds between keepalives; `0` turns keepalives and the idle check off. */
  interval: number;
  /** Milliseconds of silence from the peer after which it is lost. */
  idleTimeout: number;
  /** Whether the peer is known from the start to speak the framing. */
  speaks: boolean;
  /** The channels to keep alive: a keepalive goes on the first open one. */
  channels: () => readonly LiveChannel[];
  /** Called once, when the peer is lost. */
  lost: (error: PeerLostError) => void;
  /** The clock to read. */
  clock: Clock;
}

/** One peer's liveness, over one or more channels to it. */
export class Liveness {
  readonly interval: number;
  readonly idleTimeout: number;
  readonly #options: LivenessOptions;
  readonly #clock: Clock;
  #speaks: boolean;
  #lastReceived: number;
  #lastSent = -Infinity;
  #timer?: unknown;
  #started = false;
  #stopped = false;

  constructor(options: LivenessOptions) {
    this.#options = options;
    this.interval = options.interval;
    this.idleTimeout = options.idleTimeout;
    this.#speaks = options.speaks;
    this.#clock = options.clock;
    this.#lastReceived = this.#clock.now();
  }

  /** Whether the peer speaks this module's framing, as far as is known. */
  get speaks(): boolean {
    return this.#speaks;
  }

  /** Counts every frame of `channel` as a sign of life; `speaks` when the peer announced the framing on it. */
  watch(channel: LiveChannel, speaks: boolean): void {
    if (speaks) this.#speaks = true;
    channel.addEventListener("message", (event) => {
      const data = (event as MessageEvent).data;
      this.received(
        data instanceof ArrayBuffer && data.byteLength === 1 &&
          new Uint8Array(data)[0] === FRAME_KEEPALIVE,
      );
    });
  }

  /** A frame came from the peer; a keepalive shows that it speaks the framing, and is answered at once. */
  received(keepalive: boolean): void {
    this.#lastReceived = this.#clock.now();
    if (!keepalive || this.#speaks) return;
    this.#speaks = true;
    if (this.#started && !this.#stopped) this.#tick();
  }

  /** Something else went to the peer: no keepalive is needed for another interval. */
  sent(): void {
    this.#lastSent = this.#clock.now();
  }

  /** Starts keeping alive and checking, with the silence counted from now. */
  start(): void {
    if (this.interval === 0 || this.#started || this.#stopped) return;
    this.#started = true;
    this.#lastReceived = this.#clock.now();
    this.#schedule();
    this.#tick();
  }

  /** Stops for good. Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    // The next keepalive, or the moment the silence passes the idle timeout if
    // that comes first: the loss is noticed then, not up to an interval later.
    const untilIdle = this.#lastReceived + this.idleTimeout + 1 - this.#clock.now();
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#tick();
      if (!this.#stopped) this.#schedule();
    }, Math.max(1, Math.min(this.interval, untilIdle)));
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    const open = this.#options.channels().filter((channel) => channel.readyState === "open");
    if (!this.#speaks || open.length === 0) {
      // Nothing to keep alive (a plain peer, or no session open): the silence restarts.
      this.#lastReceived = now;
      return;
    }
    const quiet = now - this.#lastReceived;
    if (quiet > this.idleTimeout) {
      this.stop();
      this.#options.lost(
        new PeerLostError(
          `Lost the peer as it sent nothing for ${quiet} ms (idleTimeout is ${this.idleTimeout} ms): its process or network is gone`,
        ),
      );
      return;
    }
    if (now - this.#lastSent < this.interval) return;
    try {
      open[0].send(new Uint8Array([FRAME_KEEPALIVE]));
      this.#lastSent = now;
    } catch {
      // The channel is closing; its close follows, or the next tick uses another.
    }
  }
}
