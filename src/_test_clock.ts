/**
 * A clock for tests that a test moves by hand: what reads the time through
 * `_clock.ts` sees only the time the test set, and its timers fire when the
 * test moves time past them, so a deadline is checked without waiting for it.
 *
 * @module
 */
import type { Clock } from "./_clock.ts";

/** A clock that stands still until `advance()` moves it. */
export class ManualClock implements Clock {
  #now: number;
  #next = 0;
  readonly #timers = new Map<number, { fn: () => void; at: number }>();

  /** @param start The time it shows first, in ms since the epoch. */
  constructor(start = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    this.#timers.set(++this.#next, { fn, at: this.#now + ms });
    return this.#next;
  }

  clearTimeout(id: unknown): void {
    this.#timers.delete(id as number);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time on by `ms`, firing each timer due by then in order, then lets what they start run. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    while (true) {
      const due = [...this.#timers].filter(([, t]) => t.at <= end)
        .sort((x, y) => x[1].at - y[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
    }
    this.#now = end;
    for (let i = 0; i < 10; i++) await Promise.resolve();
  }
}
