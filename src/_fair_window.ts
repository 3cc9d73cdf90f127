/**
 * The window of unread bytes a session's large messages keep while another
 * session of the connection is active, measured from the path: a sender
 * records when each chunk's last byte was handed to the channel, and each
 * report of what the other peer read gives a round trip for the bytes it
 * covers and the rate they were read at. The window is
 * `FAIR_WINDOW_GAIN` × the highest recent rate × the least recent round trip
 * (the path's own bytes in flight, and a little more), between `FAIR_WINDOW`
 * and `FAIR_WINDOW_MAX`: it grows while the round trip stays near its base
 * and stops once bytes queue (the round trip rises, the rate does not). On a
 * path whose base round trip is under `FAIR_PATH_RTT_MS` it stays
 * `FAIR_WINDOW`.
 *
 * @module
 */
import {
  FAIR_PATH_RTT_MS,
  FAIR_RATE_SAMPLES,
  FAIR_REPORT_WAIT_MAX_MS,
  FAIR_REPORT_WAIT_MS,
  FAIR_REPORT_WAIT_RTTS,
  FAIR_RTT_INTERVAL_MS,
  FAIR_SEND_RECORDS,
  FAIR_WINDOW,
  FAIR_WINDOW_GAIN,
  FAIR_WINDOW_MAX,
} from "./constants.ts";

/**
 * One sender's counts of chunk bytes handed and reported read, and the
 * window they give.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FairWindow } from "./_fair_window.ts";
 * import { FAIR_WINDOW } from "./constants.ts";
 *
 * const window = new FairWindow();
 * window.handed(65_536, 0, true);
 * window.reported(65_536, 50);
 * assert.equal(window.read, 65_536);
 * assert.equal(window.rtt, 50);
 * assert.ok(window.window >= FAIR_WINDOW);
 * ```
 */
export class FairWindow {
  /** Ring of the chunks handed and not yet reported: end offset, time, bytes read then. */
  readonly #ends = new Float64Array(FAIR_SEND_RECORDS);
  readonly #times = new Float64Array(FAIR_SEND_RECORDS);
  readonly #readThen = new Float64Array(FAIR_SEND_RECORDS);
  /** The measurement each chunk belongs to, or -1 for one handed while not held. */
  readonly #epochs = new Float64Array(FAIR_SEND_RECORDS);
  #epoch = 0;
  #first = 0;
  #count = 0;
  #sent = 0;
  #read = 0;
  #minRtt = Infinity;
  #minRttAt = 0;
  readonly #rates: number[] = [];
  #window = FAIR_WINDOW;

  /** Bytes of chunk frames handed to the channel. */
  get sent(): number {
    return this.#sent;
  }

  /** Bytes of chunk frames the other peer reported read (never more than were sent). */
  get read(): number {
    return this.#read;
  }

  /** The most bytes to keep unread now. */
  get window(): number {
    return this.#window;
  }

  /** The path's base round trip as measured (ms), or `Infinity` before any sample. */
  get rtt(): number {
    return this.#minRtt;
  }

  /** Chunks recorded and not yet reported (at most `FAIR_SEND_RECORDS`). */
  get records(): number {
    return this.#count;
  }

  /** How long to wait for a report before handing one more chunk anyway (ms). */
  get reportWait(): number {
    if (!Number.isFinite(this.#minRtt)) return FAIR_REPORT_WAIT_MS;
    return Math.min(
      Math.max(FAIR_REPORT_WAIT_MS, FAIR_REPORT_WAIT_RTTS * this.#minRtt),
      FAIR_REPORT_WAIT_MAX_MS,
    );
  }

  /**
   * Counts a chunk of `bytes` handed to the channel at `now`, `held` by the
   * window or not. A chunk handed while not held gives no sample: it may
   * wait behind a queue the window did not bound, which is no measure of
   * the path.
   */
  handed(bytes: number, now: number, held: boolean): void {
    this.#sent += bytes;
    if (this.#count === FAIR_SEND_RECORDS) {
      // More in flight than the ring holds: the oldest gives no sample.
      this.#first = (this.#first + 1) % FAIR_SEND_RECORDS;
      this.#count--;
    }
    const at = (this.#first + this.#count) % FAIR_SEND_RECORDS;
    this.#ends[at] = this.#sent;
    this.#times[at] = now;
    this.#readThen[at] = this.#read;
    this.#epochs[at] = held ? this.#epoch : -1;
    this.#count++;
  }

  /**
   * Takes the other peer's report that it read `bytes` of chunk frames, at
   * `now`. A report of more than was sent counts as all that was sent; one
   * that does not move the count (late, repeated) changes nothing.
   *
   * @returns Whether the count moved.
   */
  reported(bytes: number, now: number): boolean {
    const read = Math.min(bytes, this.#sent);
    if (!(read > this.#read)) return false;
    // The newest chunk the report covers whole; those before it are covered too.
    let covered = -1;
    while (this.#count > 0 && this.#ends[this.#first] <= read) {
      covered = this.#first;
      this.#first = (this.#first + 1) % FAIR_SEND_RECORDS;
      this.#count--;
    }
    this.#read = read;
    if (Number.isFinite(this.#minRtt) && now - this.#minRttAt > FAIR_RTT_INTERVAL_MS) {
      // The base round trip is old: start again from FAIR_WINDOW, so that the
      // queue the window kept drains, and measure the path anew from the
      // chunks handed from now on (those before waited behind that queue).
      this.#epoch++;
      this.#minRtt = Infinity;
      this.#rates.length = 0;
      this.#window = FAIR_WINDOW;
      return true;
    }
    if (covered < 0 || this.#epochs[covered] !== this.#epoch) return true;
    const rtt = now - this.#times[covered];
    // A clock that went back gives no sample.
    if (!(rtt >= 0)) return true;
    if (rtt <= this.#minRtt) {
      this.#minRtt = rtt;
      this.#minRttAt = now;
    }
    if (rtt > 0) {
      this.#rates.push((this.#ends[covered] - this.#readThen[covered]) / rtt);
      if (this.#rates.length > FAIR_RATE_SAMPLES) this.#rates.shift();
    }
    this.#window = this.#measured();
    return true;
  }

  #measured(): number {
    if (this.#minRtt < FAIR_PATH_RTT_MS || this.#rates.length === 0) return FAIR_WINDOW;
    const inFlight = Math.max(...this.#rates) * this.#minRtt;
    return Math.min(
      Math.max(FAIR_WINDOW, Math.round(FAIR_WINDOW_GAIN * inFlight)),
      FAIR_WINDOW_MAX,
    );
  }
}
