/**
 * Watches the network path of a connection that is up, for `onpathchange`.
 *
 * ICE may move to another candidate pair after the channel opened: libjuice
 * selects the first pair whose check succeeds (often through TURN, whose
 * allocation answers first) and moves to a better one when its check
 * succeeds, until the pair is nominated. Neither libdatachannel nor
 * node-datachannel reports that move (node-datachannel's
 * `selectedcandidatepairchange` never fires), so the path is read every
 * {@linkcode PATH_CHECK_INTERVAL} while a handler is set, and the handler is
 * called when it differs from the last path it was given. One read at a time;
 * the reading stops with `stop()`.
 *
 * @module
 */
import { PATH_CHECK_INTERVAL } from "./constants.ts";
import { WebRTCTransportError } from "./errors.ts";
import type { ConnectionPath } from "./peer.ts";

/** The timer functions a watch uses (tests pass their own clock). */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

const TIMERS: Timers = {
  setTimeout(fn, ms) {
    const id = setTimeout(fn, ms);
    // Reading the path must not keep a process alive by itself.
    const deno = (globalThis as { Deno?: { unrefTimer(id: number): void } }).Deno;
    if (deno) deno.unrefTimer(id as unknown as number);
    else (id as { unref?: () => void }).unref?.();
    return id;
  },
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

let running = 0;

/** Reads a connection's path every `interval` ms and reports each new one. */
export class PathWatch {
  /** How many watches are started and not stopped, in this process. */
  static get running(): number {
    return running;
  }

  readonly #read: () => Promise<ConnectionPath | undefined>;
  readonly #handler: () => ((path: ConnectionPath) => void) | undefined;
  readonly #onerror: (error: Error) => void;
  readonly #interval: number;
  readonly #timers: Timers;
  #timer?: unknown;
  #last?: string;
  #started = false;
  #stopped = false;

  /**
   * @param read Reads the path in use now.
   * @param handler The handler to call with a new path, read at each check (unset: no read).
   * @param onerror Where an error the handler throws goes.
   * @param interval Milliseconds between reads.
   * @param timers The clock.
   */
  constructor(
    read: () => Promise<ConnectionPath | undefined>,
    handler: () => ((path: ConnectionPath) => void) | undefined,
    onerror: (error: Error) => void,
    interval: number = PATH_CHECK_INTERVAL,
    timers: Timers = TIMERS,
  ) {
    this.#read = read;
    this.#handler = handler;
    this.#onerror = onerror;
    this.#interval = interval;
    this.#timers = timers;
  }

  /** Reads the path now, then every interval until `stop()`. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    running++;
    void this.#check();
  }

  /** Stops reading; no handler call follows. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#started) running--;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #check(): Promise<void> {
    if (this.#handler()) {
      const path = await this.#read().catch(() => undefined);
      const handler = this.#handler();
      if (this.#stopped) return;
      const key = path && JSON.stringify([
        path.localCandidateType,
        path.remoteCandidateType,
        path.remoteAddress,
      ]);
      if (path && handler && key !== this.#last) {
        this.#last = key;
        try {
          handler(path);
        } catch (error) {
          this.#onerror(error instanceof Error ? error : new WebRTCTransportError(String(error)));
        }
      }
    }
    if (this.#stopped) return;
    this.#timer = this.#timers.setTimeout(() => void this.#check(), this.#interval);
  }
}
