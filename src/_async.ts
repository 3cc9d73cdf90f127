/**
 * The module's async toolkit: waiting with a bound, waiting for an event, a
 * delay, and a close that runs once. Every wait here leaves no timer and no
 * listener behind once it has settled, so nothing it starts can hold a process
 * open or fire after the work it guarded is done.
 *
 * @module
 */

/**
 * Settles as `promise` does, or rejects with `signal.reason` as soon as
 * `signal` aborts, whichever comes first.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/**
 * Settles as `promise` does, or rejects with a `TimeoutError` `DOMException`
 * after `ms` milliseconds (or with `signal.reason` if `signal` aborts first).
 *
 * The timer is an ordinary one, cleared once `promise` settles: the timer of
 * `AbortSignal.timeout` does not keep Deno's event loop alive, so a deadline
 * over a promise that no other work keeps pending would end the process
 * ("promise never resolved") instead of timing out.
 */
export function deadline<T>(
  promise: Promise<T>,
  ms: number,
  options: { signal?: AbortSignal } = {},
): Promise<T> {
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new DOMException("Signal timed out.", "TimeoutError")),
    ms,
  );
  const signal = options.signal
    ? AbortSignal.any([timeout.signal, options.signal])
    : timeout.signal;
  return abortable(promise, signal).finally(() => clearTimeout(timer));
}

/**
 * Waits for `promise` to settle, at most `ms` milliseconds; never rejects.
 * For bounded waits during shutdown, where the outcome does not matter.
 */
export async function settle(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!promise) return;
  await deadline(promise, ms).catch(() => {});
}

/**
 * Resolves after `ms` milliseconds, or rejects with `signal.reason` as soon as
 * `signal` aborts (and then clears its timer).
 */
export function delay(ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** Something that dispatches named events (an `EventTarget` or its look-alikes). */
export interface EventSource {
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

/**
 * Resolves with the first `type` event for which `accept` holds (every event
 * if it is not given), or rejects with `signal.reason` when `signal` aborts.
 */
export function nextEvent(
  target: EventSource,
  type: string,
  options: { accept?: (event: Event) => boolean; signal?: AbortSignal } = {},
): Promise<Event> {
  const { accept, signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<Event>((resolve, reject) => {
    const listener = (event: Event) => {
      if (accept && !accept(event)) return;
      done();
      resolve(event);
    };
    const abort = () => {
      done();
      reject(signal?.reason);
    };
    const done = () => {
      target.removeEventListener(type, listener);
      signal?.removeEventListener("abort", abort);
    };
    target.addEventListener(type, listener);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Wraps an async close so that it runs once: every call returns the promise of
 * the first. The call is deferred by a microtask, so a callback fired while
 * closing that calls `close()` again gets the same promise rather than
 * re-entering.
 */
export function once(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= Promise.resolve().then(close));
}

/**
 * A timeout started when its time comes and always cleared: `signal` aborts
 * with a `TimeoutError` `DOMException` `ms` milliseconds after `start(ms)`,
 * unless `clear()` came first.
 */
export class Countdown {
  readonly #controller = new AbortController();
  #timer?: ReturnType<typeof setTimeout>;
  /** Aborts when the time is up. */
  readonly signal: AbortSignal = this.#controller.signal;

  /** Starts the countdown (once; later calls do nothing). */
  start(ms: number): void {
    this.#timer ??= setTimeout(
      () => this.#controller.abort(new DOMException("Signal timed out.", "TimeoutError")),
      ms,
    );
  }

  /** Stops the countdown for good. */
  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** A promise with its resolve and reject functions. */
export interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason?: unknown) => void;
}

/**
 * `Promise.withResolvers()`, which Node 20 lacks: a promise with the functions
 * that settle it.
 */
export function withResolvers<T>(): Resolvers<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/**
 * Resolves in a task of its own, once the event loop has run what was
 * waiting (I/O callbacks, timers). `setTimeout(0)` would do it too, but is
 * clamped to 4 ms when chained; `setImmediate` (Deno, Node) and a
 * `MessageChannel` (browsers) are not.
 */
export function yieldToEventLoop(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown })
    .setImmediate;
  if (immediate) return new Promise((resolve) => void immediate(resolve));
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
  });
}
