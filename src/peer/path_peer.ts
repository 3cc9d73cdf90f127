/**
 * The choice of path: a direct WebRTC connection ({@linkcode Peer}, tried
 * again once as `retry.ts` decides) by default, the relay through the
 * signalling room (`src/relay/`) where WebRTC cannot run or finds no path.
 * {@linkcode PathPeer} has the shape of `Peer` that `WebRTCConnection` and
 * `WebRTCTransport` use, so everything above works on either path.
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
 * Each side then sends a relay hello through the sealed signalling, answers
 * the other's (see `src/relay/connect.ts`), and the abandoned direct attempt
 * is closed without a word to the other side.
 *
 * Just over 400 lines, and one file, because the choice of path is one state
 * (the direct attempt or the relay link that is live, the relay hellos sent
 * and received, the fallback deadline) read by every handler here; split,
 * each part would reach into the other's fields.
 *
 * @module
 */

import { abortable, settle, withResolvers } from "../_async.ts";
import { type Clock, SYSTEM_CLOCK } from "../_clock.ts";
import {
  BYE_TIMEOUT,
  CHANNEL_LABEL,
  CHANNEL_PROTOCOL,
  MAX_BYE_REASON_LENGTH,
  RELAY_FALLBACK_DELAY,
} from "../constants.ts";
import type { DataChannelLike } from "../data_channel_transport.ts";
import { ConnectError, RelayError, SignalRefusedError, WebRTCTransportError } from "../errors.ts";
import { openRelayLink, RELAY_PATH_TYPE, relayFlow, relayRefusal } from "../relay/connect.ts";
import { RelayKeyShare } from "../relay/crypto.ts";
import { RelayDemux } from "../relay/demux.ts";
import type { RelayLink } from "../relay/link.ts";
import type { RelayCarrier } from "../relay/protocol.ts";
import { resolvePeerConnection } from "../runtime.ts";
import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import { encodeBase64Url } from "../_base64url.ts";
import { Peer } from "./direct.ts";
import { signalledFingerprints } from "./sdp.ts";
import { Attempts, attemptSettings, runAttempts } from "./retry.ts";
import type { Connected, ConnectionPath, PeerConnectionLike, PeerOptions } from "./types.ts";

export { RELAY_PATH_TYPE, relayFlow };

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
  readonly #clock: Clock;
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
  /** The relay link's two X25519 keys, once it is open. */
  #relayEnds?: { local: string; remote: string };

  /** Called once when the connection is gone (after `connect()` resolved). */
  onclose?: (error?: Error) => void;
  /** Called for a problem that does not end the connection. */
  onerror?: (error: Error) => void;
  /** Called for each data channel the other side opens beyond the first. */
  ondatachannel?: (channel: DataChannelLike) => void;

  constructor(options: PathPeerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
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

  /**
   * What tells this connection's two ends from any other's, once it is up:
   * on the direct path the DTLS certificate fingerprints (SHA-256) of the
   * descriptions this side sent and received, on the relay the X25519 public
   * keys of its link (base64url). `undefined` before, or where a description
   * signalled no fingerprint.
   */
  ends(): { local: string; remote: string } | undefined {
    if (this.#link) return this.#relayEnds;
    const pc = this.#direct?.connection;
    const fingerprint = (sdp: string | undefined) => {
      if (!sdp) return undefined;
      const signalled = signalledFingerprints(sdp);
      const value = signalled.get("sha-256") ?? [...signalled.values()][0];
      return value ? `sha-256 ${value}` : undefined;
    };
    const local = fingerprint(pc?.localDescription?.sdp);
    const remote = fingerprint(pc?.remoteDescription?.sdp);
    return local && remote ? { local, remote } : undefined;
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
      const refusal = relayRefusal(options.signaling, false);
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
   * The direct attempts (see `runAttempts`), raced against the relay's
   * triggers.
   */
  async #race(Ctor: NonNullable<PathPeerOptions["RTCPeerConnection"]>): Promise<Connected> {
    const options = this.#options;
    const clock = this.#clock;
    // Whether the relay can be used is known once signalling has started.
    const relayable = () => relayRefusal(options.signaling) === undefined;
    const after = options.relayAfter === undefined ? RELAY_FALLBACK_DELAY : options.relayAfter;
    const switchTo = withResolvers<string>();
    this.#hello.promise.then(
      () => switchTo.resolve("the other peer asked for the relay"),
      () => {},
    );
    let timer: unknown;
    const clearTimer = () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    };
    let iceFound = false;
    const { peer: direct, outcome } = await runAttempts({
      initiator: options.initiator,
      attempts: this.#attempts,
      interrupt: switchTo.promise,
      raced: clearTimer,
      closed: () => this.#closed,
      start: (n, signaling) => {
        iceFound = false;
        const peer = new Peer({
          ...options,
          ...attemptSettings(n),
          signaling,
          RTCPeerConnection: Ctor,
          onstep: (step) => {
            if (step === "ice") {
              iceFound = true;
              clearTimer();
            }
            // The clock starts once both descriptions are in place: a signalling
            // exchange that does not complete is not a missing ICE path.
            if (step === "answer" && options.initiator && after !== false && relayable()) {
              clearTimer();
              timer = clock.setTimeout(
                () => switchTo.resolve(`no ICE path formed within ${after} ms`),
                after,
              );
            }
            options.onstep?.(step);
          },
        });
        this.#direct = peer;
        peer.onerror = (error) => this.onerror?.(error);
        peer.ondatachannel = (channel) => this.ondatachannel?.(channel);
        peer.onclose = (error) => this.onclose?.(error);
        return peer;
      },
      onretry: (failed) =>
        this.onerror?.(
          new ConnectError(
            failed.stage,
            `${failed.message} (trying once more with a new offer)`,
            { cause: failed },
          ),
        ),
    });
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

  /** The relay: exchange keys over the sealed signalling, then open the link. */
  async #relay(reason: string): Promise<Connected> {
    const options = this.#options;
    this.#demux.mute();
    const carrier = options.signaling as Signaling & RelayCarrier;
    try {
      const refusal = relayRefusal(options.signaling);
      if (refusal) throw refusal;
      const pipe = carrier.relayPipe!();
      const share = await this.#keyShare();
      await this.#sendHello(share, reason);
      const hello = await this.#step(this.#hello.promise, "relay hello");
      const channel = await openRelayLink(hello, {
        initiator: options.initiator,
        pipe,
        share,
        window: this.#window,
        onchannel: options.onchannel,
        connected: () => this.#connected,
        ondatachannel: (channel) => {
          if (this.ondatachannel) this.ondatachannel(channel);
          else channel.close();
        },
        onend: (error, why) => {
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
        },
        wait: (promise, what) => this.#step(promise, what),
      }, (link) => {
        this.#link = link;
        this.#relayEnds = { local: encodeBase64Url(share.publicKey), remote: String(hello.key) };
      });
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
    const timedOut = new AbortController();
    const timer = this.#clock.setTimeout(
      () =>
        timedOut.abort(
          new ConnectError(
            "signaling",
            `Cannot connect over the relay as the ${what} did not come within ${timeout} ms: the other peer may not support the relay (update it), or the signalling room drops its frames`,
          ),
        ),
      timeout,
    );
    try {
      return await abortable(promise, AbortSignal.any([this.#failure.signal, timedOut.signal]));
    } finally {
      this.#clock.clearTimeout(timer);
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
      ? message.reason.slice(0, MAX_BYE_REASON_LENGTH)
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
