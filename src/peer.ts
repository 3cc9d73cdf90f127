/**
 * One `RTCPeerConnection`, its negotiation over a {@linkcode Signaling} and its
 * lifetime. Private to the package: the transports are the public face.
 *
 * @module
 */

import { abortable, Countdown, delay, nextEvent, once, settle, withResolvers } from "./_async.ts";
import { Candidates } from "./_candidates.ts";
import {
  BYE_TIMEOUT,
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  CHANNEL_RELEASE_TIMEOUT,
  CONNECTION_RELEASE_TIMEOUT,
  DIAGNOSIS_WAIT,
  DTLS_REFUSAL_WINDOW,
  FALLBACK_MAX_MESSAGE_SIZE,
  LARGE_PACKETS_MARK,
  OFFER_CANDIDATE_WAIT,
  OFFER_CHECK_WAIT,
  OFFER_MARK,
  PATH_MARK,
  RETRY_MARK,
} from "./constants.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";
import {
  ConnectError,
  type ConnectStage,
  PeerRefusalError,
  SignalRefusedError,
  WebRTCTransportError,
} from "./errors.ts";
import type { Signaling, SignalingMessage } from "./signaling/signaling.ts";
import { withPathMtu } from "./_mtu.ts";
import { NativeDataChannel } from "./_native_channel.ts";

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
   * {@linkcode Peer.retryable}): the first of `PathPeer`'s attempts. Only
   * then is a failure kept from the other peer (its goodbye is not said).
   */
  mayRetry?: boolean;
  /**
   * Whether this connect tries once more after a refused handshake (the
   * second of `PathPeer`'s attempts): the offer then carries
   * {@linkcode RETRY_MARK}, so the answerer keeps the standard DTLS roles.
   */
  retry?: boolean;
}

/**
 * A step of connection setup, in the order they usually happen:
 * `signaling` (signalling started), `offer` (offer sent or received),
 * `answer` (answer sent or received), `ice` (a network path was found),
 * `dtls` (the encrypted session is up), `channel` (the `mcp` channel is open).
 */
export type ConnectStep = "signaling" | "offer" | "answer" | "ice" | "dtls" | "channel";

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

const MAX_SDP_LENGTH = 64 * 1024;
/** Room for the other peer's diagnosis in its goodbye. */
const MAX_BYE_REASON_LENGTH = 600;

let polyfillPeerConnection: PeerConnectionConstructor | undefined;

/**
 * node-datachannel's `RTCPeerConnection` polyfill on a native connection made
 * here, whose data channels are made and received natively (see
 * `_native_channel.ts`: the polyfill's per-message `EventTarget` dispatch
 * was a measurable share of a round trip); descriptions, candidates, states
 * and statistics stay the polyfill's.
 *
 * The polyfill joins a TURN server's credentials into a URL
 * (`turn:user:password@host`) that libdatachannel percent-decodes, so a TURN
 * REST user name (`<expiry>:<id>`) or a base64 password (`/`, `+`, `=`) was
 * misread and the server refused the allocation. The URLs are made here, the
 * credentials encoded: libdatachannel gets exactly what was given.
 */
function nativeChannelPeerConnection(
  polyfill: typeof import("node-datachannel/polyfill"),
  native: typeof import("node-datachannel").default,
): PeerConnectionConstructor {
  const Base = polyfill.RTCPeerConnection as unknown as new (
    configuration: Record<string, unknown>,
  ) => EventTarget;
  return class extends Base {
    /** The native connection, unless the polyfill made its own (then its channels are used). */
    readonly #native?: import("node-datachannel").PeerConnection;

    constructor(configuration: Record<string, unknown>) {
      let connection: import("node-datachannel").PeerConnection | undefined;
      // Read by the polyfill once it has checked the configuration; what the
      // native side throws, it reports as it does for a connection of its own.
      super({
        ...configuration,
        get peerConnection() {
          const servers = (configuration.iceServers ?? []) as IceServer[];
          return connection ??= new native.PeerConnection(
            `mcp-webrtc-${crypto.randomUUID()}`,
            {
              ...configuration,
              iceServers: servers.flatMap((server) =>
                [server.urls].flat().map((url) => {
                  if (server.username === undefined || server.credential === undefined) return url;
                  const [scheme, rest] = url.split(/:(.*)/s);
                  return `${scheme}:${encodeURIComponent(server.username)}:${
                    encodeURIComponent(server.credential)
                  }@${rest}`;
                })
              ),
            } as import("node-datachannel").RtcConfig,
          );
        },
      });
      if (!connection) return;
      this.#native = connection;
      // Replaces the polyfill's handler: the other side's channels arrive natively.
      connection.onDataChannel((channel) => {
        // The polyfill's RTCDataChannelEvent takes only its own channels.
        const event = new Event("datachannel");
        Object.defineProperty(event, "channel", { value: new NativeDataChannel(channel) });
        this.dispatchEvent(event);
      });
    }

    /** The certificate fingerprint libdatachannel computed in the handshake, once it did. */
    remoteCertificateFingerprint(): { algorithm: string; value: string } | undefined {
      try {
        const fingerprint = this.#native?.remoteFingerprint();
        return fingerprint?.value ? { ...fingerprint } : undefined;
      } catch {
        return undefined;
      }
    }

    createDataChannel(
      label: string,
      init: { ordered?: boolean; protocol?: string } = {},
    ): DataChannelLike {
      if (!this.#native) {
        return (Base.prototype as unknown as PeerConnectionLike).createDataChannel.call(
          this,
          label,
          init,
        ) as DataChannelLike;
      }
      return new NativeDataChannel(
        this.#native.createDataChannel(label, {
          protocol: init.protocol,
          unordered: init.ordered === false,
        }),
      );
    }
  } as unknown as PeerConnectionConstructor;
}

/**
 * Picks the `RTCPeerConnection` implementation: the caller's, else the
 * runtime's own (browsers), else node-datachannel's W3C polyfill (Deno, Node).
 */
export async function resolvePeerConnection(
  injected?: PeerConnectionConstructor,
): Promise<PeerConnectionConstructor> {
  if (injected) return injected;
  const native = (globalThis as { RTCPeerConnection?: PeerConnectionConstructor })
    .RTCPeerConnection;
  if (native) return native;
  try {
    const [polyfill, native] = await Promise.all([
      import("node-datachannel/polyfill"),
      import("node-datachannel"),
    ]);
    polyfillPeerConnection ??= nativeChannelPeerConnection(polyfill, native.default);
    return polyfillPeerConnection;
  } catch (cause) {
    throw new WebRTCTransportError(
      "Cannot create a peer connection as this runtime has no RTCPeerConnection and node-datachannel could not be loaded: install node-datachannel (Deno needs --allow-ffi --allow-read), or pass the RTCPeerConnection option",
      { cause },
    );
  }
}

/**
 * Whether connections made by `Ctor` are node-datachannel's as this module
 * makes them (its own, or a subclass): their ICE receives packets up to
 * libjuice's 4096-byte buffer.
 */
function isNodeDataChannel(Ctor: PeerConnectionConstructor): boolean {
  const ours = polyfillPeerConnection;
  return ours !== undefined &&
    (Ctor === ours || (Ctor as { prototype?: unknown }).prototype instanceof ours);
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
 * One peer connection: the negotiation over a {@linkcode Signaling}, then the
 * connection's lifetime. `connect()` resolves with the open `mcp` channel;
 * after it, {@linkcode Peer.createChannel} opens further channels and
 * {@linkcode Peer.ondatachannel} receives the other side's; `onclose` fires
 * once if the connection is lost.
 */
export class Peer {
  readonly #options: PeerOptions;
  #pc?: PeerConnectionLike;
  /** Aborted with the reason the negotiation cannot go on (or the peer closed). */
  readonly #failure = new AbortController();
  readonly #candidates: Candidates;
  #remoteDescription = withResolvers<{ type: string; sdp: string }>();
  #heard = withResolvers<void>();
  #descriptionReceived = false;
  #remoteSet = false;
  #iceConnected = false;
  #iceConnectedAt?: number;
  /** Whether the other peer is of this module (its offer or answer is marked). */
  #ours = false;
  /**
   * Whether the answerer's check of our candidates succeeded before it
   * answered: a network path exists, so a failure after the answer is the
   * handshake's, even if our own ICE event was not seen before it.
   */
  #pathFound = false;
  /** When the answer was sent (answerer) or applied (offerer). */
  #negotiatedAt?: number;
  /** The first remote candidate applied (its `candidate` line). */
  #firstRemoteCandidate?: string;
  /** Whether the connection failed (not a timeout, not the other peer's goodbye). */
  #broke = false;
  /** Whether closing says no goodbye (the connect is to be tried again). */
  #quiet = false;
  readonly #iceUp = withResolvers<void>();
  #connected = false;
  #closed = false;
  #closeReason = "closed";
  readonly #closedError = new WebRTCTransportError("Cannot connect as the transport was closed");
  /** A handshake failure seen here whose cause the other peer's goodbye may tell. */
  #unexplained?: ConnectError;
  /** The first signalling message refused, to explain a timeout. */
  #refused?: Error;
  #steps = new Set<ConnectStep>();
  #channels = new Set<DataChannelLike>();
  /** The answerer's `mcp` channel, the first the offerer opens. */
  #primary = withResolvers<DataChannelLike>();
  #primaryTaken = false;
  #pcClosed?: Promise<unknown>;
  #connectCalled = false;
  /** The signalling's start, once begun. */
  #signalingStarted?: Promise<void>;
  /** Outgoing signalling, in order. */
  #outbox: Promise<void> = Promise.resolve();

  /** Called once when the connection is gone (after `connect()` resolved). */
  onclose?: (error?: Error) => void;
  /** Called for a signalling message that was refused or could not be sent; the connection goes on. */
  onerror?: (error: Error) => void;
  /**
   * Called for each data channel the other side opens beyond the first `mcp`
   * channel. Without a handler such channels are closed.
   */
  ondatachannel?: (channel: DataChannelLike) => void;

  constructor(options: PeerOptions) {
    this.#options = options;
    this.#failure.signal.addEventListener("abort", () => this.#candidates.close());
    this.#candidates = new Candidates({
      send: (candidate) => this.#signal({ type: "candidate", candidate }),
      apply: (candidate) => {
        this.#firstRemoteCandidate ??= candidate.candidate;
        return this.#pc!.addIceCandidate(candidate).catch((error) =>
          this.onerror?.(
            new WebRTCTransportError(
              `Ignored an ICE candidate the connection refused: ${messageOf(error)}`,
              { cause: error },
            ),
          )
        );
      },
    });
  }

  /** The underlying connection, once created. */
  get connection(): PeerConnectionLike | undefined {
    return this.#pc;
  }

  /** The network path in use, once connected (from `getStats()`). */
  async path(): Promise<ConnectionPath | undefined> {
    const stats = await this.#pc?.getStats?.().catch(() => undefined);
    if (!stats || typeof (stats as Map<string, unknown>).forEach !== "function") return undefined;
    const reports = new Map<string, Record<string, unknown>>();
    (stats as Map<string, Record<string, unknown>>).forEach((report, id) =>
      reports.set(id, report)
    );
    let pair: Record<string, unknown> | undefined;
    for (const report of reports.values()) {
      if (report.type === "transport" && typeof report.selectedCandidatePairId === "string") {
        pair = reports.get(report.selectedCandidatePairId);
      }
    }
    pair ??= [...reports.values()].find((report) =>
      report.type === "candidate-pair" && report.state === "succeeded" && report.nominated
    );
    if (!pair) return undefined;
    const local = reports.get(String(pair.localCandidateId));
    const remote = reports.get(String(pair.remoteCandidateId));
    const address = remote?.address ?? remote?.ip;
    const first = this.#firstRemoteCandidate?.split(" ");
    let remoteType = remote?.candidateType as string | undefined;
    if (first !== undefined && first[4] === String(address) && first[5] === String(remote?.port)) {
      const localAddress = String(local?.address ?? local?.ip);
      if (remoteType === "prflx" || /^(127\.|::1$|::ffff:127\.)/.test(localAddress)) {
        // Learnt from the other peer's check before it was signalled: it is
        // that signalled candidate, of that type. On loopback every address
        // is this host's, so the candidate reported is the one in use.
        remoteType = first[7];
      } else if (this.#options.initiator && this.#pathFound) {
        // libjuice keeps the candidate it learnt from the answerer's check
        // that came before the answer in a slot that the answer, then the
        // answerer's first candidate, overwrite (`agent_set_remote_description`
        // replaces the remote description whole): on the offerer, the pair
        // that check made reports that candidate instead of the address in
        // use. That pair's other end is peer-reflexive; its address is not
        // known here.
        return {
          localCandidateType: local?.candidateType as string | undefined,
          remoteCandidateType: "prflx",
        };
      }
    }
    return {
      localCandidateType: local?.candidateType as string | undefined,
      remoteCandidateType: remoteType,
      remoteAddress: address === undefined ? undefined : `${address}:${remote?.port}`,
    };
  }

  /**
   * Negotiates and resolves with the open `mcp` channel; rejects with a
   * {@linkcode ConnectError} that names the stage that failed, and closes.
   */
  async connect(): Promise<Connected> {
    if (this.#connectCalled) {
      throw new WebRTCTransportError("Cannot connect as this peer already connected");
    }
    this.#connectCalled = true;
    const options = this.#options;
    const Ctor = await resolvePeerConnection(options.RTCPeerConnection);
    if (this.#closed) throw new WebRTCTransportError("Cannot connect as the transport was closed");
    this.#watchSignaling();
    const countdown = new Countdown();
    try {
      let iceServers = options.iceServers;
      if (iceServers === undefined) {
        // None given: the servers the signalling hands out (a room's short-lived
        // TURN credentials), known once it has started, else the default.
        await abortable(this.#startSignaling(), this.#failure.signal);
        const handedOut = await abortable(
          handedOutIceServers(options.signaling),
          this.#failure.signal,
        );
        iceServers = handedOut ?? DEFAULT_ICE_SERVERS.map((server) => ({ ...server }));
      }
      const native = isNodeDataChannel(Ctor);
      const servers = iceServers;
      // Made once it is known whether the other peer takes large packets: the
      // answerer reads it in the offer, the offerer cannot know (see LARGE_PACKETS_MARK).
      const connection = (peerTakesLargePackets: boolean) => {
        if (this.#closed) throw this.#closedError;
        const config = withPathMtu(options.rtcConfiguration, servers, peerTakesLargePackets);
        const pc = new Ctor({ iceServers: servers, ...config });
        this.#pc = pc;
        this.#pcClosed = nextEvent(pc, "connectionstatechange", {
          accept: () => pc.connectionState === "closed",
        });
        this.#watch(pc);
        return pc;
      };
      const connected = await this.#negotiate(connection, native, countdown);
      this.#connected = true;
      this.#step("channel");
      return connected;
    } catch (error) {
      const reason = this.#failure.signal.aborted ? this.#failure.signal.reason : error;
      // The other peer learns why: its own view of a refused handshake is only a
      // goodbye. Not when it is to be tried again: the new offer says it.
      this.#quiet = this.retryable(reason);
      await this.close(reason instanceof ConnectError ? reason.message : "connect failed");
      if (reason instanceof ConnectError || reason === this.#closedError) throw reason;
      throw new ConnectError(
        "signaling",
        `Cannot connect through signalling: ${messageOf(reason)}`,
        { cause: reason },
      );
    } finally {
      countdown.clear();
    }
  }

  /**
   * The negotiation, step by step. Every wait ends when the negotiation fails
   * (the connection failed, the peer said goodbye, signalling closed, this
   * side closed) or the connect timeout passes.
   */
  async #negotiate(
    connection: (peerTakesLargePackets: boolean) => PeerConnectionLike,
    native: boolean,
    countdown: Countdown,
  ): Promise<Connected> {
    const { initiator, connectTimeout } = this.#options;
    const signal = AbortSignal.any([this.#failure.signal, countdown.signal]);
    const armTimeout = () => countdown.start(connectTimeout);
    const step = async <T>(promise: Promise<T>): Promise<T> => {
      try {
        return await abortable(promise, signal);
      } catch (error) {
        if (this.#failure.signal.aborted) throw this.#failure.signal.reason;
        if (signal.aborted) throw this.#timedOut();
        throw error;
      }
    };
    let pc: PeerConnectionLike | undefined;
    const apply = (description: { type: string; sdp: string }) =>
      step(pc!.setRemoteDescription(description)).catch((error) => {
        throw error instanceof WebRTCTransportError ? error : new ConnectError(
          "signaling",
          `Cannot connect as the ${description.type} from the other peer was refused: ${
            messageOf(error)
          }`,
          { cause: error },
        );
      });
    const { waitForPeer } = this.#options;
    // Signalling bounds its own start (a room's wait for its host: `--wait`);
    // the connect timeout counts from there.
    await abortable(this.#startSignaling(), signal);
    this.#step("signaling");
    if (initiator || !waitForPeer) armTimeout();
    let channel: DataChannelLike;
    if (initiator) {
      pc = connection(false);
      channel = this.#adopt(
        pc.createDataChannel(CHANNEL_LABEL, {
          ordered: true,
          protocol: CHANNEL_PROTOCOL,
        }) as DataChannelLike,
      );
      const offer = await step(pc.createOffer());
      await step(pc.setLocalDescription(offer));
      const { retry } = this.#options;
      let sdp = offer.sdp ?? pc.localDescription?.sdp ?? "";
      if (retry) {
        // Held, as those trickled, until the answer is applied (see below).
        const inline = splitCandidates(sdp);
        sdp = inline.sdp;
        for (const candidate of inline.candidates) this.#candidates.local(candidate);
      }
      const offered = this.#send({
        type: "offer",
        sdp: markDescription(sdp, [
          ...(native ? [LARGE_PACKETS_MARK] : []),
          ...(retry ? [RETRY_MARK] : []),
        ]),
      });
      // Our candidates follow the offer at once (handed over after it, so
      // they arrive after it): an answerer of this module applies them before
      // it answers (see below). On a retry they wait for the answer to be
      // applied: the answerer cannot check us before, so our ICE cannot
      // connect (and our DTLS check the other certificate) while
      // libdatachannel has handed the answer to ICE but not recorded its
      // fingerprint (see RETRY_MARK).
      this.#candidates.descriptionSent();
      if (!retry) this.#candidates.release();
      await step(offered);
      this.#step("offer");
      const answer = await step(this.#remoteDescription.promise);
      const lines = answer.sdp.split(/\r?\n/);
      this.#ours = lines.includes(OFFER_MARK);
      this.#pathFound = lines.includes(PATH_MARK);
      await apply(answer);
      this.#remoteSet = true;
      this.#negotiatedAt = Date.now();
      if (retry) this.#candidates.release();
      this.#step("answer");
      await step(this.#candidates.remoteDescriptionApplied());
    } else {
      if (waitForPeer) {
        await abortable(this.#heard.promise, signal);
        armTimeout();
      }
      const offer = await step(this.#remoteDescription.promise);
      this.#step("offer");
      pc = connection(offer.sdp.split(/\r?\n/).includes(LARGE_PACKETS_MARK));
      const inline = splitCandidates(offer.sdp);
      const ours = offer.sdp.split(/\r?\n/).includes(OFFER_MARK);
      // This module's order (we are the DTLS server), unless the offer tries
      // once more (see RETRY_MARK): then another stack's.
      const swapped = offer.sdp !== offerAsApplied(offer.sdp);
      await apply({ type: "offer", sdp: offerAsApplied(inline.sdp) });
      this.#remoteSet = true;
      // An offer of this module (not a retry): its candidates are applied before we answer,
      // and the answer waits (within bounds) until our first check of them
      // succeeded. Knowing no credentials of ours yet, the offerer answers
      // that check without scheduling a check of its own, which libjuice
      // paces 50 ms out, and checks us at once when the answer comes; our
      // ICE connects first, as the DTLS server's must.
      // Another stack's offer, or a retry, is answered first and its candidates applied
      // after: our checks must not reach an offerer that has not our answer
      // yet (we are its DTLS client, and it could not check our fingerprint).
      if (swapped) await this.#applyOfferCandidates(inline.candidates, step);
      const answer = await step(pc.createAnswer());
      await step(pc.setLocalDescription(answer));
      // Marked too: the offerer then knows its answerer follows this order.
      let sdp = answer.sdp ?? pc.localDescription?.sdp ?? "";
      if (ours) sdp = markDescription(sdp, this.#iceConnected ? [PATH_MARK] : []);
      const answered = this.#send({ type: "answer", sdp });
      this.#ours = ours;
      this.#negotiatedAt = Date.now();
      // Handed over behind the answer: a carrier that batches sends them together.
      this.#candidates.descriptionSent();
      this.#candidates.release();
      await step(answered);
      this.#step("answer");
      if (!swapped) await this.#applyOfferCandidates(inline.candidates, step);
      channel = await step(this.#primary.promise);
    }
    if (channel.readyState !== "open") {
      await step(nextEvent(channel, "open"));
    }
    const peerSpeaksFraming = !initiator &&
      (channel as { protocol?: string }).protocol === CHANNEL_PROTOCOL;
    return { channel, peerSpeaksFraming };
  }

  /** Whether the other peer's offer or answer says it is of this module. */
  get ours(): boolean {
    return this.#ours;
  }

  /**
   * Whether a failed connect may be tried once more with a new offer: both
   * peers are of this module (each side knows it from the other's mark, so
   * both decide alike), the offer and answer were exchanged, and the
   * connection itself failed (not a timeout, not a goodbye) at the ICE or
   * DTLS stage within {@linkcode DTLS_REFUSAL_WINDOW} of that. The side that
   * retries says no goodbye; its new offer tells the answerer.
   * libdatachannel 0.24 hands an applied answer to ICE before it records the
   * answer's fingerprint: when
   * the answerer's checks came first (the order this module uses, see
   * `#negotiate`), the offerer's ICE can connect and its DTLS check the other
   * certificate in that gap, and refuse it, if its thread is held up there
   * (measured: about 1 connect in 400 with two busy processes on two cores).
   */
  retryable(error: unknown): boolean {
    return this.#options.mayRetry === true && this.#ours && this.#broke &&
      this.#negotiatedAt !== undefined &&
      error instanceof ConnectError &&
      (error.stage === "ice" || error.stage === "dtls") &&
      Date.now() - this.#negotiatedAt < DTLS_REFUSAL_WINDOW;
  }

  /**
   * Applies the candidates that waited for the offer and those it held (when
   * there were none, waits for the first to come, at most
   * {@linkcode OFFER_CANDIDATE_WAIT}), then waits for our ICE to connect, at
   * most {@linkcode OFFER_CHECK_WAIT}.
   */
  async #applyOfferCandidates(
    inline: IceCandidateInit[],
    step: <T>(promise: Promise<T>) => Promise<T>,
  ): Promise<void> {
    const queued = await step(this.#candidates.remoteDescriptionApplied());
    for (const candidate of inline) await step(this.#candidates.remote(candidate));
    if (queued + inline.length === 0) {
      await step(settle(this.#candidates.firstApplied, OFFER_CANDIDATE_WAIT));
    }
    // Our checks of those candidates go first; the answer waits (a little)
    // for the first to succeed, so that it cannot overtake them.
    await step(settle(this.#iceUp.promise, OFFER_CHECK_WAIT));
  }

  /**
   * Opens a further data channel on the connected peer connection (ordered,
   * reliable, announcing this module's framing); the other side receives it in
   * {@linkcode Peer.ondatachannel}.
   */
  createChannel(label: string = CHANNEL_LABEL): DataChannelLike {
    if (!this.#connected || this.#closed || !this.#pc) {
      throw new WebRTCTransportError(
        "Cannot open a data channel as the peer connection is not connected: await connect() first",
      );
    }
    const channel = this.#pc.createDataChannel(label, {
      ordered: true,
      protocol: CHANNEL_PROTOCOL,
    }) as DataChannelLike;
    this.#track(channel);
    return channel;
  }

  /**
   * Closes every channel and the connection, and tells the other peer;
   * resolves once the goodbye is handed to signalling (at most
   * {@linkcode BYE_TIMEOUT}) and the connection is released.
   */
  close(reason = "closed"): Promise<void> {
    if (!this.#closed) this.#closeReason = reason;
    this.#closed = true;
    return this.#close();
  }

  readonly #close = once(async () => {
    if (!this.#failure.signal.aborted) this.#failure.abort(this.#closedError);
    await Promise.all([
      this.#quiet ? undefined : settle(
        this.#options.signaling.send({ type: "bye", reason: this.#closeReason }),
        BYE_TIMEOUT,
      ),
      this.#release(),
    ]);
  });

  /** Listens to the connection and signalling for what ends the negotiation or the connection. */
  #watch(pc: PeerConnectionLike): void {
    pc.addEventListener("icecandidate", (event) => {
      const candidate = (event as unknown as { candidate?: IceCandidateInit | null }).candidate;
      if (!candidate?.candidate) return;
      this.#candidates.local({
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid ?? null,
        sdpMLineIndex: candidate.sdpMLineIndex ?? null,
      });
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      const state = pc.iceConnectionState;
      if (state !== "connected" && state !== "completed") return;
      this.#iceConnected = true;
      this.#iceConnectedAt ??= Date.now();
      this.#iceUp.resolve();
      this.#step("ice");
    });
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "connected") {
        this.#iceConnected = true;
        this.#step("ice");
        this.#step("dtls");
      }
      if (state !== "failed" && state !== "closed") return;
      if (this.#connected) this.#lost(`the peer connection is ${state}`);
      else {
        // Not when this side closed it (after a timeout, say).
        if (!this.#closed) this.#broke = true;
        const { error, conclusive } = this.#connectionFailed(state);
        if (conclusive || this.#closed || this.retryable(error)) return this.#fail(error);
        // What failed the handshake was seen by the other peer (its check of
        // our certificate, say): its goodbye, if it comes soon, says it.
        this.#unexplained = error;
        const timer = setTimeout(() => this.#fail(error), DIAGNOSIS_WAIT);
        this.#failure.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
      }
    });
    pc.addEventListener("datachannel", (event) => {
      const channel = channelOf(event);
      if (!this.#options.initiator && !this.#primaryTaken && channel.label === CHANNEL_LABEL) {
        this.#primaryTaken = true;
        this.#primary.resolve(this.#adopt(channel));
      } else if (this.ondatachannel && !this.#closed) {
        this.#track(channel);
        this.ondatachannel(channel);
      } else channel.close();
    });
  }

  /** Starts the signalling, once. */
  #startSignaling(): Promise<void> {
    const { signaling, initiator } = this.#options;
    this.#signalingStarted ??= Promise.resolve(signaling.start?.({ initiator }));
    return this.#signalingStarted;
  }

  /**
   * Listens to the signalling, before it starts: what arrives before the
   * connection exists is kept until it is needed.
   */
  #watchSignaling(): void {
    const { signaling } = this.#options;
    signaling.onmessage = (message) => this.#receive(message);
    signaling.onclose = () =>
      this.#fail(
        new ConnectError(
          "signaling",
          "Cannot connect as the signalling channel closed before the connection was established: check that the signalling service is reachable and the other peer is running",
        ),
      );
    signaling.onerror = (error) => {
      if (error instanceof PeerRefusalError) {
        // The other peer refused a message of ours: it is lost, the connect cannot complete.
        this.#fail(
          new ConnectError(this.#stage(), `Cannot connect as ${lowerFirst(error.message)}`, {
            cause: error,
          }),
        );
        return;
      }
      this.#refused ??= error;
      this.onerror?.(error);
    };
  }

  /** Takes the negotiation's `mcp` channel: the caller hears of it before it can open. */
  #adopt(channel: DataChannelLike): DataChannelLike {
    this.#track(channel);
    channel.addEventListener("close", () => {
      if (!this.#connected) this.#fail(this.#channelRefused());
    });
    this.#options.onchannel?.(
      channel,
      !this.#options.initiator && (channel as { protocol?: string }).protocol === CHANNEL_PROTOCOL,
    );
    return channel;
  }

  #track(channel: DataChannelLike): void {
    this.#channels.add(channel);
    channel.addEventListener("close", () => this.#channels.delete(channel));
  }

  /** One signalling message from the other peer. */
  #receive(message: SignalingMessage): void {
    if (this.#closed) return;
    this.#heard.resolve();
    try {
      switch (message.type) {
        case "offer":
        case "answer":
          this.#remoteDescription.resolve(this.#description(message));
          return;
        case "candidate": {
          const candidate = parseCandidate(message.candidate);
          void this.#candidates.remote(candidate);
          return;
        }
        case "bye":
          this.#goodbye(message);
          return;
        default:
          throw new SignalRefusedError(
            `Refused a signalling message of unknown type ${
              JSON.stringify(String(message.type)).slice(0, 80)
            }: expected offer, answer, candidate or bye`,
          );
      }
    } catch (error) {
      const refused = error instanceof SignalRefusedError
        ? error
        : new SignalRefusedError(messageOf(error), { cause: error });
      this.#refused ??= refused;
      this.onerror?.(refused);
    }
  }

  /** Checks a remote offer or answer; throws a {@linkcode SignalRefusedError}. */
  #description(message: SignalingMessage): { type: string; sdp: string } {
    const expected = this.#options.initiator ? "answer" : "offer";
    if (message.type !== expected) {
      throw new SignalRefusedError(
        `Refused a signalling ${message.type} as this peer ${
          this.#options.initiator ? "made the offer" : "expects an offer"
        }: both sides may be set as initiator, or neither`,
      );
    }
    if (this.#descriptionReceived) {
      throw new SignalRefusedError(
        `Refused a second ${message.type}: renegotiation is not supported; start a new connection`,
      );
    }
    const sdp = message.sdp;
    if (typeof sdp !== "string" || sdp.length === 0 || sdp.length > MAX_SDP_LENGTH) {
      throw new SignalRefusedError(
        `Refused a signalling ${message.type} as its 'sdp' is not a string of 1 to ${MAX_SDP_LENGTH} characters`,
      );
    }
    this.#descriptionReceived = true;
    return { type: message.type, sdp };
  }

  #goodbye(message: SignalingMessage): void {
    if (this.#connected) return this.#lost("the peer said goodbye");
    const stage = this.#stage();
    const reason = typeof message.reason === "string"
      ? message.reason.slice(0, MAX_BYE_REASON_LENGTH)
      : "no reason given";
    const unexplained = this.#unexplained;
    if (unexplained) {
      // What was seen here, and what the other peer saw.
      return this.#fail(
        new ConnectError(
          unexplained.stage,
          `${unexplained.message}; the other peer said: ${reason}`,
        ),
      );
    }
    let text = `Cannot connect as the other peer gave up (${reason}) during the ${
      stageName(stage)
    }: ${hint(stage, this.#options.initiator, this.#meetingPoint())}`;
    const refused = this.#refused;
    if (refused?.name === "AuthenticationError") {
      // We refused its message; its goodbye says it learnt so.
      text =
        `Cannot connect as this peer refused a signalling message (${refused.message}), and the other peer gave up: ${reason}`;
    } else if (stage === "signaling") text = `Cannot connect as the other peer gave up: ${reason}`;
    // Its diagnosis of the stage both share is better than a guess from here.
    else if (reason.startsWith("Cannot connect as ")) {
      text = `Cannot connect as the other peer gave up during the ${
        stageName(stage)
      }, saying: ${reason}`;
    }
    this.#fail(new ConnectError(stage, text, refused ? { cause: refused } : undefined));
  }

  /** Ends the negotiation with `error` (once; never after it succeeded). */
  #fail(error: Error): void {
    if (this.#connected || this.#failure.signal.aborted) return;
    this.#failure.abort(error);
  }

  #lost(why: string): void {
    if (this.#closed) return;
    this.close(why);
    this.onclose?.(new WebRTCTransportError(`The connection to the peer was lost: ${why}`));
  }

  /** Sends one message after every earlier one; rejects if it fails. */
  /**
   * Hands `message` to signalling after those before it; resolves (or
   * rejects) as its own delivery does. The next message is handed over as
   * soon as this one was, not once it was delivered: a carrier that batches
   * (one A2A request carrying the answer and the candidates) gets them
   * together, and every carrier delivers in the order of `send()` calls.
   */
  #send(message: SignalingMessage): Promise<void> {
    const handedOver = this.#outbox.then(() => ({ sent: this.#options.signaling.send(message) }));
    this.#outbox = handedOver.then(() => {}, () => {});
    return handedOver.then(({ sent }) => sent);
  }

  #signal(message: SignalingMessage): void {
    if (this.#closed) return;
    this.#send(message).catch((error) =>
      this.onerror?.(
        new WebRTCTransportError(
          `Cannot send a ${message.type} through signalling: ${messageOf(error)}`,
          { cause: error },
        ),
      )
    );
  }

  /**
   * Closes each channel, then the connection, each time waiting (boundedly)
   * for its `close` event: node-datachannel releases its callbacks into
   * JavaScript only then. Closing the connection before a channel has closed
   * can leave the channel's sockets open and the process running; an isolate
   * or process that ends before the release may crash.
   */
  async #release(): Promise<void> {
    const channels = [...this.#channels].filter((channel) => channel.readyState !== "closed");
    await Promise.all(channels.map((channel) => {
      const closed = nextEvent(channel, "close");
      try {
        // A channel that never opened keeps node-datachannel's process alive unless closed.
        channel.close();
      } catch {
        // Already closing.
      }
      return settle(closed, CHANNEL_RELEASE_TIMEOUT);
    }));
    try {
      this.#pc?.close();
    } catch {
      // Already closed.
    }
    await settle(this.#pcClosed, CONNECTION_RELEASE_TIMEOUT);
    // Let the native side finish the callback that dispatched the event.
    await delay(0);
  }

  #step(step: ConnectStep): void {
    if (this.#steps.has(step) || this.#closed) return;
    this.#steps.add(step);
    try {
      this.#options.onstep?.(step);
    } catch {
      // An observer's failure must not break the connection.
    }
  }

  /** What both peers must share, as the signalling describes it (see `Signaling.meetingPoint`). */
  #meetingPoint(): string {
    const point = this.#options.signaling.meetingPoint;
    return typeof point === "string" && point.length > 0
      ? point.slice(0, 200)
      : "the same signalling channel";
  }

  #stage(): ConnectStage {
    const pc = this.#pc;
    if (!pc || !this.#remoteSet) return "signaling";
    if (!this.#iceConnected) return "ice";
    if (pc.connectionState !== "connected") return "dtls";
    return "channel";
  }

  /** The error of a connect timeout: the stage it stopped at, and what to do. */
  #timedOut(): ConnectError {
    const stage = this.#stage();
    const refused = this.#refused;
    const timeout = this.#options.connectTimeout;
    return new ConnectError(
      stage,
      `Cannot connect as the ${stageName(stage)} did not complete within ${timeout} ms: ${
        refused && stage === "signaling"
          ? `signalling messages were refused (${refused.message})`
          : hint(stage, this.#options.initiator, this.#meetingPoint())
      }`,
      refused ? { cause: refused } : undefined,
    );
  }

  /**
   * The error of a connection that failed before the channel opened, and
   * whether it is conclusive (not a handshake failure whose cause only the
   * other peer observed).
   */
  #connectionFailed(state: string): { error: ConnectError; conclusive: boolean } {
    if (!this.#iceConnected && this.#pathFound) {
      // Our ICE event may come after the failure (node-datachannel reads the
      // state when it dispatches): the answerer's check proved the path.
      this.#iceConnected = true;
      this.#iceConnectedAt ??= this.#negotiatedAt;
    }
    if (!this.#iceConnected) {
      const error = new ConnectError(
        "ice",
        `Cannot connect as the peer connection ${state} before ICE found a path: ${
          hint("ice", this.#options.initiator, this.#meetingPoint())
        }`,
      );
      return { error, conclusive: true };
    }
    const pc = this.#pc;
    if (this.#steps.has("dtls") || pc?.connectionState === "connected") {
      const error = new ConnectError(
        "channel",
        `Cannot connect as the peer connection ${state} after the encrypted session was up, before the "mcp" channel opened: ${
          hint("channel", this.#options.initiator, this.#meetingPoint())
        }`,
      );
      return { error, conclusive: true };
    }
    return this.#handshakeFailed(state);
  }

  /**
   * The error of a DTLS handshake that failed over a working path, from what
   * was observed: the other peer's certificate as the handshake saw it (where
   * the implementation tells) compared with the fingerprint it signalled.
   * Only a fingerprint that was compared and differs names an alteration.
   */
  #handshakeFailed(state: string): { error: ConnectError; conclusive: boolean } {
    const pc = this.#pc;
    const after = this.#iceConnectedAt === undefined
      ? "after a network path was found"
      : `${Math.max(0, Date.now() - this.#iceConnectedAt)} ms after a network path was found`;
    const theirs = this.#options.initiator ? "answer" : "offer";
    let seen: { algorithm: string; value: string } | undefined;
    try {
      seen = pc?.remoteCertificateFingerprint?.();
    } catch {
      seen = undefined;
    }
    const signalled = new Map<string, string>();
    for (
      const [, algorithm, value] of (pc?.remoteDescription?.sdp ?? "").matchAll(
        /^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\r?$/gm,
      )
    ) signalled.set(algorithm.toLowerCase(), value.toUpperCase());
    const algorithm = seen?.algorithm.toLowerCase();
    const expected = algorithm === undefined ? undefined : signalled.get(algorithm);
    if (seen && expected !== undefined && expected !== seen.value.toUpperCase()) {
      const sealed =
        (this.#options.signaling as { authenticated?: unknown }).authenticated === true;
      const error = new ConnectError(
        "dtls",
        `Cannot connect as the other peer's certificate does not match the fingerprint in the ${theirs} it signalled (${algorithm} ${seen.value.toUpperCase()} in the handshake, ${expected} signalled): ${
          sealed
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

  #channelRefused(): ConnectError {
    return new ConnectError(
      "channel",
      'Cannot connect as the other peer reset the "mcp" data channel before it opened: it refuses the channel, or numbers its channels by its ICE role instead of its DTLS role (aiortc does when made the DTLS client); check that the other peer is an MCP WebRTC peer',
    );
  }
}

function channelOf(event: Event): DataChannelLike {
  return (event as unknown as { channel: DataChannelLike }).channel;
}

function parseCandidate(value: unknown): IceCandidateInit {
  const c = value as IceCandidateInit | null;
  if (
    typeof c !== "object" || c === null || typeof c.candidate !== "string" ||
    c.candidate.length > 1024 ||
    (c.sdpMid != null && typeof c.sdpMid !== "string") ||
    (c.sdpMLineIndex != null && !Number.isInteger(c.sdpMLineIndex))
  ) {
    throw new SignalRefusedError(
      "Refused an ICE candidate as it is not an RTCIceCandidateInit ({ candidate: string, sdpMid?, sdpMLineIndex? })",
    );
  }
  return {
    candidate: c.candidate,
    sdpMid: c.sdpMid ?? null,
    sdpMLineIndex: c.sdpMLineIndex ?? null,
  };
}

/** The negotiated SCTP max message size of a connected peer connection. */
export function readMaxMessageSize(pc: PeerConnectionLike): number {
  const size = pc.sctp?.maxMessageSize ??
    (pc as { ext_maxMessageSize?: number }).ext_maxMessageSize;
  return typeof size === "number" && size > 0 && Number.isFinite(size)
    ? size
    : FALLBACK_MAX_MESSAGE_SIZE;
}

function stageName(stage: ConnectStage): string {
  return {
    signaling: "signalling exchange",
    ice: "ICE connectivity check",
    dtls: "DTLS handshake",
    channel: "data channel opening",
  }[stage];
}

function hint(stage: ConnectStage, initiator: boolean, meetingPoint: string): string {
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

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The STUN/TURN servers a signalling channel hands out: asked for where it
 * can (a room mints TURN credentials only on request), else as it holds them.
 */
function handedOutIceServers(signaling: unknown): Promise<IceServer[] | undefined> {
  const source = signaling as {
    iceServers?: IceServer[];
    requestIceServers?: () => Promise<IceServer[] | undefined>;
  };
  return typeof source.requestIceServers === "function"
    ? source.requestIceServers()
    : Promise.resolve(source.iceServers);
}
