/**
 * The retry policy of a direct connection, in one place.
 *
 * libdatachannel 0.24 hands an applied answer to ICE before it records the
 * answer's fingerprint: when the answerer's checks came first (the order this
 * module uses, see `negotiate.ts`), the offerer's ICE can connect and its DTLS
 * check the other certificate in that gap, and refuse it, if its thread is
 * held up there (measured: about 1 connect in 400 with two busy processes on
 * two cores). So between two peers of this module a connect that fails at ICE
 * or DTLS within {@linkcode DTLS_REFUSAL_WINDOW} of the exchange is tried once
 * more ({@linkcode retryable}, decided alike on both sides from what each
 * observed), with a new offer that carries `RETRY_MARK` (its answerer keeps
 * the standard DTLS roles and answers first; the offerer's candidates wait for
 * the answer: {@linkcode attemptSettings}). The side that retries says no
 * goodbye; its new offer tells the answerer, which abandons its own attempt
 * when that offer comes before its attempt failed. Each attempt sees only its
 * own signalling ({@linkcode Attempts}). {@linkcode runAttempts} runs them.
 *
 * @module
 */

import { DTLS_REFUSAL_WINDOW, MAX_ATTEMPT_QUEUE } from "../constants.ts";
import { withResolvers } from "../_async.ts";
import { ConnectError } from "../errors.ts";
import type { RelayDemux } from "../relay/demux.ts";
import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import type { Observed } from "./diagnosis.ts";
import type { Connected } from "./types.ts";

/** How many direct attempts a connect makes at most: the first, and one retry. */
export const DIRECT_ATTEMPTS = 2;

/** The settings of direct attempt `n` (counted from 1). */
export function attemptSettings(n: number): { mayRetry: boolean; retry: boolean } {
  return { mayRetry: n < DIRECT_ATTEMPTS, retry: n > 1 };
}

/**
 * Whether a failed connect may be tried once more with a new offer: this
 * attempt may retry, both peers are of this module (each side knows it from
 * the other's mark, so both decide alike), the offer and answer were
 * exchanged, and the connection itself failed (not a timeout, not a goodbye)
 * at the ICE or DTLS stage within {@linkcode DTLS_REFUSAL_WINDOW} of that.
 */
export function retryable(
  observed: Pick<Observed, "ours" | "broke" | "negotiatedAt" | "now">,
  mayRetry: boolean,
  error: unknown,
): boolean {
  return mayRetry && observed.ours && observed.broke &&
    observed.negotiatedAt !== undefined &&
    error instanceof ConnectError &&
    (error.stage === "ice" || error.stage === "dtls") &&
    observed.now - observed.negotiatedAt < DTLS_REFUSAL_WINDOW;
}

/** What {@linkcode runAttempts} needs of a direct attempt's peer. */
export interface AttemptPeer {
  connect(): Promise<Connected>;
  /** Whether `error`, its connect's failure, is one both sides retry (see {@linkcode retryable}). */
  retryable(error: unknown): boolean;
  /** Whether the other peer's offer or answer says it is of this module. */
  readonly ours: boolean;
  close(reason?: string): Promise<void>;
  onclose?: (error?: Error) => void;
  ondatachannel?: (channel: never) => void;
}

/** How an attempt ended: connected, failed, or interrupted with a reason. */
export type AttemptOutcome = { connected: Connected } | { error: Error } | { reason: string };

/** What {@linkcode runAttempts} runs. */
export interface AttemptRun<P extends AttemptPeer> {
  /** Whether this side makes the offer. */
  readonly initiator: boolean;
  /** The signalling of the attempts. */
  readonly attempts: Attempts;
  /** Makes attempt `n`'s peer over its signalling (`attemptSettings(n)` tells how). */
  start(n: number, signaling: AttemptView): P;
  /** Resolves with a reason to stop trying directly (the relay's triggers). */
  readonly interrupt: Promise<string>;
  /** Called as soon as an attempt's race is over, before anything else. */
  raced(): void;
  /** Whether this side closed. */
  closed(): boolean;
  /** Called with the failure of an attempt that is tried again. */
  onretry(error: ConnectError): void;
}

/**
 * Runs direct attempts until one connects, fails for good, or `interrupt`
 * resolves: at most {@linkcode DIRECT_ATTEMPTS}, the second only after a
 * {@linkcode retryable} failure or, on the answering side, a new offer from a
 * peer of this module before the first attempt failed (the offerer saw the
 * failure first). Resolves with the last attempt's peer and how it ended.
 */
export async function runAttempts<P extends AttemptPeer>(
  run: AttemptRun<P>,
): Promise<{ peer: P; outcome: AttemptOutcome }> {
  for (let n = 1;; n++) {
    const signaling = run.attempts.view(n);
    const peer = run.start(n, signaling);
    const connecting = peer.connect();
    connecting.catch(() => {});
    const superseded: Promise<"superseded"> =
      !run.initiator && n === 1 && attemptSettings(n).mayRetry
        ? run.attempts.retried.then(() => peer.ours ? "superseded" : never())
        : never();
    const raced = await Promise.race([
      connecting.then((connected) => ({ connected }), (error: Error) => ({ error })),
      run.interrupt.then((reason) => ({ reason })),
      superseded,
    ]);
    run.raced();
    if (raced === "superseded") {
      signaling.end();
      peer.onclose = undefined;
      peer.ondatachannel = undefined;
      await peer.close("tried again with a new offer");
      continue;
    }
    if (!("error" in raced) || run.closed() || !peer.retryable(raced.error)) {
      return { peer, outcome: raced };
    }
    // The other side saw the same failure and waits for a new offer.
    signaling.end();
    peer.onclose = undefined;
    peer.ondatachannel = undefined;
    run.onretry(raced.error as ConnectError);
  }
}

/** A promise that never settles. */
function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

/**
 * The signalling of the direct attempts. A second attempt starts with a new
 * offer, so a message belongs to the attempt of the last offer (answering
 * side) or answer (offering side) that came before it: an attempt sees its
 * own messages only (those of one not started yet are kept for it), and an
 * ended attempt's view sends nothing, not even its goodbye.
 */
export class Attempts {
  readonly #demux: RelayDemux;
  readonly #boundary: "offer" | "answer";
  #boundaries = 0;
  readonly #views = new Map<number, AttemptView>();
  readonly #queued = new Map<number, SignalingMessage[]>();
  #latest = 0;
  readonly #next = withResolvers<void>();

  /**
   * Resolves when a second offer (answering side) or answer comes: on the
   * answering side, the offerer gave up its first attempt and tries again.
   */
  get retried(): Promise<void> {
    return this.#next.promise;
  }

  constructor(demux: RelayDemux, initiator: boolean) {
    this.#demux = demux;
    // The offering side's attempts begin with its offer, so it counts answers.
    this.#boundary = initiator ? "answer" : "offer";
    demux.onmessage = (message) => {
      // Only a description counts (junk is refused by the attempt it reaches).
      if (message.type === this.#boundary && typeof message.sdp === "string") {
        this.#boundaries++;
        if (this.#boundaries > 1) this.#next.resolve();
      }
      this.#deliver(Math.max(this.#boundaries, 1), message);
    };
    demux.onclose = () => this.#views.get(this.#latest)?.onclose?.();
    demux.onerror = (error) => this.#views.get(this.#latest)?.onerror?.(error);
  }

  /** The view of attempt `n` (counted from 1), made once. */
  view(n: number): AttemptView {
    let view = this.#views.get(n);
    if (!view) {
      for (const [old, earlier] of this.#views) {
        if (old < n) earlier.end();
      }
      view = new AttemptView(this.#demux, () => this.#flush(n));
      this.#views.set(n, view);
      this.#latest = n;
    }
    return view;
  }

  #deliver(n: number, message: SignalingMessage): void {
    const view = this.#views.get(n);
    if (view?.ended) return;
    if (view?.onmessage && view.started) return view.onmessage(message);
    if (n < this.#latest) return;
    const queue = this.#queued.get(n) ?? [];
    if (queue.length < MAX_ATTEMPT_QUEUE) queue.push(message);
    this.#queued.set(n, queue);
  }

  #flush(n: number): void {
    const queue = this.#queued.get(n) ?? [];
    this.#queued.delete(n);
    for (const message of queue) this.#deliver(n, message);
  }
}

/** One direct attempt's signalling (see {@linkcode Attempts}). */
export class AttemptView implements Signaling {
  readonly #demux: RelayDemux;
  readonly #started: () => void;
  #starting?: Promise<void>;
  started = false;
  ended = false;
  onmessage?: (message: SignalingMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;

  constructor(demux: RelayDemux, started: () => void) {
    this.#demux = demux;
    this.#started = started;
  }

  /** The STUN/TURN servers the signalling hands out, if any. */
  get iceServers(): unknown {
    return this.#demux.iceServers;
  }

  /** Whether the signalling is sealed end to end, as it says (for the diagnosis of a failure). */
  get authenticated(): boolean | undefined {
    return this.#demux.authenticated;
  }

  /** The signalling's own {@linkcode Signaling.meetingPoint}. */
  get meetingPoint(): string | undefined {
    return this.#demux.meetingPoint;
  }

  start(options?: { initiator: boolean }): Promise<void> {
    this.#starting ??= this.#demux.start(options).then(() => {
      this.started = true;
      this.#started();
    });
    return this.#starting;
  }

  send(message: SignalingMessage): Promise<void> {
    return this.ended ? Promise.resolve() : this.#demux.send(message);
  }

  /** The attempt is over: nothing more goes out or comes in. */
  end(): void {
    this.ended = true;
    this.onmessage = undefined;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
