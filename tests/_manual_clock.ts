/** A clock for tests that moves only when told to. */
import type { Clock } from "../src/_clock.ts";

/** A clock that moves only when told to, firing the timers that fall due, in order. */
export class ManualClock implements Clock {
  #now = 0;
  #next = 0;
  readonly #timers = new Map<number, { fn: () => void; at: number }>();

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

  /** Moves time on by `ms`, firing each timer due by then in order, then lets what they start run. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    while (true) {
      const due = [...this.#timers].filter(([, timer]) => timer.at <= end)
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
