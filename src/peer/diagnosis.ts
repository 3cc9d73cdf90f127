/**
 * The diagnosis of a connect that failed: pure functions over one record of
 * what was observed ({@linkcode Observed}), each giving the
 * {@linkcode ConnectError} that names the stage and what to do. The peer
 * keeps the record; nothing here reads a connection, a clock or signalling.
 *
 * @module
 */

import { MAX_BYE_REASON_LENGTH } from "../constants.ts";
import { ConnectError, type ConnectStage } from "../errors.ts";
import { signalledFingerprints } from "./sdp.ts";

/** What one peer observed of its connect, as far as it got. */
export interface Observed {
  /** Whether this side made the offer. */
  readonly initiator: boolean;
  /** What both peers must share, as the signalling describes it (`Signaling.meetingPoint`). */
  readonly meetingPoint?: string;
  /** Whether the signalling says it is sealed end to end. */
  readonly sealed: boolean;
  /** Whether the other peer's offer or answer was applied. */
  readonly remoteSet: boolean;
  /** Whether ICE found a path (or the answerer's check proved one, see `pathFound`). */
  readonly iceConnected: boolean;
  /** When ICE connected, on the peer's clock. */
  readonly iceConnectedAt?: number;
  /** Whether the answer says the answerer's check of our candidates succeeded before it answered. */
  readonly pathFound: boolean;
  /** When the answer was sent (answerer) or applied (offerer), on the peer's clock. */
  readonly negotiatedAt?: number;
  /** Whether the encrypted session was seen up. */
  readonly dtlsUp: boolean;
  /** The peer connection's `connectionState`, once there is one. */
  readonly connectionState?: string;
  /** The other peer's description as applied here. */
  readonly remoteSdp?: string;
  /** The other peer's certificate fingerprint as the handshake computed it, where the stack tells. */
  readonly remoteCertificate?: { algorithm: string; value: string };
  /** The first signalling message refused here. */
  readonly refused?: Error;
  /** A handshake failure seen here whose cause the other peer's goodbye may tell. */
  readonly unexplained?: ConnectError;
  /** Whether the other peer's offer or answer says it is of this module. */
  readonly ours: boolean;
  /** Whether the connection itself failed (not a timeout, not a goodbye, not closed here). */
  readonly broke: boolean;
  /** The time of the diagnosis, on the peer's clock. */
  readonly now: number;
}

/** The stage a connect is at. */
export function stageOf(observed: Observed): ConnectStage {
  if (!observed.remoteSet) return "signaling";
  if (!observed.iceConnected) return "ice";
  if (observed.connectionState !== "connected") return "dtls";
  return "channel";
}

/** The meeting point as said in a hint. */
function meetingPoint(observed: Observed): string {
  const point = observed.meetingPoint;
  return typeof point === "string" && point.length > 0
    ? point.slice(0, 200)
    : "the same signalling channel";
}

/** The error of a connect timeout of `timeout` ms: the stage it stopped at, and what to do. */
export function timedOut(observed: Observed, timeout: number): ConnectError {
  const stage = stageOf(observed);
  const refused = observed.refused;
  return new ConnectError(
    stage,
    `Cannot connect as the ${stageName(stage)} did not complete within ${timeout} ms: ${
      refused && stage === "signaling"
        ? `signalling messages were refused (${refused.message})`
        : hint(stage, observed.initiator, meetingPoint(observed))
    }`,
    refused ? { cause: refused } : undefined,
  );
}

/**
 * The error of a connection that failed (its `state`: `failed` or `closed`)
 * before the channel opened, and whether it is conclusive (not a handshake
 * failure whose cause only the other peer observed).
 */
export function connectionFailed(
  observed: Observed,
  state: string,
): { error: ConnectError; conclusive: boolean } {
  // A certificate the handshake saw proves the path, whatever our ICE events
  // said (they may come late, or not at all, under load): one that differs
  // from its signalled fingerprint is the finding.
  if (certificateMismatch(observed)) return handshakeFailed(observed, state);
  // Our ICE event may come after the failure (node-datachannel reads the
  // state when it dispatches): the answerer's check proved the path.
  if (!observed.iceConnected && !observed.pathFound) {
    const error = new ConnectError(
      "ice",
      `Cannot connect as the peer connection ${state} before ICE found a path: ${
        hint("ice", observed.initiator, meetingPoint(observed))
      }`,
    );
    return { error, conclusive: true };
  }
  if (observed.dtlsUp || observed.connectionState === "connected") {
    const error = new ConnectError(
      "channel",
      `Cannot connect as the peer connection ${state} after the encrypted session was up, before the "mcp" channel opened: ${
        hint("channel", observed.initiator, meetingPoint(observed))
      }`,
    );
    return { error, conclusive: true };
  }
  return handshakeFailed(observed, state);
}

/**
 * Whether the other peer's certificate, as the handshake saw it, was compared
 * with the fingerprint it signalled and differs: proof that the description
 * or the handshake was altered, never libdatachannel's refusal race (which
 * sees the right certificate), so never cured by a second attempt.
 */
export function certificateMismatch(
  observed: Pick<Observed, "remoteCertificate" | "remoteSdp">,
): boolean {
  const seen = observed.remoteCertificate;
  if (!seen) return false;
  const expected = signalledFingerprints(observed.remoteSdp ?? "").get(
    seen.algorithm.toLowerCase(),
  );
  return expected !== undefined && expected !== seen.value.toUpperCase();
}

/**
 * The error of a DTLS handshake that failed over a working path, from what
 * was observed: the other peer's certificate as the handshake saw it (where
 * the implementation tells) compared with the fingerprint it signalled.
 * Only a fingerprint that was compared and differs names an alteration.
 */
export function handshakeFailed(
  observed: Observed,
  state: string,
): { error: ConnectError; conclusive: boolean } {
  const connectedAt = observed.iceConnectedAt ??
    (!observed.iceConnected && observed.pathFound ? observed.negotiatedAt : undefined);
  const after = connectedAt === undefined
    ? "after a network path was found"
    : `${Math.max(0, observed.now - connectedAt)} ms after a network path was found`;
  const theirs = observed.initiator ? "answer" : "offer";
  const seen = observed.remoteCertificate;
  const signalled = signalledFingerprints(observed.remoteSdp ?? "");
  const algorithm = seen?.algorithm.toLowerCase();
  const expected = algorithm === undefined ? undefined : signalled.get(algorithm);
  if (seen && expected !== undefined && expected !== seen.value.toUpperCase()) {
    const error = new ConnectError(
      "dtls",
      `Cannot connect as the other peer's certificate does not match the fingerprint in the ${theirs} it signalled (${algorithm} ${seen.value.toUpperCase()} in the handshake, ${expected} signalled): ${
        observed.sealed
          ? "the signalling is sealed, so that fingerprint is the other peer's own; something on the network path answered the handshake in its place, or the other peer is faulty"
          : "something on the signalling channel altered the offer or answer; carry signalling over AuthenticatedSignaling (tickets do) so that such changes are detected"
      }`,
    );
    return { error, conclusive: true };
  }
  const seenText = seen === undefined
    ? "before the other peer's certificate was checked"
    : expected === undefined
    ? `with the other peer's certificate not compared (its ${theirs} signalled no ${algorithm} fingerprint)`
    : "although the other peer's certificate matches the fingerprint it signalled, so nothing altered that";
  const error = new ConnectError(
    "dtls",
    `Cannot connect as the peer connection ${state} during the DTLS handshake, ${after}, ${seenText}: the handshake was refused or broken off (libdatachannel refuses a certificate it checks before the other peer's description is in place, which a second attempt cures; a peer that takes the same DTLS role as this one, see a=setup, fails the same way)`,
  );
  return { error, conclusive: false };
}

/** The error of a connect the other peer gave up, from its goodbye's `reason` (if a string). */
export function goodbyeError(observed: Observed, reason: unknown): ConnectError {
  const stage = stageOf(observed);
  const said = typeof reason === "string"
    ? reason.slice(0, MAX_BYE_REASON_LENGTH)
    : "no reason given";
  const unexplained = observed.unexplained;
  if (unexplained) {
    // What was seen here, and what the other peer saw.
    return new ConnectError(
      unexplained.stage,
      `${unexplained.message}; the other peer said: ${said}`,
    );
  }
  let text = `Cannot connect as the other peer gave up (${said}) during the ${stageName(stage)}: ${
    hint(stage, observed.initiator, meetingPoint(observed))
  }`;
  const refused = observed.refused;
  if (refused?.name === "AuthenticationError") {
    // We refused its message; its goodbye says it learnt so.
    text =
      `Cannot connect as this peer refused a signalling message (${refused.message}), and the other peer gave up: ${said}`;
  } else if (stage === "signaling") text = `Cannot connect as the other peer gave up: ${said}`;
  // Its diagnosis of the stage both share is better than a guess from here.
  else if (said.startsWith("Cannot connect as ")) {
    text = `Cannot connect as the other peer gave up during the ${
      stageName(stage)
    }, saying: ${said}`;
  }
  return new ConnectError(stage, text, refused ? { cause: refused } : undefined);
}

/** The error of a connect whose message the other peer refused (its `PeerRefusalError`). */
export function refusedByPeer(observed: Observed, refusal: Error): ConnectError {
  const message = refusal.message;
  return new ConnectError(
    stageOf(observed),
    `Cannot connect as ${message.charAt(0).toLowerCase()}${message.slice(1)}`,
    { cause: refusal },
  );
}

/** The error of a connect whose `mcp` channel the other peer reset before it opened. */
export function channelRefused(): ConnectError {
  return new ConnectError(
    "channel",
    'Cannot connect as the other peer reset the "mcp" data channel before it opened: it refuses the channel, or numbers its channels by its ICE role instead of its DTLS role (aiortc does when made the DTLS client); check that the other peer is an MCP WebRTC peer',
  );
}

/** The error of a connect whose signalling closed before the connection was up. */
export function signalingClosed(): ConnectError {
  return new ConnectError(
    "signaling",
    "Cannot connect as the signalling channel closed before the connection was established: check that the signalling service is reachable and the other peer is running",
  );
}

/** The stage's name in a sentence. */
export function stageName(stage: ConnectStage): string {
  return {
    signaling: "signalling exchange",
    ice: "ICE connectivity check",
    dtls: "DTLS handshake",
    channel: "data channel opening",
  }[stage];
}

/** What to do about a connect that stopped at `stage`. */
export function hint(stage: ConnectStage, initiator: boolean, meetingPoint: string): string {
  switch (stage) {
    case "signaling":
      return initiator
        ? `no answer came from the other peer; check that it is running and uses ${meetingPoint}`
        : `the offer or its candidates did not arrive; check that both peers use ${meetingPoint}`;
    case "ice":
      return "no network path between the peers; configure a TURN server (iceServers) or allow UDP between them";
    case "dtls":
      return "a path was found but the encrypted session was not established; something on the path may drop large UDP packets, try a TURN server over TCP or TLS";
    case "channel":
      return 'the "mcp" data channel did not open; the other peer may not be an MCP WebRTC peer';
  }
}
