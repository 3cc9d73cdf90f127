/**
 * The shapes a peer connection is made of: the part of `RTCPeerConnection`
 * this module uses, ICE servers and candidates, the settings of one peer, the
 * steps of a connect and what it yields. Types only (and the default ICE
 * servers), so that every step of the peer can import them without importing
 * the peer.
 *
 * @module
 */

import type { Clock } from "../_clock.ts";
import type { ConnectStage } from "../errors.ts";
import type { DataChannelLike } from "../data_channel_transport.ts";
import type { Signaling } from "../signaling/signaling.ts";

/** An ICE server, as in the W3C `RTCIceServer` dictionary. */
export interface IceServer {
  /** `stun:`, `turn:` or `turns:` URLs. */
  urls: string | string[];
  /** The TURN user name. */
  username?: string;
  /** The TURN password. */
  credential?: string;
}

/** The part of `RTCPeerConnection` this module uses. */
export interface PeerConnectionLike {
  readonly connectionState: string;
  readonly iceConnectionState: string;
  readonly remoteDescription: { type: string; sdp: string } | null;
  readonly localDescription: { type: string; sdp: string } | null;
  readonly sctp?: { readonly maxMessageSize?: number | null } | null;
  createDataChannel(label: string, init?: { ordered?: boolean; protocol?: string }): unknown;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  createAnswer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(description?: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(description: { type: string; sdp: string }): Promise<void>;
  addIceCandidate(candidate: IceCandidateInit): Promise<void>;
  getStats?(): Promise<unknown>;
  /**
   * The other peer's certificate fingerprint as the DTLS handshake computed
   * it, once the certificate arrived (node-datachannel's connections as this
   * module makes them); otherwise undefined.
   */
  remoteCertificateFingerprint?(): { algorithm: string; value: string } | undefined;
  close(): void;
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

/** A constructor of `RTCPeerConnection`-shaped objects. */
export type PeerConnectionConstructor = new (
  configuration: Record<string, unknown>,
) => PeerConnectionLike;

/** An ICE candidate as sent through signalling (`RTCIceCandidateInit`). */
export interface IceCandidateInit {
  /** The `candidate:` attribute line. */
  candidate: string;
  /** The media stream id it belongs to. */
  sdpMid?: string | null;
  /** The media line index it belongs to. */
  sdpMLineIndex?: number | null;
}

/**
 * The public STUN server used when `iceServers` is not given and the
 * signalling hands out none: it lets peers behind common (cone) NATs find
 * their public address. Symmetric NATs need a TURN server.
 */
export const DEFAULT_ICE_SERVERS: readonly IceServer[] = Object.freeze([
  { urls: "stun:stun.cloudflare.com:3478" },
]);

/** Settings of one peer connection. */
export interface PeerOptions {
  signaling: Signaling;
  initiator: boolean;
  /**
   * STUN and TURN servers; when not given, the ones the signalling hands out
   * once started (asked with its `requestIceServers()` if it has one, else
   * its `iceServers`), else {@linkcode DEFAULT_ICE_SERVERS}.
   */
  iceServers?: IceServer[];
  rtcConfiguration: Record<string, unknown>;
  RTCPeerConnection?: PeerConnectionConstructor;
  connectTimeout: number;
  /**
   * Whether the answerer's connect timeout starts only at the other peer's
   * first signalling message (a server waits for its client indefinitely).
   * Otherwise it starts once signalling has started: waiting for the other
   * peer to be there is bounded by the signalling itself.
   */
  waitForPeer: boolean;
  /** Called once per step of connection setup. */
  onstep?: (step: ConnectStep) => void;
  /**
   * Called synchronously when the `mcp` channel exists (before it opens), so
   * the caller can listen before any frame can arrive.
   */
  onchannel?: (channel: DataChannelLike, peerSpeaksFraming: boolean) => void;
  /**
   * Whether a failed connect will be tried once more (see
   * `Peer.retryable`): the first of `PathPeer`'s attempts. Only
   * then is a failure kept from the other peer (its goodbye is not said).
   */
  mayRetry?: boolean;
  /**
   * Whether this connect tries once more after a refused handshake (the
   * second of `PathPeer`'s attempts): the offer then carries
   * `RETRY_MARK`, so the answerer keeps the standard DTLS roles.
   */
  retry?: boolean;
  /**
   * The clock the peer reads: when ICE connected, when the offer and answer
   * were exchanged (the window of a retry, `DTLS_REFUSAL_WINDOW`),
   * the connect timeout and the wait for the other peer's diagnosis. The
   * system's when not given.
   */
  clock?: Clock;
}

/**
 * A step of connection setup, in the order they usually happen:
 * `signaling` (signalling started), `offer` (offer sent or received),
 * `answer` (answer sent or received), `ice` (a network path was found),
 * `dtls` (the encrypted session is up), `channel` (the `mcp` channel is open).
 * The steps a connect can fail at are its {@linkcode ConnectStage}s; the
 * offer and the answer are parts of `signaling`.
 */
export type ConnectStep = ConnectStage | "offer" | "answer";

/** The network path a connection uses. */
export interface ConnectionPath {
  /**
   * How this side reaches the other: `host` (directly, same network),
   * `srflx`/`prflx` (through a NAT, found with STUN) or `relay` (through TURN).
   */
  readonly localCandidateType?: string;
  /** The same for the other side's end of the path. */
  readonly remoteCandidateType?: string;
  /**
   * The other side's address and port, as seen from here. Not known on the
   * offering side when the path was made by the answerer's check that came
   * before the answer (libjuice does not keep that address): then only
   * `remoteCandidateType` (`prflx`) is given.
   */
  readonly remoteAddress?: string;
}

/** What a completed connection yields. */
export interface Connected {
  channel: DataChannelLike;
  /** Whether the other side announced this module's framing. */
  peerSpeaksFraming: boolean;
}
