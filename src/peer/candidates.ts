/**
 * When ICE candidates cross the signalling channel: the candidate policy of a
 * peer connection, in one place.
 *
 * Two invariants, whatever the timing of the underlying stack:
 * - no local candidate is sent before this side's offer or answer was sent
 *   (a candidate ahead of its description is meaningless to the other side,
 *   and aiortc crashes on it);
 * - no remote candidate is applied before the remote description (they are
 *   queued, a bounded number, and applied in order once it is).
 *
 * Within those, the peer decides when local candidates may go
 * ({@linkcode Candidates.release}); see `negotiate.ts` for the order of a
 * negotiation and why.
 *
 * @module
 */

import { withResolvers } from "../_async.ts";
import { MAX_QUEUED_CANDIDATES } from "../constants.ts";
import type { IceCandidateInit } from "./types.ts";

export { MAX_QUEUED_CANDIDATES };

/** How a {@linkcode Candidates} sends a local candidate and applies a remote one. */
export interface CandidateIo {
  send(candidate: IceCandidateInit): void;
  apply(candidate: IceCandidateInit): Promise<void>;
}

/** The candidate policy of one peer connection. */
export class Candidates {
  readonly #io: CandidateIo;
  #described = false;
  #released = false;
  #held: IceCandidateInit[] = [];
  /** Remote candidates waiting for the remote description; `undefined` once it is applied. */
  #queued?: IceCandidateInit[] = [];
  #applying: Promise<void> = Promise.resolve();
  readonly #firstApplied = withResolvers<void>();
  #closed = false;

  constructor(io: CandidateIo) {
    this.#io = io;
  }

  /** Whether local candidates go out as they come. */
  get flowing(): boolean {
    return this.#described && this.#released && !this.#closed;
  }

  /** A local candidate was gathered: sent now if the policy allows, else held. */
  local(candidate: IceCandidateInit): void {
    if (this.#closed) return;
    if (this.flowing) this.#io.send(candidate);
    else this.#held.push(candidate);
  }

  /**
   * The local candidates gathered and not yet sent, taken out to ride in this
   * side's description instead (see `withCandidates`); none once it was sent.
   */
  takeHeld(): IceCandidateInit[] {
    if (this.#described || this.#closed) return [];
    const held = this.#held;
    this.#held = [];
    return held;
  }

  /** This side's offer or answer was handed to signalling: candidates may follow it. */
  descriptionSent(): void {
    this.#described = true;
    this.#flush();
  }

  /** The policy lets local candidates go (they still wait for the description). */
  release(): void {
    this.#released = true;
    this.#flush();
  }

  /**
   * A remote candidate arrived: applied in order once the remote description
   * is, queued before. Resolves once it is applied (or queued).
   *
   * @throws {RangeError} If {@linkcode MAX_QUEUED_CANDIDATES} are already queued.
   */
  remote(candidate: IceCandidateInit): Promise<void> {
    if (this.#queued) {
      if (this.#queued.length >= MAX_QUEUED_CANDIDATES) {
        throw new RangeError(
          `Refused an ICE candidate as ${MAX_QUEUED_CANDIDATES} are already waiting for the remote description: send the offer or answer first`,
        );
      }
      this.#queued.push(candidate);
      return Promise.resolve();
    }
    return this.#apply([candidate]);
  }

  /**
   * The remote description is applied: the candidates it held (`inline`,
   * gathered first) and then the queued ones are applied now, in order.
   * Resolves with how many there were.
   */
  async remoteDescriptionApplied(inline: IceCandidateInit[] = []): Promise<number> {
    const all = [...inline, ...this.#queued ?? []];
    this.#queued = undefined;
    await this.#apply(all);
    return all.length;
  }

  /** Resolves once a remote candidate was applied (not merely queued). */
  get firstApplied(): Promise<void> {
    return this.#firstApplied.promise;
  }

  /** Stops sending and applying; held candidates are dropped. */
  close(): void {
    this.#closed = true;
    this.#held = [];
  }

  #apply(candidates: IceCandidateInit[]): Promise<void> {
    const applied = this.#applying.then(async () => {
      for (const candidate of candidates) {
        if (this.#closed) return;
        await this.#io.apply(candidate);
        this.#firstApplied.resolve();
      }
    });
    this.#applying = applied.catch(() => {});
    return applied;
  }

  #flush(): void {
    if (!this.flowing) return;
    const held = this.#held;
    this.#held = [];
    for (const candidate of held) this.#io.send(candidate);
  }
}
