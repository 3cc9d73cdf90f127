/**
 * The clock a transport's deadlines read: the system's, unless a test gave
 * one of its own to a transport before starting it, so that a deadline is
 * checked by moving time on rather than by waiting for it.
 *
 * @module
 */

/** What a deadline needs of a clock. */
export interface Clock {
  /** Milliseconds since some fixed moment. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** The system's clock. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

const clocks = new WeakMap<object, Clock>();

/** Gives `owner` a clock of its own, in place of the system's. */
export function useClock(owner: object, clock: Clock): void {
  clocks.set(owner, clock);
}

/** The clock `owner` reads. */
export function clockOf(owner: object): Clock {
  return clocks.get(owner) ?? SYSTEM_CLOCK;
}
