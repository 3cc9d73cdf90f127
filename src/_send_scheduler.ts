/**
 * The sessions of one connection share its SCTP association, and
 * libdatachannel keeps one send queue per association, first in first out,
 * whatever the channel: a message handed to one channel leaves after every
 * byte handed to any channel before it. {@linkcode SendScheduler} bounds
 * those bytes. While the connection carries one session, that session's
 * large messages fill the association up to `HIGH_WATER_MARK` (4 MiB), as
 * a lone channel does; once it carries more, all large messages together keep
 * at most `SHARED_HIGH_WATER_MARK` buffered in it, and their senders take
 * turns, one chunk each. A message that fits one frame is never held back:
 * it goes at once, behind at most that much.
 *
 * `bufferedAmount` is not all that waits ahead of a small message: usrsctp
 * keeps up to 1 MiB more in its own send buffer, and the other peer may not
 * have read what arrived. So the scheduler also knows which channels were
 * active lately ({@linkcode SendScheduler.touch}): while another session sent
 * or received a message within `FAIR_ACTIVE_MS`, a transport whose peer
 * reports what it read keeps at most `FAIR_WINDOW` of its large messages
 * unreported (see `DataChannelTransport`).
 *
 * A transport finds its connection's scheduler through
 * {@linkcode useScheduler}, as it finds its clock.
 *
 * @module
 */
import {
  BUFFERED_LOW_CHECK_INTERVAL,
  FAIR_ACTIVE_MS,
  HIGH_WATER_MARK,
  LOW_WATER_MARK,
  SHARED_HIGH_WATER_MARK,
} from "./constants.ts";

/**
 * What the scheduler reads of a data channel: the part of
 * `DataChannelLike` it needs (declared here, so that the channel's module,
 * which uses the scheduler, and this one do not import each other).
 */
export interface BufferedChannel {
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** The connection's turns at its association's send buffer. */
export class SendScheduler {
  readonly #channels = new Set<BufferedChannel>();
  /** Senders waiting for their turn, in the order they asked. */
  #waiting: { channel: BufferedChannel; resolve: (granted: boolean) => void }[] = [];
  /** Whether a sender was given its turn and has not handed its chunk yet. */
  #granted = false;
  /** When each channel last sent or received a message. */
  readonly #lastActive = new Map<BufferedChannel, number>();
  readonly #now: () => number;

  /** @param now The clock activity is read on (the connection's). */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Notes that `channel` sent or received a message now. */
  touch(channel: BufferedChannel): void {
    this.#lastActive.set(channel, this.#now());
  }

  /**
   * Whether a channel other than `channel` sent or received a message within
   * the last `within` ms.
   */
  othersActive(channel: BufferedChannel, within: number = FAIR_ACTIVE_MS): boolean {
    const now = this.#now();
    for (const [other, at] of this.#lastActive) {
      if (other !== channel && now - at <= within) return true;
    }
    return false;
  }

  /** The channels whose buffers the association holds. */
  get channels(): number {
    return this.#channels.size;
  }

  /** Senders waiting for their turn now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** The most bytes large messages may keep buffered in the association now. */
  get limit(): number {
    return this.#channels.size <= 1 ? HIGH_WATER_MARK : SHARED_HIGH_WATER_MARK;
  }

  /** Bytes buffered in the association: every channel's. */
  get buffered(): number {
    let sum = 0;
    for (const channel of this.#channels) sum += bufferedOf(channel);
    return sum;
  }

  /** Counts `channel` in the association, from its open to its end. */
  add(channel: BufferedChannel): void {
    if (this.#channels.has(channel)) return;
    this.#channels.add(channel);
    channel.addEventListener("bufferedamountlow", this.#wake);
    this.#retune();
  }

  /**
   * `channel` ended: its buffer no longer counts, its sender stops waiting
   * (it finds the channel closed), and the others may go.
   */
  delete(channel: BufferedChannel): void {
    const mine = this.#waiting.filter((waiter) => waiter.channel === channel);
    this.#waiting = this.#waiting.filter((waiter) => waiter.channel !== channel);
    for (const waiter of mine) waiter.resolve(false);
    this.#lastActive.delete(channel);
    if (!this.#channels.delete(channel)) return;
    channel.removeEventListener("bufferedamountlow", this.#wake);
    this.#retune();
    this.#wake();
  }

  /**
   * Whether a sender of a large message must wait before it hands its next
   * chunk: the association holds more than the limit, or another sender
   * waits for its turn.
   */
  mustWait(): boolean {
    return this.#granted || this.#waiting.length > 0 || this.buffered > this.limit;
  }

  /**
   * Resolves with `true` when it is this sender's turn: the senders before
   * it have had theirs, and the association holds at most the limit. The
   * sender then hands one chunk and calls {@linkcode handed}. Resolves with
   * `false` once `channel` ended instead (its sender takes no turn).
   */
  turn(channel: BufferedChannel): Promise<boolean> {
    return new Promise((done) => {
      // `bufferedamountlow` wakes the queue; the timer guards against a missed event.
      const timer = setInterval(this.#wake, BUFFERED_LOW_CHECK_INTERVAL);
      const resolve = (granted: boolean) => {
        clearInterval(timer);
        done(granted);
      };
      this.#waiting.push({ channel, resolve });
      this.#wake();
    });
  }

  /**
   * A sender handed its chunk, in its turn or without waiting: the next one
   * may take its own if there is room.
   */
  handed(): void {
    this.#granted = false;
    this.#wake();
  }

  /**
   * Each channel's `bufferedamountlow` threshold: the limit shared out, so
   * that the association holds more than the limit only while some channel
   * is above its threshold, and that channel's event comes when it drains.
   */
  #retune(): void {
    const threshold = this.#channels.size <= 1
      ? LOW_WATER_MARK
      : Math.floor(SHARED_HIGH_WATER_MARK / this.#channels.size);
    for (const channel of this.#channels) {
      try {
        channel.bufferedAmountLowThreshold = threshold;
      } catch {
        // Closed natively, its `close` event not dispatched yet: it leaves the set then.
      }
    }
  }

  /** Gives the next waiting sender its turn, when there is room. */
  #wake = () => {
    if (this.#granted || this.#waiting.length === 0 || this.buffered > this.limit) return;
    this.#granted = true;
    this.#waiting.shift()!.resolve(true);
  };
}

/** What `channel` holds buffered; nothing once it is closed (a closed native channel throws). */
function bufferedOf(channel: BufferedChannel): number {
  if (channel.readyState !== "open") return 0;
  try {
    return channel.bufferedAmount;
  } catch {
    return 0;
  }
}

const schedulers = new WeakMap<object, SendScheduler>();

/** Makes `owner` (a transport) take turns through `scheduler`. */
export function useScheduler(owner: object, scheduler: SendScheduler): void {
  schedulers.set(owner, scheduler);
}

/** The scheduler `owner` takes turns through, if it shares an association. */
export function schedulerOf(owner: object): SendScheduler | undefined {
  return schedulers.get(owner);
}
