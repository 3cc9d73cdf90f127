/**
 * The room client's relay pipes: one per remote peer, over the room's one
 * WebSocket, paced so that the room's byte budget is not exceeded.
 *
 * @module
 */
import { type Clock, SYSTEM_CLOCK } from "../_clock.ts";
import { RELAY_MAX_WAITING_FRAMES, RELAY_PACE_SHARE } from "../constants.ts";
import { RelayError } from "../errors.ts";
import { encodeRelayFrame, RELAY_ERRORS, type RelayLimits, type RelayPipe } from "./protocol.ts";

/**
 * The socket's pacing: a token bucket at {@linkcode RELAY_PACE_SHARE} of the room's
 * rate that holds a quarter of a second's worth, and a queue that keeps the
 * frames of all pipes in order.
 */
export class RelayPacer {
  readonly #limits: RelayLimits;
  readonly #send: (frame: Uint8Array<ArrayBuffer>) => void;
  #tokens: number;
  readonly #clock: Clock;
  #at: number;
  #queue: Promise<void> = Promise.resolve();

  /**
   * @param limits The room's relay limits, as its welcome gave them.
   * @param send Sends one frame on the room's socket.
   * @param clock The clock the bucket refills on and the waits are timed by.
   */
  constructor(
    limits: RelayLimits,
    send: (frame: Uint8Array<ArrayBuffer>) => void,
    clock: Clock = SYSTEM_CLOCK,
  ) {
    this.#limits = limits;
    this.#send = send;
    this.#clock = clock;
    this.#at = clock.now();
    this.#tokens = this.#capacity;
  }

  get limits(): RelayLimits {
    return this.#limits;
  }

  get #rate(): number {
    return this.#limits.bytesPerSecond * RELAY_PACE_SHARE;
  }

  get #capacity(): number {
    return Math.max(this.#rate / 4, this.#limits.maxFrameBytes);
  }

  /** Sends one frame once the budget allows it, after every earlier one. */
  send(frame: Uint8Array<ArrayBuffer>): Promise<void> {
    const task = this.#queue.then(async () => {
      const now = this.#clock.now();
      this.#tokens = Math.min(
        this.#capacity,
        this.#tokens + ((now - this.#at) / 1000) * this.#rate,
      );
      this.#at = now;
      this.#tokens -= frame.byteLength;
      if (this.#tokens < 0) {
        // Pacing: the wait is the time the budget needs to refill, not a guess.
        await new Promise<void>((resolve) =>
          this.#clock.setTimeout(resolve, (-this.#tokens / this.#rate) * 1000)
        );
      }
      this.#send(frame);
    });
    this.#queue = task.catch(() => {});
    return task;
  }
}

/** One peer's relay pipe on a room socket. */
export class RoomRelayPipe implements RelayPipe {
  readonly #peer: string;
  readonly #pacer: () => RelayPacer | undefined;
  readonly #named: boolean;
  #handlers?: Parameters<RelayPipe["listen"]>[0];
  #waiting: Uint8Array[] = [];
  #closed = false;

  /**
   * @param peer The remote peer's id.
   * @param pacer The socket's pacer, or `undefined` if the room does not relay (or is disconnected).
   * @param named Whether frames name the peer (this side is the host).
   */
  constructor(peer: string, pacer: () => RelayPacer | undefined, named: boolean) {
    this.#peer = peer;
    this.#pacer = pacer;
    this.#named = named;
  }

  get limits(): RelayLimits {
    return this.#require().limits;
  }

  /** Throws the reason the pipe cannot be used, if any. */
  check(): void {
    this.#require();
  }

  send(payload: Uint8Array): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new RelayError(`Cannot relay a frame to peer "${this.#peer}" as its relay pipe is closed`),
      );
    }
    try {
      const pacer = this.#require();
      return pacer.send(encodeRelayFrame(payload, this.#named ? this.#peer : undefined));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  listen(handlers: Parameters<RelayPipe["listen"]>[0]): void {
    if (this.#closed) return queueMicrotask(() => handlers.close());
    this.#handlers = handlers;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const payload of waiting) handlers.message(payload);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiting = [];
    this.#handlers = undefined;
  }

  /** A payload from the peer. */
  deliver(payload: Uint8Array): void {
    if (this.#closed) return;
    if (this.#handlers) return this.#handlers.message(payload);
    if (this.#waiting.length < RELAY_MAX_WAITING_FRAMES) this.#waiting.push(payload);
  }

  /** The room refused one of this pipe's frames. */
  refused(code: string, message: string): void {
    if (this.#closed) return;
    this.#handlers?.error(
      new RelayError(`The signalling room refused a relay frame (${code}): ${message}`),
    );
  }

  /** The peer left, or the room connection is gone. */
  shut(): void {
    if (this.#closed) return;
    const handlers = this.#handlers;
    this.close();
    handlers?.close();
  }

  #require(): RelayPacer {
    const pacer = this.#pacer();
    if (!pacer) {
      throw new RelayError(
        `Cannot relay through the signalling room as it does not relay: ${RELAY_ERRORS.relay_disabled}`,
      );
    }
    return pacer;
  }
}
