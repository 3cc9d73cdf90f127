/**
 * What one MCP session sent and received, so that it can continue on a new
 * peer connection after a network change with nothing lost and nothing
 * delivered twice: {@linkcode ResumeLog}.
 *
 * Each side numbers the messages it sends on a session, from 1; a channel is
 * ordered and reliable, so the numbers are implicit on the wire (the n-th
 * message of the session is number n) and only counts travel: an
 * acknowledgement says how many messages of the session this side received,
 * and so does each side when the session is bound to a new channel. A sender
 * keeps each message until it is acknowledged, in a {@linkcode MemoryBudget}
 * (the session's scope, possibly inside its connection's); after a rebind it
 * sends again exactly the messages after the count the other side gave. A
 * receiver delivers a message only if its number is the next one, drops one
 * it already delivered, and refuses one that skips a number.
 *
 * The log is pure: it sends and receives nothing itself. Its one timer, the
 * delayed acknowledgement, reads the injected clock and calls `acknowledge`.
 *
 * @module
 */

import { type Clock, SYSTEM_CLOCK } from "./_clock.ts";
import {
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES,
  RESUME_ACK_EVERY,
  RESUME_ACK_INTERVAL,
} from "./constants.ts";
import { WebRTCTransportError } from "./errors.ts";
import { MemoryBudget } from "./framing.ts";

/**
 * What a kept message costs beyond its bytes (its entry, its number, the
 * object that holds it), so that a flood of empty messages is bounded too.
 */
const KEPT_MESSAGE_OVERHEAD = 64;

/** How many taken entries the queue of kept messages may carry before it is compacted. */
const COMPACT_AFTER = 1024;

/** Options of {@linkcode ResumeLog}. */
export interface ResumeLogOptions {
  /**
   * The session's scope of bytes kept until acknowledged, possibly inside its
   * connection's.
   *
   * @default {new MemoryBudget("maxUnacknowledgedBytesPerSession", DEFAULT_MAX_UNACKNOWLEDGED_BYTES)} (64 MiB)
   */
  budget?: MemoryBudget;
  /**
   * Milliseconds after receiving a message not yet acknowledged before
   * `acknowledge` is called.
   *
   * @default {100}
   */
  ackInterval?: number;
  /**
   * Messages received without an acknowledgement after which `acknowledge`
   * is called at once.
   *
   * @default {64}
   */
  ackEvery?: number;
  /** Sends an acknowledgement: how many messages of the session this side received. */
  acknowledge?: (received: number) => void;
  /** The clock the delayed acknowledgement reads. */
  clock?: Clock;
}

/** A message kept until the other side acknowledges it. */
export interface KeptMessage<T> {
  /** Its number in the session, from 1. */
  readonly seq: number;
  readonly message: T;
  /** What it reserved of the budget. */
  readonly bytes: number;
}

/**
 * One session's numbering, acknowledgements and kept messages.
 *
 * @example A message lost with a connection is sent again, once
 * ```ts
 * import { ResumeLog } from "./_resume_log.ts";
 * import assert from "node:assert/strict";
 *
 * const agent = new ResumeLog<string>();
 * const desktop = new ResumeLog<string>();
 * agent.keep("one", 3);
 * assert.equal(desktop.accept(1), true); // "one" arrived
 * agent.keep("two", 3); // lost with the connection
 * // On the new connection each side says how many it received.
 * const { received, resend } = agent.rebind(desktop.rebind(0).received);
 * assert.equal(received, 0);
 * assert.deepEqual(resend.map((kept) => kept.message), ["two"]);
 * assert.equal(desktop.accept(2), true);
 * assert.equal(desktop.accept(2), false); // a second copy is dropped
 * agent.close();
 * desktop.close();
 * ```
 */
export class ResumeLog<T> {
  readonly #budget: MemoryBudget;
  readonly #ackInterval: number;
  readonly #ackEvery: number;
  readonly #acknowledge?: (received: number) => void;
  readonly #clock: Clock;
  /** Kept messages, oldest first, from `#head` on. */
  #kept: KeptMessage<T>[] = [];
  #head = 0;
  #bytes = 0;
  #sent = 0;
  #acknowledged = 0;
  #received = 0;
  /** The count this side last told the other. */
  #told = 0;
  #timer?: unknown;
  #failed?: Error;
  #closed = false;

  /**
   * @param options The budget, the acknowledgement's timing and sender, the clock.
   * @throws {TypeError} If `budget` is not a `MemoryBudget`.
   * @throws {RangeError} If `ackInterval` or `ackEvery` is not a positive integer.
   */
  constructor(options: ResumeLogOptions = {}) {
    const budget = options.budget;
    if (budget !== undefined && !(budget instanceof MemoryBudget)) {
      throw new TypeError(
        "Cannot create resume log as 'budget' is not a MemoryBudget: pass new MemoryBudget(name, bytes), or leave it out for the default",
      );
    }
    for (
      const [name, value] of [
        ["ackInterval", options.ackInterval ?? RESUME_ACK_INTERVAL],
        ["ackEvery", options.ackEvery ?? RESUME_ACK_EVERY],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Cannot create resume log as '${name}' must be a positive integer: received ${value}`,
        );
      }
    }
    this.#budget = budget ??
      new MemoryBudget("maxUnacknowledgedBytesPerSession", DEFAULT_MAX_UNACKNOWLEDGED_BYTES);
    this.#ackInterval = options.ackInterval ?? RESUME_ACK_INTERVAL;
    this.#ackEvery = options.ackEvery ?? RESUME_ACK_EVERY;
    this.#acknowledge = options.acknowledge;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
  }

  /** How many messages this side sent (the number of the last). */
  get sent(): number {
    return this.#sent;
  }

  /** How many messages of the session this side received, in order. */
  get received(): number {
    return this.#received;
  }

  /** How many of this side's messages the other side acknowledged. */
  get acknowledged(): number {
    return this.#acknowledged;
  }

  /** The messages kept until acknowledged. */
  get kept(): number {
    return this.#kept.length - this.#head;
  }

  /** What the kept messages reserved of the budget. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Numbers a message this side sends and keeps it until acknowledged.
   *
   * @param message The message.
   * @param bytes Its size on the wire.
   * @returns Its number in the session.
   * @throws {WebRTCTransportError} If keeping it would go over the budget (or a
   * scope above it), which fails the log for good: the session must end; or if
   * the log failed or closed before.
   */
  keep(message: T, bytes: number): number {
    if (this.#failed) throw this.#failed;
    if (this.#closed) {
      throw new WebRTCTransportError("Cannot keep a message as the session's resume log is closed");
    }
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(
        `Cannot keep a message as its size must be a non-negative integer: received ${bytes}`,
      );
    }
    const seq = this.#sent + 1;
    const cost = bytes + KEPT_MESSAGE_OVERHEAD;
    const refused = this.#budget.reserve(cost);
    if (refused) {
      this.#failed = new WebRTCTransportError(
        `Cannot keep message ${seq} of the session (${bytes} bytes) for a resume as the messages the other peer has not acknowledged would exceed '${refused.name}' (${refused.limit} bytes, ${refused.used} held): the session ends; the other peer is not acknowledging what it reads, or sends too much too fast: raise '${refused.name}' or send smaller messages`,
      );
      throw this.#failed;
    }
    this.#sent = seq;
    this.#bytes += cost;
    this.#kept.push({ seq, message, bytes: cost });
    return seq;
  }

  /**
   * Receives the message numbered `seq`.
   *
   * @returns `true` to deliver it (the next number), `false` to drop it (delivered before).
   * @throws {WebRTCTransportError} If it skips a number: messages were lost, the session must end.
   */
  accept(seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw new WebRTCTransportError(
        `Cannot accept a message numbered ${seq}: numbers are positive integers; the other peer does not speak this protocol, the session must end`,
      );
    }
    if (seq <= this.#received) return false;
    if (seq > this.#received + 1) {
      throw new WebRTCTransportError(
        `Cannot accept message ${seq} of the session as message ${
          this.#received + 1
        } has not arrived: messages were lost, the session must end`,
      );
    }
    this.#received = seq;
    if (this.#received - this.#told >= this.#ackEvery) this.#sendAck();
    else if (this.#timer === undefined && this.#acknowledge && !this.#closed) {
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        this.#sendAck();
      }, this.#ackInterval);
    }
    return true;
  }

  /**
   * The other side acknowledged `received` messages: those are no longer
   * kept. An acknowledgement older than one already seen is ignored.
   *
   * @throws {WebRTCTransportError} If it acknowledges messages this side never sent.
   */
  release(received: number): void {
    if (!Number.isSafeInteger(received) || received < 0 || received > this.#sent) {
      throw new WebRTCTransportError(
        `Cannot take an acknowledgement of ${received} messages as this side sent ${this.#sent}: the other peer does not speak this protocol, the session must end`,
      );
    }
    if (received <= this.#acknowledged) return;
    this.#acknowledged = received;
    let freed = 0;
    while (this.#head < this.#kept.length && this.#kept[this.#head].seq <= received) {
      freed += this.#kept[this.#head].bytes;
      this.#head++;
    }
    this.#free(freed);
    if (this.#head === this.#kept.length) {
      this.#kept = [];
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#kept.length) {
      this.#kept = this.#kept.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The session is bound to a new channel, and the other side said it
   * received `received` messages: those are released, and the rest is what
   * to send again, in order, before anything new.
   *
   * @returns What to tell the other side (this side's count, which counts as
   * acknowledged), and the messages to send again.
   * @throws {WebRTCTransportError} As {@linkcode ResumeLog.release}, or if the log failed or closed.
   */
  rebind(received: number): { received: number; resend: KeptMessage<T>[] } {
    if (this.#failed) throw this.#failed;
    if (this.#closed) {
      throw new WebRTCTransportError("Cannot resume a session whose resume log is closed");
    }
    this.release(received);
    this.#stopTimer();
    this.#told = this.#received;
    return { received: this.#received, resend: this.#kept.slice(this.#head) };
  }

  /** Gives back the budget and stops the timer; the log keeps nothing more. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#stopTimer();
    this.#free(this.#bytes);
    this.#kept = [];
    this.#head = 0;
  }

  #free(bytes: number): void {
    if (bytes === 0) return;
    this.#bytes -= bytes;
    this.#budget.release(bytes);
  }

  #sendAck(): void {
    this.#stopTimer();
    if (this.#closed || this.#told === this.#received) return;
    this.#told = this.#received;
    this.#acknowledge?.(this.#received);
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
