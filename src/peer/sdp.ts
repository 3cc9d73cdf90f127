/**
 * The text of offers, answers and candidates: the marks this module adds to
 * its descriptions (see `OFFER_MARK`), the offer as the answerer applies it,
 * the candidates a description holds, and the checks of what the other peer
 * signalled. Pure functions over strings.
 *
 * @module
 */

import {
  FALLBACK_MAX_MESSAGE_SIZE,
  MAX_CANDIDATE_LENGTH,
  MAX_SDP_LENGTH,
  OFFER_MARK,
  RETRY_MARK,
} from "../constants.ts";
import { SignalRefusedError } from "../errors.ts";
import type { SignalingMessage } from "../signaling/signaling.ts";
import type { IceCandidateInit, PeerConnectionLike } from "./types.ts";

/** Whether `sdp` holds the session-level attribute line `mark`. */
export function hasMark(sdp: string, mark: string): boolean {
  return sdp.split(/\r?\n/).includes(mark);
}

/**
 * An offer's or answer's text as sent: marked as this module's (see
 * {@linkcode OFFER_MARK}), with any `extra` session-level attributes.
 */
export function markDescription(sdp: string, extra: string[] = []): string {
  const lines = sdp.split(/\r?\n/);
  const marks = [OFFER_MARK, ...extra].filter((mark) => !lines.includes(mark));
  if (marks.length === 0) return sdp;
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  // Session-level attributes follow the t= line (RFC 4566's order).
  return sdp.replace(/^t=.*$/m, (line) => [line.replace(/\r$/, ""), ...marks].join(eol));
}

/**
 * The offer as the answerer applies it: an offer marked as this module's has
 * its `a=setup:actpass` read as `a=setup:active`, so the offerer becomes the
 * DTLS client, unless it tries once more (see {@linkcode RETRY_MARK}); any
 * other offer is applied as it is.
 */
export function offerAsApplied(sdp: string): string {
  const lines = sdp.split(/\r?\n/);
  if (!lines.includes(OFFER_MARK) || lines.includes(RETRY_MARK)) return sdp;
  return sdp.replace(/^a=setup:actpass(?=\r?$)/gm, "a=setup:active");
}

/**
 * A description without its candidates, and the candidates it held (a peer
 * that does not trickle puts them all there), each as if trickled.
 */
export function splitCandidates(sdp: string): { sdp: string; candidates: IceCandidateInit[] } {
  const lines = sdp.split(/(?<=\n)/);
  const bare = lines.map((line) => line.replace(/\r?\n$/, ""));
  // Each media section's mid (its a=mid line may come after its candidates).
  const mids: (string | null)[] = [];
  for (const line of bare) {
    if (line.startsWith("m=")) mids.push(null);
    else if (line.startsWith("a=mid:") && mids.length > 0) {
      mids[mids.length - 1] = line.slice("a=mid:".length);
    }
  }
  const candidates: IceCandidateInit[] = [];
  const kept: string[] = [];
  let section = -1;
  lines.forEach((line, i) => {
    if (bare[i].startsWith("m=")) section++;
    if (bare[i].startsWith("a=candidate:")) {
      candidates.push({
        candidate: bare[i].slice(2),
        sdpMid: mids[section] ?? null,
        sdpMLineIndex: Math.max(section, 0),
      });
    } else if (bare[i] !== "a=end-of-candidates") kept.push(line);
  });
  return { sdp: kept.join(""), candidates };
}

/**
 * A description with `candidates` added to their media sections (by
 * `sdpMid`, else by `sdpMLineIndex`, else the first), each after the
 * section's other lines, as a peer that gathered before describing puts
 * them; the inverse of {@linkcode splitCandidates}. A candidate the
 * description holds already is not added again. No `a=end-of-candidates`:
 * more may trickle.
 */
export function withCandidates(sdp: string, candidates: IceCandidateInit[]): string {
  if (candidates.length === 0) return sdp;
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const lines = sdp.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  const sections: number[] = [];
  const mids: (string | undefined)[] = [];
  lines.forEach((line, i) => {
    if (line.startsWith("m=")) sections.push(i);
    else if (line.startsWith("a=mid:") && sections.length > 0) {
      mids[sections.length - 1] = line.slice("a=mid:".length);
    }
  });
  if (sections.length === 0) return sdp;
  const present = new Set(lines);
  const added = new Map<number, string[]>();
  for (const candidate of candidates) {
    // By mid first, as JSEP reads a candidate, else by index, else the first.
    const byMid = candidate.sdpMid == null ? -1 : mids.indexOf(candidate.sdpMid);
    const index = byMid >= 0
      ? byMid
      : Math.min(Math.max(candidate.sdpMLineIndex ?? 0, 0), sections.length - 1);
    // node-datachannel's candidates come as the attribute line, `a=` included.
    const line = `a=${candidate.candidate.replace(/^a=/, "")}`;
    if (present.has(line)) continue;
    present.add(line);
    added.set(index, [...(added.get(index) ?? []), line]);
  }
  // Each section's candidates go where the next section (or the text) begins.
  const out: string[] = [];
  let section = -1;
  const close = () => out.push(...(added.get(section) ?? []));
  for (const line of lines) {
    if (line.startsWith("m=")) {
      close();
      section++;
    }
    out.push(line);
  }
  close();
  return out.join(eol) + eol;
}

/**
 * The other peer's offer or answer, checked: the type this side expects, the
 * first one, and an SDP of a bounded size.
 *
 * @throws {SignalRefusedError} Naming what is wrong with it.
 */
export function readDescription(
  message: SignalingMessage,
  initiator: boolean,
  alreadyReceived: boolean,
): { type: string; sdp: string } {
  const expected = initiator ? "answer" : "offer";
  if (message.type !== expected) {
    throw new SignalRefusedError(
      `Refused a signalling ${message.type} as this peer ${
        initiator ? "made the offer" : "expects an offer"
      }: both sides may be set as initiator, or neither`,
    );
  }
  if (alreadyReceived) {
    throw new SignalRefusedError(
      `Refused a second ${message.type}: renegotiation is not supported; start a new connection`,
    );
  }
  const sdp = message.sdp;
  if (typeof sdp !== "string" || sdp.length === 0 || sdp.length > MAX_SDP_LENGTH) {
    throw new SignalRefusedError(
      `Refused a signalling ${message.type} as its 'sdp' is not a string of 1 to MAX_SDP_LENGTH (${MAX_SDP_LENGTH}) characters`,
    );
  }
  return { type: message.type, sdp };
}

/**
 * A candidate from signalling, checked.
 *
 * @throws {SignalRefusedError} If it is not an `RTCIceCandidateInit`.
 */
export function parseCandidate(value: unknown): IceCandidateInit {
  const c = value as IceCandidateInit | null;
  if (
    typeof c !== "object" || c === null || typeof c.candidate !== "string" ||
    c.candidate.length > MAX_CANDIDATE_LENGTH ||
    (c.sdpMid != null && typeof c.sdpMid !== "string") ||
    (c.sdpMLineIndex != null && !Number.isInteger(c.sdpMLineIndex))
  ) {
    throw new SignalRefusedError(
      `Refused an ICE candidate as it is not an RTCIceCandidateInit ({ candidate: string of at most MAX_CANDIDATE_LENGTH (${MAX_CANDIDATE_LENGTH}) characters, sdpMid?, sdpMLineIndex? })`,
    );
  }
  return {
    candidate: c.candidate,
    sdpMid: c.sdpMid ?? null,
    sdpMLineIndex: c.sdpMLineIndex ?? null,
  };
}

/** The certificate fingerprints a description signals, by lower-case algorithm. */
export function signalledFingerprints(sdp: string): Map<string, string> {
  const signalled = new Map<string, string>();
  for (const [, algorithm, value] of sdp.matchAll(/^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\r?$/gm)) {
    signalled.set(algorithm.toLowerCase(), value.toUpperCase());
  }
  return signalled;
}

/** The negotiated SCTP max message size of a connected peer connection. */
export function readMaxMessageSize(pc: PeerConnectionLike): number {
  const size = pc.sctp?.maxMessageSize ??
    (pc as { ext_maxMessageSize?: number }).ext_maxMessageSize;
  return typeof size === "number" && size > 0 && Number.isFinite(size)
    ? size
    : FALLBACK_MAX_MESSAGE_SIZE;
}
