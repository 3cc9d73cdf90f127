/**
 * One `RTCPeerConnection`, its negotiation over a {@linkcode Signaling} and its
 * lifetime. Private to the package: the transports are the public face.
 *
 * @module
 */

import {
  ANSWERER_HOLD_LIMIT,
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  FALLBACK_MAX_MESSAGE_SIZE,
} from "./constants.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";
import { ConnectError, type ConnectStage, WebRTCTransportError } from "./errors.ts";
import type { Signaling, SignalingMessage } from "./signaling/signaling.ts";

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

/** Settings of one peer connection. */
export interface PeerOptions {
  signaling: Signaling;
  initiator: boolean;
  iceServers: IceServer[];
  rtcConfiguration: Record<string, unknown>;
  RTCPeerConnection?: PeerConnectionConstructor;
  connectTimeout: number;
  /** Whether the connect timeout starts only when the first signalling message arrives. */
  waitForOffer: boolean;
  /** Called once per step of connection setup. */
  onstep?: (step: ConnectStep) => void;
  /**
   * Called synchronously when the `mcp` channel exists (before it opens), so
   * the caller can listen before any frame can arrive.
   */
  onchannel?: (channel: DataChannelLike, peerSpeaksFraming: boolean) => void;
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
  /** The other side's address and port, as seen from here. */
  readonly remoteAddress?: string;
}

/** What a completed connection yields. */
export interface Connected {
  channel: DataChannelLike;
  /** Whether the other side announced this module's framing. */
  peerSpeaksFraming: boolean;
}

const MAX_SDP_LENGTH = 64 * 1024;
const MAX_QUEUED_CANDIDATES = 64;

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
    const polyfill = await import("node-datachannel/polyfill");
    return polyfill.RTCPeerConnection as unknown as PeerConnectionConstructor;
  } catch (cause) {
    throw new WebRTCTransportError(
      "Cannot create a peer connection as this runtime has no RTCPeerConnection and node-datachannel could not be loaded: install node-datachannel (Deno needs --allow-ffi --allow-read), or pass the RTCPeerConnection option",
      { cause },
    );
  }
}

/**
 * One negotiated peer connection. `connect()` resolves with the open `mcp`
 * channel; `onclose` fires once if the connection is lost or closed.
 */
export class Peer {
  readonly #options: PeerOptions;
  #pc?: PeerConnectionLike;
  #channel?: DataChannelLike;
  #queuedCandidates: IceCandidateInit[] = [];
  #remoteSet = false;
  #closed = false;
  #connected = false;
  #fail?: (error: Error) => void;
  #timer?: ReturnType<typeof setTimeout>;
  #heardFromPeer = false;
  #pcClosed?: Promise<void>;
  #channelClosed?: Promise<void>;
  /** The first signalling message refused, to explain a timeout. */
  #refused?: Error;
  #steps = new Set<ConnectStep>();
  /** Local candidates not sent yet; see #releaseCandidates. */
  #heldCandidates?: SignalingMessage[] = [];
  #candidateTimer?: ReturnType<typeof setTimeout>;
  #candidatesDue?: number;
  /** Outgoing signalling, in order, once signalling has started. */
  #outbox: Promise<void> = Promise.resolve();

  /** Called once when the connection is gone (after `connect()` resolved). */
  onclose?: (error?: Error) => void;
  /** Called for a signalling message that was refused; the connection goes on. */
  onerror?: (error: Error) => void;

  constructor(options: PeerOptions) {
    this.#options = options;
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
    return {
      localCandidateType: local?.candidateType as string | undefined,
      remoteCandidateType: remote?.candidateType as string | undefined,
      remoteAddress: address === undefined ? undefined : `${address}:${remote?.port}`,
    };
  }

  /** Negotiates and resolves with the open channel. */
  async connect(): Promise<Connected> {
    const options = this.#options;
    const Ctor = await resolvePeerConnection(options.RTCPeerConnection);
    if (this.#closed) throw new WebRTCTransportError("Cannot connect as the transport was closed");
    const pc = new Ctor({ iceServers: options.iceServers, ...options.rtcConfiguration });
    this.#pc = pc;
    this.#pcClosed = released(pc, "connectionstatechange", () => pc.connectionState === "closed");
    const signaling = options.signaling;

    const opened = new Promise<Connected>((resolve, reject) => {
      this.#fail = reject;
      const onChannel = (channel: DataChannelLike) => {
        this.#channel = channel;
        this.#channelClosed = released(channel, "close", () => true);
        const peerSpeaksFraming = !options.initiator &&
          (channel as { protocol?: string }).protocol === CHANNEL_PROTOCOL;
        options.onchannel?.(channel, peerSpeaksFraming);
        const open = () => {
          channel.removeEventListener("open", open);
          this.#connected = true;
          clearTimeout(this.#timer);
          this.#step("channel");
          resolve({ channel, peerSpeaksFraming });
        };
        if (channel.readyState === "open") open();
        else channel.addEventListener("open", open);
      };
      if (options.initiator) {
        onChannel(
          pc.createDataChannel(CHANNEL_LABEL, {
            ordered: true,
            protocol: CHANNEL_PROTOCOL,
          }) as DataChannelLike,
        );
      } else {
        pc.addEventListener("datachannel", (event) => {
          const channel = (event as unknown as { channel: DataChannelLike }).channel;
          if (channel.label === CHANNEL_LABEL && !this.#channel) onChannel(channel);
          else channel.close();
        });
      }
    });
    opened.catch(() => {});

    pc.addEventListener("icecandidate", (event) => {
      const candidate = (event as unknown as { candidate?: IceCandidateInit | null }).candidate;
      if (!candidate?.candidate) return;
      const message = {
        type: "candidate",
        candidate: {
          candidate: candidate.candidate,
          sdpMid: candidate.sdpMid ?? null,
          sdpMLineIndex: candidate.sdpMLineIndex ?? null,
        },
      };
      // Held until the other side can use them; see #releaseCandidates.
      if (this.#heldCandidates) this.#heldCandidates.push(message);
      else this.#signal(message);
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      const state = pc.iceConnectionState;
      if (state === "connected" || state === "completed") {
        this.#step("ice");
        this.#releaseCandidates();
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "connected") {
        this.#step("ice");
        this.#step("dtls");
      }
      if (state !== "failed" && state !== "closed") return;
      if (this.#connected) this.#lost(`the peer connection is ${state}`);
      else {
        this.#abort(
          new ConnectError(
            this.#stage(),
            `Cannot connect as the peer connection ${state} during the ${this.#stage()} stage: ${
              hint(this.#stage(), options.initiator)
            }`,
          ),
        );
      }
    });

    signaling.onmessage = (message) => this.#onSignal(message);
    signaling.onclose = () => {
      if (!this.#connected) {
        this.#abort(
          new ConnectError(
            "signaling",
            "Cannot connect as the signalling channel closed before the connection was established: check that the signalling service is reachable and the other peer is running",
          ),
        );
      }
    };
    signaling.onerror = (error) => {
      this.#refused ??= error;
      this.onerror?.(error);
    };

    if (!options.waitForOffer) this.#armTimeout();
    // Not awaited: a signalling that never delivers (a peer that never says
    // hello) must not hold connect() past the timeout, which rejects `opened`.
    void this.#negotiate(pc).catch((cause: unknown) =>
      this.#abort(
        cause instanceof ConnectError ? cause : new ConnectError(
          "signaling",
          `Cannot connect through signalling: ${messageOf(cause)}`,
          { cause },
        ),
      )
    );
    return await opened;
  }

  /** Starts signalling and, as the offerer, sends the offer. */
  async #negotiate(pc: PeerConnectionLike): Promise<void> {
    // Candidates gathered meanwhile wait in the outbox until signalling is up.
    const started = Promise.resolve(this.#options.signaling.start?.());
    this.#outbox = started.catch(() => {});
    await started;
    this.#step("signaling");
    if (this.#options.initiator && !this.#closed) {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await this.#send({ type: "offer", sdp: offer.sdp ?? pc.localDescription?.sdp ?? "" });
      this.#step("offer");
    }
  }

  /**
   * Closes the channel and the connection, and tells the other peer; resolves
   * once the goodbye is handed to signalling (at most 500 ms).
   */
  close(reason = "closed"): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#candidateTimer);
    this.#fail?.(new WebRTCTransportError("Cannot connect as the transport was closed"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bye = Promise.race([
      this.#options.signaling.send({ type: "bye", reason }).catch(() => {}),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 500))),
    ]).finally(() => clearTimeout(timer));
    return Promise.all([bye, this.#release()]).then(() => {});
  }

  /**
   * Closes the channel, then the connection, each time waiting (boundedly) for
   * its `close` event: node-datachannel releases its callbacks into JavaScript
   * only then. Closing the connection before the channel has closed can leave
   * the channel's sockets open and the process running; an isolate or process
   * that ends before the release may crash.
   */
  async #release(): Promise<void> {
    const channel = this.#channel;
    if (channel && channel.readyState !== "closed") {
      try {
        // A channel that never opened keeps node-datachannel's process alive unless closed.
        channel.close();
      } catch {
        // Already closing.
      }
      await settle(this.#channelClosed, 500);
    }
    try {
      this.#pc?.close();
    } catch {
      // Already closed.
    }
    await settle(this.#pcClosed, 1_000);
    // Let the native side finish the callback that dispatched the event.
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
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

  #armTimeout(): void {
    if (this.#timer !== undefined || this.#connected) return;
    const timeout = this.#options.connectTimeout;
    this.#timer = setTimeout(() => {
      const stage = this.#stage();
      const refused = this.#refused;
      this.#abort(
        new ConnectError(
          stage,
          `Cannot connect as the ${stageName(stage)} did not complete within ${timeout} ms: ${
            refused && stage === "signaling"
              ? `signalling messages were refused (${refused.message})`
              : hint(stage, this.#options.initiator)
          }`,
          refused ? { cause: refused } : undefined,
        ),
      );
    }, timeout);
  }

  #stage(): ConnectStage {
    const pc = this.#pc;
    if (!pc || !this.#remoteSet) return "signaling";
    if (pc.iceConnectionState !== "connected" && pc.iceConnectionState !== "completed") {
      return "ice";
    }
    if (pc.connectionState !== "connected") return "dtls";
    return "channel";
  }

  #abort(error: Error): void {
    if (this.#connected || this.#closed) return;
    this.#fail?.(error);
    this.close("connect failed");
  }

  #lost(why: string): void {
    if (this.#closed) return;
    this.close(why);
    this.onclose?.(new WebRTCTransportError(`The connection to the peer was lost: ${why}`));
  }

  /**
   * Sends the local candidates held so far, and any later ones at once.
   *
   * The offerer sends its own as soon as it has applied the answer. The
   * answerer, the DTLS server (the offer is rewritten to make the offerer the
   * DTLS client), holds its own until it has applied the offerer's first
   * candidate (and so started checking it), or its ICE is connected, or
   * {@linkcode ANSWERER_HOLD_LIMIT} passed. Two races of libdatachannel 0.24
   * make this order matter:
   * - it starts DTLS as soon as ICE connects; an offerer reached by the
   *   answerer's checks before it applied the answer has no fingerprint to
   *   check, and the handshake fails ("certificate verify failed"): the
   *   answerer cannot check before it has the offerer's candidates, sent only
   *   once the answer is applied;
   * - the DTLS client must connect after the DTLS server, or its first flight
   *   is dropped and resent only after 1 s. The answerer's checks leave a
   *   signalling trip before the offerer can check it, so the answerer
   *   connects first: on one host, on a LAN, and with the answerer (the
   *   desktop) behind a NAT.
   */
  /** Releases the held candidates after `ms`, or sooner if already due sooner. */
  #holdCandidates(ms: number): void {
    if (!this.#heldCandidates) return;
    const due = Date.now() + ms;
    if (this.#candidatesDue !== undefined && this.#candidatesDue <= due) return;
    clearTimeout(this.#candidateTimer);
    this.#candidatesDue = due;
    this.#candidateTimer = setTimeout(() => this.#releaseCandidates(), ms);
  }

  #releaseCandidates(): void {
    clearTimeout(this.#candidateTimer);
    const held = this.#heldCandidates ?? [];
    this.#heldCandidates = undefined;
    for (const message of held) this.#signal(message);
  }

  /** Sends one message after every earlier one; rejects if it fails. */
  #send(message: SignalingMessage): Promise<void> {
    const sent = this.#outbox.then(() => this.#options.signaling.send(message));
    this.#outbox = sent.catch(() => {});
    return sent;
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

  async #onSignal(message: SignalingMessage): Promise<void> {
    if (this.#closed) return;
    const pc = this.#pc!;
    if (!this.#heardFromPeer) {
      this.#heardFromPeer = true;
      this.#armTimeout();
    }
    try {
      switch (message.type) {
        case "offer":
        case "answer": {
          const expected = this.#options.initiator ? "answer" : "offer";
          if (message.type !== expected) {
            throw new TypeError(
              `Refused a signalling ${message.type} as this peer ${
                this.#options.initiator ? "made the offer" : "expects an offer"
              }: both sides may be set as initiator, or neither`,
            );
          }
          if (this.#remoteSet) {
            throw new TypeError(
              `Refused a second ${message.type}: renegotiation is not supported; start a new connection`,
            );
          }
          const sdp = message.sdp;
          if (typeof sdp !== "string" || sdp.length === 0 || sdp.length > MAX_SDP_LENGTH) {
            throw new TypeError(
              `Refused a signalling ${message.type} as its 'sdp' is not a string of 1 to ${MAX_SDP_LENGTH} characters`,
            );
          }
          this.#remoteSet = true;
          this.#step(message.type);
          if (message.type === "offer") {
            // The offerer is the DTLS client; see #releaseCandidates.
            await pc.setRemoteDescription({
              type: "offer",
              sdp: sdp.replace(/^a=setup:actpass(?=\r?$)/gm, "a=setup:active"),
            });
            const answer = await pc.createAnswer();
            await pc.setLocalDescription(answer);
            this.#signal({ type: "answer", sdp: answer.sdp ?? pc.localDescription?.sdp ?? "" });
            this.#step("answer");
            // Should no candidate ever come (they were in the offer, say).
            this.#holdCandidates(ANSWERER_HOLD_LIMIT);
          } else {
            await pc.setRemoteDescription({ type: "answer", sdp });
            this.#releaseCandidates();
          }
          const queued = this.#queuedCandidates;
          this.#queuedCandidates = [];
          for (const candidate of queued) await this.#addCandidate(candidate);
          if (!this.#options.initiator && queued.length > 0) this.#releaseCandidates();
          return;
        }
        case "candidate": {
          const candidate = parseCandidate(message.candidate);
          if (!this.#remoteSet) {
            if (this.#queuedCandidates.length >= MAX_QUEUED_CANDIDATES) {
              throw new RangeError(
                `Refused an ICE candidate as ${MAX_QUEUED_CANDIDATES} are already waiting for the remote description`,
              );
            }
            this.#queuedCandidates.push(candidate);
          } else {
            await this.#addCandidate(candidate);
            // The answerer's checks to it are on their way: ours may follow.
            if (!this.#options.initiator) this.#releaseCandidates();
          }
          return;
        }
        case "bye":
          if (this.#connected) this.#lost("the peer said goodbye");
          else {
            const stage = this.#stage();
            const reason = typeof message.reason === "string"
              ? message.reason.slice(0, 200)
              : "no reason given";
            this.#abort(
              new ConnectError(
                stage,
                stage === "signaling"
                  ? `Cannot connect as the other peer gave up: ${reason}`
                  : `Cannot connect as the other peer gave up (${reason}) during the ${
                    stageName(stage)
                  }: ${hint(stage, this.#options.initiator)}`,
              ),
            );
          }
          return;
        default:
          throw new TypeError(
            `Refused a signalling message of unknown type ${
              JSON.stringify(String(message.type)).slice(0, 80)
            }: expected offer, answer, candidate or bye`,
          );
      }
    } catch (error) {
      if (this.#closed) return;
      if (error instanceof TypeError || error instanceof RangeError) {
        const refused = new WebRTCTransportError(error.message, { cause: error });
        this.#refused ??= refused;
        this.onerror?.(refused);
      } else {
        this.#abort(
          new ConnectError(
            "signaling",
            `Cannot connect as the ${message.type} from the other peer was refused: ${
              messageOf(error)
            }`,
            { cause: error },
          ),
        );
      }
    }
  }

  async #addCandidate(candidate: IceCandidateInit): Promise<void> {
    try {
      await this.#pc!.addIceCandidate(candidate);
    } catch (error) {
      this.onerror?.(
        new WebRTCTransportError(
          `Ignored an ICE candidate the connection refused: ${messageOf(error)}`,
          {
            cause: error,
          },
        ),
      );
    }
  }
}

/** Waits for `promise`, at most `ms` milliseconds. */
async function settle(promise: Promise<void> | undefined, ms: number): Promise<void> {
  if (!promise) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Resolves on the first `type` event after which `done()` holds. */
function released(
  target: { addEventListener(type: string, listener: () => void): void },
  type: string,
  done: () => boolean,
): Promise<void> {
  return new Promise((resolve) => {
    target.addEventListener(type, () => {
      if (done()) resolve();
    });
  });
}

function parseCandidate(value: unknown): IceCandidateInit {
  const c = value as IceCandidateInit | null;
  if (
    typeof c !== "object" || c === null || typeof c.candidate !== "string" ||
    c.candidate.length > 1024 ||
    (c.sdpMid != null && typeof c.sdpMid !== "string") ||
    (c.sdpMLineIndex != null && !Number.isInteger(c.sdpMLineIndex))
  ) {
    throw new TypeError(
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

function hint(stage: ConnectStage, initiator: boolean): string {
  switch (stage) {
    case "signaling":
      return initiator
        ? "no answer came from the other peer; check that it is running and uses the same signalling room or ticket"
        : "the offer or its candidates did not arrive; check that both peers use the same signalling room or ticket";
    case "ice":
      return "no network path between the peers; configure a TURN server (iceServers) or allow UDP between them";
    case "dtls":
      return "a path was found but the encrypted session was not established; something on the path may drop large UDP packets, try a TURN server over TCP or TLS";
    case "channel":
      return 'the "mcp" data channel did not open; the other peer may not be an MCP WebRTC peer';
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
