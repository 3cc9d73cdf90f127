/**
 * The negotiation of one peer connection, as two async functions read in
 * order: {@linkcode offer} for the side that dials, {@linkcode answer} for the
 * other. Every wait is bounded by one `AbortSignal`, which aborts with the
 * error to report: the connection failed, the peer said goodbye, signalling
 * closed, this side closed, or the connect timeout passed.
 *
 * The order, between two peers of this module: the offerer sends its
 * candidates in its offer (those gathered before it leaves) or right behind
 * it; the answerer applies them before it answers, checks them, and sends
 * its answer once that check succeeded (within `OFFER_CHECK_WAIT`; a browser,
 * whose ICE starts only with its answer, answers at once); the offerer,
 * which answered that check without knowing the answerer's credentials,
 * checks at once when the answer comes. The answerer's ICE connects first,
 * as the DTLS server's must. A retry (`RETRY_MARK`), or another stack's
 * offer, is answered first and its candidates applied after. See
 * docs/DESIGN.md for the measurements.
 *
 * @module
 */

import { abortable, nextEvent, settle } from "../_async.ts";
import type { Clock } from "../_clock.ts";
import {
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  LARGE_PACKETS_MARK,
  OFFER_CANDIDATE_WAIT,
  OFFER_CHECK_WAIT,
  OFFER_MARK,
  PATH_MARK,
  RETRY_MARK,
} from "../constants.ts";
import type { DataChannelLike } from "../data_channel_transport.ts";
import { ConnectError, WebRTCTransportError } from "../errors.ts";
import { isLibdatachannel } from "../runtime.ts";
import type { SignalingMessage } from "../signaling/signaling.ts";
import type { Candidates } from "./candidates.ts";
import {
  hasMark,
  markDescription,
  offerAsApplied,
  splitCandidates,
  withCandidates,
} from "./sdp.ts";
import type { ConnectStep, IceCandidateInit, PeerConnectionLike } from "./types.ts";

/** What a negotiation learns, kept by the peer for its diagnosis. */
export interface NegotiationState {
  /** Whether the other peer's offer or answer says it is of this module. */
  ours: boolean;
  /** Whether the answer says the answerer's check succeeded before it answered. */
  pathFound: boolean;
  /** Whether the other peer's description was applied. */
  remoteSet: boolean;
  /** When the answer was sent (answerer) or applied (offerer). */
  negotiatedAt?: number;
  /** Whether ICE connected (kept by the peer). */
  readonly iceConnected: boolean;
}

/** What the peer gives its negotiation. */
export interface Negotiation {
  /** Whether this offer tries once more (see `RETRY_MARK`). */
  readonly retry: boolean;
  /** Whether the answerer's connect timeout starts at the other peer's first message. */
  readonly waitForPeer: boolean;
  /**
   * Resolves once signalling started: the offerer makes its connection and
   * its offer before, and sends the offer (and starts its connect timeout)
   * after.
   */
  readonly signalingStarted: Promise<void>;
  /** Whether the connection is node-datachannel's (it takes large packets). */
  readonly native: boolean;
  readonly candidates: Candidates;
  readonly state: NegotiationState;
  readonly clock: Clock;
  /** The other peer's offer or answer, once it came (checked). */
  readonly remoteDescription: Promise<{ type: string; sdp: string }>;
  /** Resolves at the other peer's first signalling message. */
  readonly heard: Promise<void>;
  /** The `mcp` channel the offerer opens, as the answerer receives it. */
  readonly primary: Promise<DataChannelLike>;
  /** Resolves once ICE connected. */
  readonly iceUp: Promise<void>;
  /** Makes the peer connection, once it is known whether the other peer takes large packets. */
  connection(peerTakesLargePackets: boolean): PeerConnectionLike;
  /** Takes the negotiation's `mcp` channel (its owner hears of it before it opens). */
  adopt(channel: DataChannelLike): DataChannelLike;
  /** Hands a message to signalling after those before it; resolves once it is delivered. */
  send(message: SignalingMessage): Promise<void>;
  /** Reports a step of the connect. */
  step(step: ConnectStep): void;
  /** Starts the connect timeout (once). */
  armTimeout(): void;
}

/** The dialling side: offer, candidates, answer; resolves with the `mcp` channel. */
export async function offer(n: Negotiation, signal: AbortSignal): Promise<DataChannelLike> {
  const wait = <T>(promise: Promise<T>) => abortable(promise, signal);
  const pc = n.connection(false);
  const channel = n.adopt(
    pc.createDataChannel(CHANNEL_LABEL, {
      ordered: true,
      protocol: CHANNEL_PROTOCOL,
    }) as DataChannelLike,
  );
  const description = await wait(pc.createOffer());
  await wait(pc.setLocalDescription(description));
  let sdp = description.sdp ?? pc.localDescription?.sdp ?? "";
  if (n.retry) {
    // Held, as those trickled, until the answer is applied (see below).
    const inline = splitCandidates(sdp);
    sdp = inline.sdp;
    for (const candidate of inline.candidates) n.candidates.local(candidate);
  }
  // Made while signalling started (a room's join, say); sent once it has.
  await wait(n.signalingStarted);
  // What was gathered meanwhile rides in the offer: one message fewer to seal
  // and relay, and the answerer can check us as soon as it has the offer.
  if (!n.retry) sdp = withCandidates(sdp, n.candidates.takeHeld());
  n.armTimeout();
  const offered = n.send({
    type: "offer",
    sdp: markDescription(sdp, [
      ...(n.native ? [LARGE_PACKETS_MARK] : []),
      ...(n.retry ? [RETRY_MARK] : []),
    ]),
  });
  // Our later candidates follow the offer at once (handed over after it, so they
  // arrive after it): an answerer of this module applies them before it
  // answers. On a retry they wait for the answer to be applied: the answerer
  // cannot check us before, so our ICE cannot connect (and our DTLS check the
  // other certificate) while libdatachannel has handed the answer to ICE but
  // not recorded its fingerprint (see RETRY_MARK).
  n.candidates.descriptionSent();
  if (!n.retry) n.candidates.release();
  await wait(offered);
  n.step("offer");
  const answer = await wait(n.remoteDescription);
  n.state.ours = hasMark(answer.sdp, OFFER_MARK);
  n.state.pathFound = hasMark(answer.sdp, PATH_MARK);
  // An answer's candidates are applied after it, as trickled ones: given
  // inside it, libdatachannel adds them within `setRemoteDescription`, which
  // then throws if the connection failed meanwhile (the DTLS race that
  // `RETRY_MARK` cures), and the refused answer would not be tried again.
  const inline = splitCandidates(answer.sdp);
  await apply(pc, { type: "answer", sdp: inline.sdp }, wait);
  n.state.remoteSet = true;
  n.state.negotiatedAt = n.clock.now();
  if (n.retry) n.candidates.release();
  n.step("answer");
  await wait(n.candidates.remoteDescriptionApplied(inline.candidates));
  return await opened(channel, wait);
}

/** The answering side: offer, (candidates,) answer; resolves with the `mcp` channel. */
export async function answer(n: Negotiation, signal: AbortSignal): Promise<DataChannelLike> {
  const wait = <T>(promise: Promise<T>) => abortable(promise, signal);
  if (n.waitForPeer) await wait(n.heard);
  n.armTimeout();
  const offer = await wait(n.remoteDescription);
  n.step("offer");
  const pc = n.connection(hasMark(offer.sdp, LARGE_PACKETS_MARK));
  const inline = splitCandidates(offer.sdp);
  const ours = hasMark(offer.sdp, OFFER_MARK);
  // This module's order (we are the DTLS server), unless the offer tries once
  // more (see RETRY_MARK): then another stack's.
  const swapped = offer.sdp !== offerAsApplied(offer.sdp);
  await apply(pc, { type: "offer", sdp: offerAsApplied(inline.sdp) }, wait);
  n.state.remoteSet = true;
  // An offer of this module (not a retry): its candidates are applied before
  // we answer, and the answer waits (within bounds) until our first check of
  // them succeeded. Knowing no credentials of ours yet, the offerer answers
  // that check without scheduling a check of its own, which libjuice paces
  // 50 ms out, and checks us at once when the answer comes.
  // Another stack's offer, or a retry, is answered first and its candidates
  // applied after: our checks must not reach an offerer that has not our
  // answer yet (we are its DTLS client, and it could not check our fingerprint).
  // Only node-datachannel can check first: it makes its answer, and starts
  // ICE, as the offer is applied. A standard stack (a browser) starts ICE at
  // setLocalDescription: it is given the candidates before it answers, so that
  // its checks start with the answer, and the answer waits for nothing.
  const checkFirst = swapped && isLibdatachannel(pc);
  if (checkFirst) await applyOfferCandidates(n, inline.candidates, wait);
  else if (swapped) await applyCandidates(n, inline.candidates, wait);
  const description = await wait(pc.createAnswer());
  await wait(pc.setLocalDescription(description));
  // Marked too: the offerer then knows its answerer follows this order.
  let sdp = description.sdp ?? pc.localDescription?.sdp ?? "";
  if (ours) sdp = markDescription(sdp, n.state.iceConnected ? [PATH_MARK] : []);
  // Gathered while we checked the offerer: they ride in the answer.
  sdp = withCandidates(sdp, n.candidates.takeHeld());
  const answered = n.send({ type: "answer", sdp });
  n.state.ours = ours;
  n.state.negotiatedAt = n.clock.now();
  // Handed over behind the answer: a carrier that batches sends them together.
  n.candidates.descriptionSent();
  n.candidates.release();
  await wait(answered);
  n.step("answer");
  if (!swapped) await applyOfferCandidates(n, inline.candidates, wait);
  return await opened(await wait(n.primary), wait);
}

type Wait = <T>(promise: Promise<T>) => Promise<T>;

/** Applies the other peer's description; a refusal is a {@linkcode ConnectError}. */
async function apply(
  pc: PeerConnectionLike,
  description: { type: string; sdp: string },
  wait: Wait,
): Promise<void> {
  try {
    await wait(pc.setRemoteDescription(description));
  } catch (error) {
    throw error instanceof WebRTCTransportError ? error : new ConnectError(
      "signaling",
      `Cannot connect as the ${description.type} from the other peer was refused: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  }
}

/**
 * Applies the candidates that waited for the offer and those it held (when
 * there were none, waits for the first to come, at most
 * `OFFER_CANDIDATE_WAIT`), then waits for our ICE to connect, at most
 * `OFFER_CHECK_WAIT`.
 */
async function applyOfferCandidates(
  n: Negotiation,
  inline: IceCandidateInit[],
  wait: Wait,
): Promise<void> {
  if (await applyCandidates(n, inline, wait) === 0) {
    await wait(settle(n.candidates.firstApplied, OFFER_CANDIDATE_WAIT));
  }
  // Our checks of those candidates go first; the answer waits (a little) for
  // the first to succeed, so that it cannot overtake them.
  await wait(settle(n.iceUp, OFFER_CHECK_WAIT));
}

/**
 * Applies the candidates that waited for the offer and those it held;
 * resolves with how many.
 */
async function applyCandidates(
  n: Negotiation,
  inline: IceCandidateInit[],
  wait: Wait,
): Promise<number> {
  return await wait(n.candidates.remoteDescriptionApplied(inline));
}

/** The channel, once open. */
async function opened(channel: DataChannelLike, wait: Wait): Promise<DataChannelLike> {
  if (channel.readyState !== "open") await wait(nextEvent(channel, "open"));
  return channel;
}
