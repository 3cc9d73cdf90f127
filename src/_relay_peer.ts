/**
 * The choice of path: a direct WebRTC connection ({@linkcode Peer}) by
 * default, the relay through the signalling room where WebRTC cannot run or
 * finds no path. {@linkcode PathPeer} has the shape of `Peer` that
 * `WebRTCConnection` and `WebRTCTransport` use, so everything above works on
 * either path.
 *
 * When the relay is taken:
 *
 * - at once, where this runtime has no `RTCPeerConnection` (and node-datachannel
 *   cannot load), or `relayAfter` is `0`;
 * - on the dialling side, when ICE has found no path `relayAfter` ms after the
 *   answer came (see {@linkcode RELAY_FALLBACK_DELAY}), or failed before;
 * - on either side, when the other side asks for it (its relay hello arrives
 *   before the direct connection is up).
 *
 * Each side then sends a relay hello (its X25519 public key, see
 * `_relay_crypto.ts`, and the window of the link's flow control it grants,
 * see `_relay_link.ts`) through the sealed signalling, answers the other's, and
 * the abandoned direct attempt is closed without a word to the other side.
 * The relay needs authenticated signalling and a carrier that relays (a room);
 * without them it is refused with a {@linkcode RelayError}.
 *
 * @module
 */

import { deadline, settle, withResolvers } from "./_async.ts";
import { readRelayHello, RELAY_HELLO, RelayKeyShare } from "./_relay_crypto.ts";
import { readRelayWindow, type RelayChannel, RelayLink } from "./_relay_link.ts";
import {
  BYE_TIMEOUT,
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  RELAY_FALLBACK_DELAY,
  RELAY_MIN_WINDOW,
  RELAY_WINDOW,
} from "./constants.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";
import { ConnectError, RelayError, SignalRefusedError, WebRTCTransportError } from "./errors.ts";
import {
  type Connected,
  type ConnectionPath,
  Peer,
  type PeerConnectionLike,
  type PeerOptions,
  resolvePeerConnection,
} from "./peer.ts";
import type { RelayCarrier, RelayPipe } from "./signaling/relay_protocol.ts";
import type { Signaling, SignalingMessage } from "./signaling/signaling.ts";

/**
 * The `localCandidateType` and `remoteCandidateType` of a connection on the
 * relay path: the peers' data channels run through the signalling room's
 * WebSocket, sealed end to end.
 */
export const RELAY_PATH_TYPE = "relay-ws";

/**
 * The window this process grants in its relay hellos: {@linkcode RELAY_WINDOW}.
 * The relay benchmark sets it so large that it never binds, to measure what
 * the flow control costs in the same run.
 */
export const relayFlow: { window: number } = { window: RELAY_WINDOW };

/** Options of a {@linkcode PathPeer}: a peer's, and when to take the relay. */
export interface PathPeerOptions extends PeerOptions {
  /**
   * Milliseconds the dialling side waits for ICE after the answer came before
   * it takes the relay; `0` takes the relay at once, `false` never.
   */
  relayAfter?: number | false;
}

/** One connection to the other peer, on whichever path it runs. */
export class PathPeer {
  readonly #options: PathPeerOptions;
  readonly #demux: RelayDemux;
  readonly #attempts: Attempts;
  #direct?: Peer;
  #link?: RelayLink;
  #connected = false;
  #closed = false;
  #closeReason = "closed";
  #failure = new AbortController();
  /** The other side's relay hello, once it came. */
  #hello = withResolvers<SignalingMessage>();
  #helloSent = false;
  /** The window this side granted in its hello. */
  #window = relayFlow.window;
  #share?: Promise<RelayKeyShare>;

  /** Called once when the connection is gone (after `connect()` resolved). */
  onclose?: (error?: Error) => void;
  /** Called for a problem that does not end the connection. */
  onerror?: (error: Error) => void;
  /** Called for each data channel the other side opens beyond the first. */
  ondatachannel?: (channel: DataChannelLike) => void;

  constructor(options: PathPeerOptions) {
    this.#options = options;
    this.#demux = new RelayDemux(options.signaling);
    this.#attempts = new Attempts(this.#demux, options.initiator);
    this.#demux.onhello = (message) => this.#helloReceived(message);
    this.#demux.onbye = (message) => this.#byeReceived(message);
    this.#demux.onrelayclose = () =>
      this.#fail(
        new ConnectError(
          "signaling",
          "Cannot connect over the relay as the signalling channel closed before the relay was set up: check that the signalling service is reachable and the other peer is running",
        ),
      );
    this.#hello.promise.catch(() => {});
  }

  /** The peer connection, on the direct path. */
  get connection(): PeerConnectionLike | undefined {
    return this.#direct?.connection;
  }

  /** Whether the connection runs over the relay. */
  get relayed(): boolean {
    return this.#link !== undefined;
  }

  /**
   * Whether the other peer is known to be of this module: the relay is
   * spoken by it alone; on the direct path, the offer or answer says so.
   */
  get ours(): boolean {
    return this.#link !== undefined || this.#direct?.ours === true;
  }

  /** The path in use: the direct one's candidate types, or {@linkcode RELAY_PATH_TYPE}. */
  async path(): Promise<ConnectionPath | undefined> {
    if (this.#link) {
      return { localCandidateType: RELAY_PATH_TYPE, remoteCandidateType: RELAY_PATH_TYPE };
    }
    return await this.#direct?.path();
  }

  /** Connects on the direct path, or the relay; resolves with the open `mcp` channel. */
  async connect(): Promise<Connected> {
    const options = this.#options;
    let noWebRTC: Error | undefined;
    let Ctor;
    if (options.relayAfter !== 0) {
      try {
        Ctor = await resolvePeerConnection(options.RTCPeerConnection);
      } catch (error) {
        noWebRTC = error as Error;
      }
    }
    if (this.#closed) throw new WebRTCTransportError("Cannot connect as the transport was closed");
    if (options.relayAfter === 0 || noWebRTC) {
      const why = noWebRTC ? "this runtime has no RTCPeerConnection" : "the relay was asked for";
      // What can be told before signalling starts; the room's own answer comes in #relay.
      const refusal = this.#relayRefusal(false);
      if (refusal) {
        throw noWebRTC ? new RelayError(`${refusal.message}`, { cause: noWebRTC }) : refusal;
      }
      await this.#demux.start({ initiator: options.initiator });
      options.onstep?.("signaling");
      return await this.#relay(why);
    }
    return await this.#race(Ctor!);
  }

  /**
   * The direct attempt, raced against the relay's triggers; tried once more
   * with a new offer when it failed in a way both sides retry (see
   * `Peer.retryable`).
   */
  async #race(Ctor: NonNullable<PathPeerOptions["RTCPeerConnection"]>): Promise<Connected> {
    const options = this.#options;
    // Whether the relay can be used is known once signalling has started.
    const relayable = () => this.#relayRefusal() === undefined;
    const after = options.relayAfter === undefined ? RELAY_FALLBACK_DELAY : options.relayAfter;
    const switchTo = withResolvers<string>();
    this.#hello.promise.then(
      () => switchTo.resolve("the other peer asked for the relay"),
      () => {},
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    let iceFound = false;
    let direct: Peer;
    let outcome: { connected: Connected } | { error: Error } | { reason: string };
    for (let attempt = 1;; attempt++) {
      const signaling = this.#attempts.view(attempt);
      direct = new Peer({
        ...options,
        signaling,
        RTCPeerConnection: Ctor,
        mayRetry: attempt === 1,
        retry: attempt > 1,
        onstep: (step) => {
          if (step === "ice") {
            iceFound = true;
            clearTimeout(timer);
          }
          // The clock starts once both descriptions are in place: a signalling
          // exchange that does not complete is not a missing ICE path.
          if (step === "answer" && options.initiator && after !== false && relayable()) {
            clearTimeout(timer);
            timer = setTimeout(
              () => switchTo.resolve(`no ICE path formed within ${after} ms`),
              after,
            );
          }
          options.onstep?.(step);
        },
      });
      this.#direct = direct;
      direct.onerror = (error) => this.onerror?.(error);
      direct.ondatachannel = (channel) => this.ondatachannel?.(channel);
      direct.onclose = (error) => this.onclose?.(error);
      const connecting = direct.connect();
      connecting.catch(() => {});
      // The answering side also tries again when a new offer comes from a
      // peer of this module before its own attempt failed: the offerer saw
      // the failure first.
      type Superseded = { superseded: true };
      const superseded: Promise<Superseded> = !options.initiator && attempt === 1
        ? this.#attempts.retried.then(() =>
          direct.ours ? { superseded: true } : never<Superseded>()
        )
        : never<Superseded>();
      const raced: typeof outcome | Superseded = await Promise.race([
        connecting.then((connected) => ({ connected }), (error: Error) => ({ error })),
        switchTo.promise.then((reason) => ({ reason })),
        superseded,
      ]);
      clearTimeout(timer);
      if ("superseded" in raced) {
        signaling.end();
        direct.onclose = undefined;
        direct.ondatachannel = undefined;
        await direct.close("tried again with a new offer");
        iceFound = false;
        continue;
      }
      outcome = raced;
      if (!("error" in outcome) || this.#closed || !direct.retryable(outcome.error)) break;
      // The other side saw the same failure and waits for a new offer.
      signaling.end();
      direct.onclose = undefined;
      direct.ondatachannel = undefined;
      iceFound = false;
      const failed = outcome.error as ConnectError;
      this.onerror?.(
        new ConnectError(
          failed.stage,
          `${failed.message} (trying once more with a new offer)`,
          { cause: failed },
        ),
      );
    }
    if ("connected" in outcome) {
      this.#connected = true;
      return outcome.connected;
    }
    let reason: string;
    if ("error" in outcome) {
      // ICE gave up before the delay (no candidates at all): the dialling side relays now.
      const iceFailed = outcome.error instanceof ConnectError && outcome.error.stage === "ice";
      if (!iceFailed || !options.initiator || iceFound || this.#closed || !relayable()) {
        throw outcome.error;
      }
      reason = `ICE found no path (${outcome.error.message})`;
    } else reason = outcome.reason;
    // Quietly: the other side moves to the relay too, on our hello.
    this.#demux.mute();
    this.#direct = undefined;
    direct.onclose = undefined;
    direct.ondatachannel = undefined;
    await direct.close("moved to the relay");
    return await this.#relay(reason);
  }

  /**
   * Why the relay cannot be used here, if it cannot; with `probe`, also asks
   * the signalling for its pipe (once it has started).
   */
  #relayRefusal(probe = true): RelayError | undefined {
    const carrier = this.#options.signaling as Signaling & RelayCarrier;
    if (carrier.authenticated !== true) {
      return new RelayError(
        "Cannot connect over the relay as the signalling is not authenticated: the relay's key exchange must be sealed end to end, so connect with a ticket (TicketSignaling, WebRTCListener.listen) or wrap the signalling in AuthenticatedSignaling",
      );
    }
    if (typeof carrier.relayPipe !== "function") {
      return new RelayError(
        "Cannot connect over the relay as the signalling carries messages only: only a signalling room relays; connect through a ticket's room",
      );
    }
    if (!probe) return undefined;
    try {
      // Asking is free: a room's view hands out its one pipe, or says why it has none.
      carrier.relayPipe();
    } catch (error) {
      return error instanceof RelayError
        ? error
        : new RelayError(`Cannot connect over the relay: ${(error as Error).message}`, {
          cause: error,
        });
    }
    return undefined;
  }

  /** The relay: exchange keys over the sealed signalling, then open the link. */
  async #relay(reason: string): Promise<Connected> {
    const options = this.#options;
    this.#demux.mute();
    const carrier = this.#options.signaling as Signaling & RelayCarrier;
    try {
      const refusal = this.#relayRefusal();
      if (refusal) throw refusal;
      const pipe: RelayPipe = carrier.relayPipe!();
      const share = await this.#keyShare();
      await this.#sendHello(share, reason);
      const hello = await this.#step(this.#hello.promise, "relay hello");
      const key = readRelayHello(hello);
      if (!key) {
        throw new ConnectError(
          "signaling",
          "Cannot connect over the relay as the other peer's relay hello is malformed: it may speak another version of the relay",
        );
      }
      // Both hellos carry a window: flow control. The other's has none: it is
      // of an earlier version, and the link runs as that version did.
      const window = readRelayWindow(hello);
      if (window === null) {
        throw new ConnectError(
          "signaling",
          `Cannot connect over the relay as the other peer's relay hello grants a malformed window (not an integer of at least RELAY_MIN_WINDOW, ${RELAY_MIN_WINDOW} bytes): it may speak another version of the relay; run this module's current version on both sides`,
        );
      }
      const cipher = await share.derive(key);
      const link = new RelayLink(
        pipe,
        cipher,
        options.initiator,
        window === undefined ? undefined : { send: window, receive: this.#window },
      );
      this.#link = link;
      const primary = withResolvers<RelayChannel>();
      link.ondatachannel = (channel) => {
        if (!options.initiator && !this.#connected && channel.label === CHANNEL_LABEL) {
          options.onchannel?.(channel, channel.protocol === CHANNEL_PROTOCOL);
          primary.resolve(channel);
        } else if (this.ondatachannel) this.ondatachannel(channel);
        else channel.close();
      };
      link.onend = (error, why) => {
        if (!this.#connected) {
          return this.#fail(
            error ??
              new ConnectError(
                "channel",
                `Cannot connect as the other peer ended the relay: ${why}`,
              ),
          );
        }
        this.#lost(error ? error.message : `the peer said goodbye (${why})`, error);
      };
      let channel: RelayChannel;
      if (options.initiator) {
        channel = link.createChannel(CHANNEL_LABEL, CHANNEL_PROTOCOL);
        options.onchannel?.(channel, false);
      } else channel = await this.#step(primary.promise, "first data channel");
      if (channel.readyState === "connecting") {
        await this.#step(
          new Promise((resolve) => channel.addEventListener("open", resolve)),
          "data channel",
        );
      }
      if (this.#closed) {
        throw new WebRTCTransportError("Cannot connect as the transport was closed");
      }
      this.#connected = true;
      options.onstep?.("channel");
      return {
        channel,
        peerSpeaksFraming: !options.initiator && channel.protocol === CHANNEL_PROTOCOL,
      };
    } catch (error) {
      const failure = this.#failure.signal.aborted ? this.#failure.signal.reason : error;
      await this.close(failure instanceof Error ? failure.message : "connect failed");
      // Moved to the relay as the direct path found no way: both are said.
      if (failure instanceof ConnectError && /\bICE\b/.test(reason)) {
        throw new ConnectError(
          "ice",
          `Cannot connect as ${reason}, and the relay through the signalling room failed too: ${failure.message}`,
          { cause: failure },
        );
      }
      throw failure;
    }
  }

  /** Waits for one step of the relay's set-up, within the connect timeout. */
  async #step<T>(promise: Promise<T>, what: string): Promise<T> {
    const timeout = this.#options.connectTimeout;
    try {
      return await deadline(promise, timeout, { signal: this.#failure.signal });
    } catch (error) {
      if (this.#failure.signal.aborted) throw this.#failure.signal.reason;
      if ((error as DOMException)?.name === "TimeoutError") {
        throw new ConnectError(
          "signaling",
          `Cannot connect over the relay as the ${what} did not come within ${timeout} ms: the other peer may not support the relay (update it), or the signalling room drops its frames`,
        );
      }
      throw error;
    }
  }

  #keyShare(): Promise<RelayKeyShare> {
    this.#share ??= RelayKeyShare.create();
    return this.#share;
  }

  async #sendHello(share: RelayKeyShare, reason: string): Promise<void> {
    if (this.#helloSent) return;
    this.#helloSent = true;
    this.#window = relayFlow.window;
    await this.#demux.sendRaw({ ...share.hello(reason, this.#window) });
  }

  #helloReceived(message: SignalingMessage): void {
    if (this.#connected && !this.#link) {
      this.onerror?.(
        new SignalRefusedError(
          "Refused a relay hello as the direct connection is already up: the other peer gave up on it too early",
        ),
      );
      return;
    }
    this.#hello.resolve(message);
  }

  #byeReceived(message: SignalingMessage): void {
    const reason = typeof message.reason === "string"
      ? message.reason.slice(0, 600)
      : "no reason given";
    if (!this.#connected) {
      return this.#fail(
        new ConnectError(
          "signaling",
          `Cannot connect over the relay as the other peer gave up: ${reason}`,
        ),
      );
    }
    if (this.#link) this.#lost(`the peer said goodbye (${reason})`);
  }

  /** Opens a further channel on the connection. */
  createChannel(label: string = CHANNEL_LABEL): DataChannelLike {
    if (this.#link) {
      if (!this.#connected || this.#closed || this.#link.ended) {
        throw new WebRTCTransportError(
          "Cannot open a data channel as the relayed connection is not up: await connect() first",
        );
      }
      return this.#link.createChannel(label, CHANNEL_PROTOCOL);
    }
    if (!this.#direct) {
      throw new WebRTCTransportError(
        "Cannot open a data channel as the peer connection is not connected: await connect() first",
      );
    }
    return this.#direct.createChannel(label);
  }

  /** Closes the connection on its path and tells the other peer. Idempotent. */
  async close(reason = "closed"): Promise<void> {
    if (!this.#closed) this.#closeReason = reason;
    const first = !this.#closed;
    this.#closed = true;
    if (!this.#failure.signal.aborted) {
      this.#failure.abort(new WebRTCTransportError("Cannot connect as the transport was closed"));
    }
    if (!first) return;
    if (this.#direct) return await this.#direct.close(this.#closeReason);
    // The relay: a sealed end on the link, and a goodbye through signalling
    // in case the link is what broke; then the signalling, which carried the
    // relay, has nothing left to carry.
    await Promise.all([
      this.#link?.end(this.#closeReason),
      settle(this.#demux.sendRaw({ type: "bye", reason: this.#closeReason }), BYE_TIMEOUT),
    ]);
    await settle(this.#demux.close(), BYE_TIMEOUT);
  }

  #fail(error: Error): void {
    if (this.#connected || this.#failure.signal.aborted) return;
    this.#failure.abort(error);
  }

  #lost(why: string, cause?: Error): void {
    if (this.#closed) return;
    void this.close(why);
    this.onclose?.(
      new WebRTCTransportError(`The connection to the peer was lost: ${why}`, { cause }),
    );
  }
}

/** A promise that never settles. */
function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

/** The most messages kept for a direct attempt that has not started yet. */
const MAX_ATTEMPT_QUEUE = 64;

/**
 * The signalling of the direct attempts. A second attempt starts with a new
 * offer, so a message belongs to the attempt of the last offer (answering
 * side) or answer (offering side) that came before it: an attempt sees its
 * own messages only (those of one not started yet are kept for it), and an
 * ended attempt's view sends nothing, not even its goodbye.
 */
class Attempts {
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
class AttemptView implements Signaling {
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

/**
 * The signalling as the direct attempt sees it: relay hellos are taken out
 * for the relay; once muted (the relay took over), the direct attempt's
 * messages are dropped both ways and only a goodbye still counts.
 */
class RelayDemux implements Signaling {
  readonly #inner: Signaling;
  #muted = false;
  #starting?: Promise<void>;
  onmessage?: (message: SignalingMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onhello?: (message: SignalingMessage) => void;
  onbye?: (message: SignalingMessage) => void;
  onrelayclose?: () => void;

  constructor(inner: Signaling) {
    this.#inner = inner;
    inner.onmessage = (message) => {
      if (message.type === RELAY_HELLO) return this.onhello?.(message);
      if (!this.#muted) return this.onmessage?.(message);
      if (message.type === "bye") this.onbye?.(message);
    };
    inner.onclose = () => (this.#muted ? this.onrelayclose : this.onclose)?.();
    inner.onerror = (error) => this.onerror?.(error);
  }

  mute(): void {
    this.#muted = true;
  }

  /** The STUN/TURN servers the signalling hands out, if any (a room's TURN credentials). */
  get iceServers(): unknown {
    return (this.#inner as { iceServers?: unknown }).iceServers;
  }

  /** Whether the signalling is sealed end to end, as it says. */
  get authenticated(): boolean | undefined {
    return (this.#inner as RelayCarrier).authenticated;
  }

  /** The signalling's own {@linkcode Signaling.meetingPoint}. */
  get meetingPoint(): string | undefined {
    return this.#inner.meetingPoint;
  }

  start(options?: { initiator: boolean }): Promise<void> {
    this.#starting ??= Promise.resolve(this.#inner.start?.(options));
    return this.#starting;
  }

  send(message: SignalingMessage): Promise<void> {
    if (this.#muted) return Promise.resolve();
    return this.#inner.send(message);
  }

  sendRaw(message: SignalingMessage): Promise<void> {
    return this.#inner.send(message);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
