/**
 * One `RTCPeerConnection` and its lifetime: {@linkcode Peer} makes the
 * connection, runs the negotiation (`negotiate.ts`) over a `Signaling`, keeps
 * the record of what it observed for the diagnosis (`diagnosis.ts`) and the
 * retry decision (`retry.ts`), and releases the connection when it ends.
 *
 * Over 400 lines, as one class: what is left here is the state of one
 * connection (private fields the diagnosis snapshot reads) and the handlers
 * of its events and its signalling, which set that state; every step that
 * does not need it is a file of its own.
 *
 * @module
 */

import { abortable, delay, nextEvent, once, settle, withResolvers } from "../_async.ts";
import { type Clock, SYSTEM_CLOCK } from "../_clock.ts";
import { withPathMtu } from "../_mtu.ts";
import {
  BYE_DRAIN_TIMEOUT,
  BYE_TIMEOUT,
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  CHANNEL_RELEASE_TIMEOUT,
  CONNECTION_RELEASE_TIMEOUT,
  DIAGNOSIS_WAIT,
} from "../constants.ts";
import type { DataChannelLike } from "../data_channel_transport.ts";
import {
  ConnectError,
  PeerRefusalError,
  SignalRefusedError,
  WebRTCTransportError,
} from "../errors.ts";
import { isLibdatachannel, isNodeDataChannel, resolvePeerConnection } from "../runtime.ts";
import type { SignalingMessage } from "../signaling/signaling.ts";
import { Candidates } from "./candidates.ts";
import {
  channelRefused,
  connectionFailed,
  goodbyeError,
  type Observed,
  refusedByPeer,
  signalingClosed,
  timedOut,
} from "./diagnosis.ts";
import { answer, type Negotiation, type NegotiationState, offer } from "./negotiate.ts";
import { readConnectionPath } from "./path.ts";
import { retryable } from "./retry.ts";
import { parseCandidate, readDescription } from "./sdp.ts";
import {
  type Connected,
  type ConnectionPath,
  type ConnectStep,
  DEFAULT_ICE_SERVERS,
  type IceCandidateInit,
  type IceServer,
  type PeerConnectionLike,
  type PeerOptions,
} from "./types.ts";

/**
 * One peer connection: the negotiation over a `Signaling`, then the
 * connection's lifetime. `connect()` resolves with the open `mcp` channel;
 * after it, {@linkcode Peer.createChannel} opens further channels and
 * {@linkcode Peer.ondatachannel} receives the other side's; `onclose` fires
 * once if the connection is lost.
 */
export class Peer {
  readonly #options: PeerOptions;
  readonly #clock: Clock;
  #pc?: PeerConnectionLike;
  /** Aborted with the reason the negotiation cannot go on (or the peer closed). */
  readonly #failure = new AbortController();
  /** Aborted with the timeout's diagnosis when the connect timeout passes. */
  readonly #timeout = new AbortController();
  #timer?: unknown;
  readonly #candidates: Candidates;
  readonly #remoteDescription = withResolvers<{ type: string; sdp: string }>();
  readonly #heard = withResolvers<void>();
  readonly #iceUp = withResolvers<void>();
  /** The answerer's `mcp` channel, the first the offerer opens. */
  readonly #primary = withResolvers<DataChannelLike>();
  /** What the negotiation learnt. */
  readonly #state: NegotiationState & { iceConnected: boolean } = {
    ours: false,
    pathFound: false,
    remoteSet: false,
    iceConnected: false,
  };
  #descriptionReceived = false;
  #iceConnectedAt?: number;
  /** The first remote candidate applied (its `candidate` line). */
  #firstRemoteCandidate?: string;
  /** Whether the connection failed (not a timeout, not the other peer's goodbye). */
  #broke = false;
  /** Whether closing says no goodbye (the connect is to be tried again, or the other peer left). */
  #quiet = false;
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
  #primaryTaken = false;
  #pcClosed?: Promise<unknown>;
  /** Whether the connection is node-datachannel's, whose close ends with an event. */
  #libdatachannel = false;
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
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#failure.signal.addEventListener("abort", () => this.#candidates.close());
    this.#candidates = new Candidates({
      send: (candidate) => this.#signal({ type: "candidate", candidate }),
      apply: (candidate) => this.#applyCandidate(candidate),
    });
  }

  /** The underlying connection, once created. */
  get connection(): PeerConnectionLike | undefined {
    return this.#pc;
  }

  /** Whether the other peer's offer or answer says it is of this module. */
  get ours(): boolean {
    return this.#state.ours;
  }

  /** The network path in use, once connected (from `getStats()`). */
  async path(): Promise<ConnectionPath | undefined> {
    const stats = await this.#pc?.getStats?.().catch(() => undefined);
    return readConnectionPath(stats, {
      firstRemoteCandidate: this.#firstRemoteCandidate,
      initiator: this.#options.initiator,
      pathFound: this.#state.pathFound,
    });
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
    const signal = AbortSignal.any([this.#failure.signal, this.#timeout.signal]);
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
      // Signalling bounds its own start (a room's wait for its host: `--wait`);
      // the connect timeout counts from there.
      const started = abortable(this.#startSignaling(), signal).then(() => this.#step("signaling"));
      // Whoever waits for it next reports its failure; this keeps it handled meanwhile.
      started.catch(() => {});
      // An offerer with no ICE servers makes its connection and offer while
      // signalling starts: host candidates do not age while it waits for the
      // other peer, where a server's reflexive address or relay might.
      if (!options.initiator || iceServers.length > 0) await started;
      const negotiation = this.#negotiation(Ctor, iceServers, started);
      const channel = options.initiator
        ? await offer(negotiation, signal)
        : await answer(negotiation, signal);
      this.#connected = true;
      this.#step("channel");
      const peerSpeaksFraming = !options.initiator &&
        (channel as { protocol?: string }).protocol === CHANNEL_PROTOCOL;
      return { channel, peerSpeaksFraming };
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
      if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    }
  }

  /** What the negotiation is given: the connection's making, its channels, signalling, the timeout. */
  #negotiation(
    Ctor: NonNullable<PeerOptions["RTCPeerConnection"]>,
    iceServers: IceServer[],
    signalingStarted: Promise<void>,
  ): Negotiation {
    const options = this.#options;
    return {
      retry: options.retry === true,
      waitForPeer: options.waitForPeer,
      signalingStarted,
      native: isNodeDataChannel(Ctor),
      candidates: this.#candidates,
      state: this.#state,
      clock: this.#clock,
      remoteDescription: this.#remoteDescription.promise,
      heard: this.#heard.promise,
      primary: this.#primary.promise,
      iceUp: this.#iceUp.promise,
      // Made once it is known whether the other peer takes large packets: the
      // answerer reads it in the offer, the offerer cannot know (see LARGE_PACKETS_MARK).
      connection: (peerTakesLargePackets) => {
        if (this.#closed) throw this.#closedError;
        const config = withPathMtu(options.rtcConfiguration, iceServers, peerTakesLargePackets);
        const pc = new Ctor({ iceServers, ...config });
        this.#pc = pc;
        this.#libdatachannel = isLibdatachannel(pc);
        this.#pcClosed = nextEvent(pc, "connectionstatechange", {
          accept: () => pc.connectionState === "closed",
        });
        this.#watch(pc);
        return pc;
      },
      adopt: (channel) => this.#adopt(channel),
      send: (message) => this.#send(message),
      step: (step) => this.#step(step),
      armTimeout: () => {
        const timeout = options.connectTimeout;
        this.#timer ??= this.#clock.setTimeout(
          () => this.#timeout.abort(timedOut(this.#observed(), timeout)),
          timeout,
        );
      },
    };
  }

  /** What was observed so far, for a diagnosis. */
  #observed(): Observed {
    const pc = this.#pc;
    let remoteCertificate: Observed["remoteCertificate"];
    try {
      remoteCertificate = pc?.remoteCertificateFingerprint?.();
    } catch {
      remoteCertificate = undefined;
    }
    const signaling = this.#options.signaling;
    return {
      initiator: this.#options.initiator,
      meetingPoint: signaling.meetingPoint,
      sealed: (signaling as { authenticated?: unknown }).authenticated === true,
      remoteSet: pc !== undefined && this.#state.remoteSet,
      iceConnected: this.#state.iceConnected,
      iceConnectedAt: this.#iceConnectedAt,
      pathFound: this.#state.pathFound,
      negotiatedAt: this.#state.negotiatedAt,
      dtlsUp: this.#steps.has("dtls"),
      connectionState: pc?.connectionState,
      remoteSdp: pc?.remoteDescription?.sdp,
      remoteCertificate,
      refused: this.#refused,
      unexplained: this.#unexplained,
      ours: this.#state.ours,
      broke: this.#broke,
      now: this.#clock.now(),
    };
  }

  /**
   * Whether a failed connect may be tried once more with a new offer (see
   * `retryable` in `retry.ts`); only on the first of `PathPeer`'s attempts.
   */
  retryable(error: unknown): boolean {
    return retryable(this.#observed(), this.#options.mayRetry === true, error);
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

  /** Listens to the connection for what ends the negotiation or the connection. */
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
    pc.addEventListener("iceconnectionstatechange", (event) => {
      // The state of this change where the event carries it (`runtime.ts`):
      // the connection's may have moved on by the time it is dispatched.
      const state = (event as { state?: string }).state ?? pc.iceConnectionState;
      if (state !== "connected" && state !== "completed") return;
      this.#state.iceConnected = true;
      this.#iceConnectedAt ??= this.#clock.now();
      this.#iceUp.resolve();
      this.#step("ice");
    });
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "connected") {
        this.#state.iceConnected = true;
        this.#step("ice");
        this.#step("dtls");
      }
      if (state !== "failed" && state !== "closed") return;
      if (this.#connected) return void this.#drained(`the peer connection is ${state}`);
      // Not when this side closed it (after a timeout, say).
      if (!this.#closed) this.#broke = true;
      if (!this.#state.iceConnected && this.#state.pathFound) {
        // Our ICE event may come after the failure (node-datachannel reads the
        // state when it dispatches): the answerer's check proved the path.
        this.#state.iceConnected = true;
        this.#iceConnectedAt ??= this.#state.negotiatedAt;
      }
      const { error, conclusive } = connectionFailed(this.#observed(), state);
      if (conclusive || this.#closed || this.retryable(error)) return this.#fail(error);
      // What failed the handshake was seen by the other peer (its check of
      // our certificate, say): its goodbye, if it comes soon, says it.
      this.#unexplained = error;
      const timer = this.#clock.setTimeout(() => this.#fail(error), DIAGNOSIS_WAIT);
      this.#failure.signal.addEventListener("abort", () => this.#clock.clearTimeout(timer), {
        once: true,
      });
    });
    pc.addEventListener("datachannel", (event) => {
      const channel = (event as unknown as { channel: DataChannelLike }).channel;
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
    signaling.onclose = () => this.#fail(signalingClosed());
    signaling.onerror = (error) => {
      // Closed here, what signalling says of the last frames (a goodbye the
      // room refused, its peer having left) changes nothing.
      if (this.#closed) return;
      // The other peer refused a message of ours: it is lost, the connect cannot complete.
      if (error instanceof PeerRefusalError) {
        return this.#fail(refusedByPeer(this.#observed(), error));
      }
      this.#refused ??= error;
      this.onerror?.(error);
    };
  }

  /** Takes the negotiation's `mcp` channel: the caller hears of it before it can open. */
  #adopt(channel: DataChannelLike): DataChannelLike {
    this.#track(channel);
    channel.addEventListener("close", () => {
      if (!this.#connected) this.#fail(channelRefused());
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
        case "answer": {
          const description = readDescription(
            message,
            this.#options.initiator,
            this.#descriptionReceived,
          );
          this.#descriptionReceived = true;
          this.#remoteDescription.resolve(description);
          return;
        }
        case "candidate":
          void this.#candidates.remote(parseCandidate(message.candidate));
          return;
        case "bye":
          if (this.#connected) return void this.#goodbye();
          return this.#fail(goodbyeError(this.#observed(), message.reason));
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

  /**
   * Applies a remote candidate (the remote description is; `Candidates`
   * queues it before). Never rejects: a candidate the connection cannot take
   * is reported to `onerror` and dropped.
   *
   * A connection that closed or failed underneath (the other peer's transport
   * gone) keeps its remote description and loses its ICE transport before the
   * peer hears of it: libdatachannel throws for a candidate then ("Got a
   * remote candidate without ICE transport"), so it is not handed over.
   */
  async #applyCandidate(candidate: IceCandidateInit): Promise<void> {
    const pc = this.#pc;
    let state: string | undefined;
    try {
      state = pc?.connectionState;
    } catch {
      state = "closed";
    }
    if (!pc || state === "closed" || state === "failed") {
      return this.#report(
        new WebRTCTransportError(
          `Dropped an ICE candidate as the peer connection is ${
            pc ? `${state}: it can no longer use one` : "not made yet"
          }`,
        ),
      );
    }
    this.#firstRemoteCandidate ??= candidate.candidate;
    try {
      await pc.addIceCandidate(candidate);
    } catch (error) {
      this.#report(
        new WebRTCTransportError(
          `Ignored an ICE candidate the connection refused: ${messageOf(error)}`,
          { cause: error },
        ),
      );
    }
  }

  /** Hands `error` to `onerror`; a handler's own failure must not break the connection. */
  #report(error: Error): void {
    try {
      this.onerror?.(error);
    } catch {
      // The observer's failure is its own.
    }
  }

  /** Ends the negotiation with `error` (once; never after it succeeded). */
  #fail(error: Error): void {
    if (this.#connected || this.#failure.signal.aborted) return;
    this.#failure.abort(error);
  }

  /**
   * The other peer said goodbye. It closed its channels before, but the
   * goodbye may come first (signalling in the same process, or a busy event
   * loop): what they still carry is read, and their close seen, before the
   * connection is taken as gone (at most {@linkcode BYE_DRAIN_TIMEOUT}).
   */
  async #goodbye(): Promise<void> {
    // It has left: a goodbye back, whatever closes this side, would reach no one.
    this.#quiet = true;
    await this.#drained("the peer said goodbye");
  }

  /**
   * The connection is gone (`why`), but its channels may still hold messages
   * not yet read here: node-datachannel calls back the connection's state
   * and each channel's messages on queues of their own, so its close can
   * come first. Their close is awaited (at most
   * {@linkcode BYE_DRAIN_TIMEOUT}), then the connection is taken as lost.
   */
  async #drained(why: string): Promise<void> {
    const open = [...this.#channels].filter((channel) => channel.readyState !== "closed");
    await settle(
      Promise.all(open.map((channel) => nextEvent(channel, "close"))),
      BYE_DRAIN_TIMEOUT,
    );
    this.#lost(why);
  }

  #lost(why: string): void {
    if (this.#closed) return;
    this.close(why);
    this.onclose?.(new WebRTCTransportError(`The connection to the peer was lost: ${why}`));
  }

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
    const pc = this.#pc;
    try {
      pc?.close();
    } catch {
      // Already closed.
    }
    // node-datachannel's connection says it closed by an event, once it has
    // released its callbacks into JavaScript. The standard's close() fires
    // none: a browser's connection is closed when close() returns (it made
    // every browser's close, and a refused connect, wait the whole bound).
    if (pc && (this.#libdatachannel || pc.connectionState !== "closed")) {
      await settle(this.#pcClosed, CONNECTION_RELEASE_TIMEOUT);
    }
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
