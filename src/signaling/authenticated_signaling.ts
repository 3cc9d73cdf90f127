/**
 * End-to-end authenticated signalling over any {@linkcode Signaling}.
 *
 * The relay between the peers (a signalling room, a chat, anything) is not
 * trusted: if it could alter an offer or an answer, it could put its own DTLS
 * fingerprint in it and sit in the middle of the data channel. So each peer
 * seals every message with an HMAC-SHA-256 code under the signalling key both
 * derive from their ticket (see `deriveTicketKeys`), and refuses any message
 * that is altered, forged, replayed, reordered or reflected.
 *
 * ## Protocol (version 1)
 *
 * Every message on the inner signalling is an envelope:
 *
 * ```text
 * { type: "sealed", v: 1, role: "host" | "guest", nonce, seq, peerNonce?, body?, mac }
 * ```
 *
 * - `role`: the sender's role; a receiver accepts only the opposite role, so a
 *   message reflected back to its sender is refused.
 * - `nonce`: the sender's connection nonce, 128 random bits (22 base64url
 *   characters), fresh for every `AuthenticatedSignaling`.
 * - `seq`: a counter of the sender's envelopes, from 0, strictly increasing.
 * - `peerNonce`: the receiver's nonce, once the sender knows it.
 * - `body`: the original message as a JSON string, absent in a *hello*.
 * - `mac`: `base64url(HMAC-SHA-256(key, "mcp-webrtc/v1 sealed\n" +
 *   JSON.stringify([1, role, nonce, peerNonce ?? null, seq, body ?? null])))`.
 *   The receiver rebuilds these bytes from the validated fields (never from the
 *   received object's key order), verifies them with `crypto.subtle.verify`
 *   (constant time), and only then parses `body`. Fields the relay adds (for
 *   example a `from` stamp) are ignored.
 *
 * The handshake binds both nonces, so nothing from an earlier connection can be
 * replayed into this one:
 *
 * 1. On `start()`, each end sends a hello: `{ nonce, seq: 0 }`, no `peerNonce`.
 *    An end built on a *prepared hello* (`prepareHello`, sealed before the
 *    connection existed) sends none: its hello reaches the peer another way
 *    (a signalling room hands the host's waiting hello to the next guest
 *    right after its welcome), and its next envelope has `seq` 1. An end
 *    whose start brought the other end's hello answers that hello (step 2)
 *    and sends no bare one: its answer carries its nonce.
 * 2. On a hello without `peerNonce`, an end takes its nonce as the peer's
 *    (tentatively) and answers with a hello that carries it as `peerNonce`.
 *    Until a peer is confirmed, a hello whose `peerNonce` is not this end's
 *    (a stale copy of a waiting hello, or an earlier connection's) is taken
 *    the same way: it binds nothing, and its sender learns this end's nonce.
 * 3. An end accepts an envelope that carries a `peerNonce` only if it equals
 *    its own nonce (hellos aside, as step 2 says). The first such envelope
 *    *confirms* the sender's nonce: from then on only envelopes from that
 *    nonce, with a higher `seq`, are accepted.
 * 4. Messages passed to `send()` before any hello came wait in a bounded
 *    queue. Once a hello came (it opened with the key), this end answers it,
 *    then each message goes out in order as an envelope with `body` and
 *    `peerNonce` set to that hello's nonce: the offer leaves once the peer has
 *    proved it holds the key, half a round trip after the peer's hello left
 *    rather than a whole one after this end's, and a transport can call
 *    `send(offer)` right away. Until the peer's nonce is confirmed, what was
 *    sent is kept (within the same bound): if another nonce's hello or
 *    envelope binds this end first, it is sent again, once, to that nonce, so
 *    a hello replayed from an earlier connection costs the real peer nothing
 *    but a refused copy.
 * 5. A hello may be sealed ahead (`prepareHello()`) and go another way:
 *    inside the message that invites the other end to connect (an A2A
 *    offer), or waiting in a signalling room for the next guest. The end
 *    built on it (option `hello`) sends no hello on `start()`, nor when the
 *    other end names its nonce: its next message (the answer) names the
 *    other's nonce and confirms it there. It still answers a bare hello, as
 *    step 2 says. The other end, given the hello as `peerHello` or by the
 *    room with its start, answers it instead of sending a bare hello. If
 *    that copy was stale (the end serving this peer was built on another
 *    hello), the answer names a nonce that end does not hold, and step 2
 *    makes it answer in turn: so every pair has a hello that reaches the end
 *    it names, and neither end waits on the other.
 *
 * A prepared hello is a hello like any other: it names no peer and binds
 * nothing by itself, and the end built on it serves one connection. A copy of
 * it that reaches a second peer (a room that hands one waiting hello to two
 * guests, or a replay) makes that peer seal its offer for a nonce whose end is
 * bound to another peer, or is not the end that serves it: refused there; the
 * end that does serve it answers with its own hello, and step 4 sends the
 * offer again to that nonce. So it costs the second peer a refused copy and a
 * resend, never a binding.
 *
 * A replayed hello can at worst make an end answer once more; a replayed offer,
 * answer or candidate names an old nonce and is refused. A message that fails a
 * check is dropped (never passed to `onmessage`) and reported to `onerror` as an
 * {@linkcode AuthenticationError} that says which check failed.
 *
 * ## Refusal notices
 *
 * An envelope that names the bound peer and this end's nonce but fails its
 * seal is also answered, sealed, with a body
 * `{ type: "refused", seq, mac, reason }` (its sequence number, its code and
 * the failed check; at most `MAX_REFUSAL_NOTICES` per connection). The end
 * that receives the notice compares `seq` and `mac` with the envelopes it sent:
 * if it sent that envelope, its own message was altered on the way and is
 * lost, and it reports a {@linkcode PeerRefusalError} to `onerror` (a
 * transport fails its connect at once with it); otherwise the refused
 * envelope was a forgery, and the notice is dropped. The relay can neither
 * forge a notice nor make one accuse a peer falsely: it can only alter a
 * message (which the notice then truly reports) or drop one (which it can do
 * anyway). Notices never reach `onmessage`.
 *
 * Use one `AuthenticatedSignaling` per connection attempt: its nonce, once
 * bound, cannot be bound again.
 *
 * Over 400 lines, and one file, because it is one protocol: the envelope's
 * fields, its MAC and the checks of sequence, nonces and role are read
 * together to see that a relay can alter, forge, replay, reorder or reflect
 * nothing; split, a reviewer would have to hold the halves side by side. A
 * third of it is this specification and the doc comments.
 *
 * @module
 */

import { recordSealKey } from "../_resume_claim.ts";
import type { Signaling, SignalingMessage } from "./signaling.ts";
import { SignalingBase } from "./_signaling_base.ts";
import type { RelayCarrier, RelayPipe } from "../relay/protocol.ts";
import {
  AuthenticationError,
  PeerRefusalError,
  RelayError,
  WebRTCTransportError,
} from "../errors.ts";
import { MAX_REFUSAL_NOTICES, SENT_MESSAGES_REMEMBERED } from "../constants.ts";
import { decodeBase64Url, encodeBase64Url } from "../_base64url.ts";
import { utf8Length } from "../_utf8.ts";

/** Options of {@linkcode AuthenticatedSignaling}. */
export interface AuthenticatedSignalingOptions {
  /**
   * The HMAC-SHA-256 key both ends share, with usages `sign` and `verify`:
   * the `signalingKey` of `deriveTicketKeys`.
   */
  key: CryptoKey;
  /**
   * This end's role: the kind of its ticket (`"host"` on the serving desktop,
   * `"guest"` on the agent). The two ends must have different roles.
   */
  role: "host" | "guest";
  /**
   * The other peer's hello, received another way: the `message` of its
   * {@linkcode AuthenticatedSignaling.prepareHello}, carried inside the
   * message that invited this end to connect (an A2A offer, say). On
   * `start()` it is verified and answered in place of a bare hello, so what
   * was sent before leaves at once, sealed to the other peer's nonce, without
   * waiting a round trip for its hello. One that does not verify is reported
   * to `onerror`, and this end says a bare hello as usual.
   *
   * @default {undefined}
   */
  peerHello?: SignalingMessage;
  /**
   * How many messages `send()` keeps while waiting for the peer's hello; one
   * more rejects. Enough for an offer and a burst of ICE candidates.
   *
   * @default {256}
   */
  maxQueuedMessages?: number;
  /**
   * The largest sealed envelope sent or accepted, in UTF-8 bytes of its JSON:
   * the body as it appears in the envelope (a JSON string, escaped) plus 256
   * bytes for the other fields. The default leaves 4 KiB of a 64 KiB relay
   * frame (the signalling room's limit) for the relay's own wrapping; an SDP
   * offer is a few KiB.
   *
   * @default {61440}
   */
  maxEnvelopeSize?: number;
  /**
   * This end's hello, sealed beforehand with the same key and role by
   * {@linkcode AuthenticatedSignaling.prepareHello} and handed to the peer
   * another way (a signalling room keeps the host's for the next guest): this
   * end takes its nonce and sends no hello of its own on `start()`. Each
   * prepared hello serves one `AuthenticatedSignaling` only.
   */
  hello?: PreparedHello;
}

/**
 * A hello sealed before the connection it opens exists (see
 * {@linkcode AuthenticatedSignaling.prepareHello}): it carries only its
 * sender's fresh nonce, so it binds nothing until an end built on it answers.
 */
export interface PreparedHello {
  /** The sealed hello, for the peer: a message like any other on the signalling. */
  readonly message: SignalingMessage;
}

/** What a prepared hello holds for the end built on it, and whether one took it. */
const prepared = new WeakMap<
  PreparedHello,
  { key: CryptoKey; role: "host" | "guest"; nonce: string; used: boolean }
>();

/** See {@linkcode AuthenticatedSignalingOptions.maxQueuedMessages}. */
const DEFAULT_MAX_QUEUED_MESSAGES = 256;
/** See {@linkcode AuthenticatedSignalingOptions.maxEnvelopeSize}. */
const DEFAULT_MAX_ENVELOPE_SIZE = 61_440;
/**
 * What an envelope's fields other than `body` take at most, in bytes of JSON
 * (they are about 200: type, v, role, two nonces, a 16-digit seq, the code).
 */
const ENVELOPE_OVERHEAD = 256;
/**
 * How many received envelopes may wait for verification at once; more are
 * refused. Verification takes microseconds, so only a flood reaches this.
 */
const MAX_PENDING_RECEIVES = 1024;
const VERSION = 1;
const MAC_LABEL = "mcp-webrtc/v1 sealed\n";
const NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** The body type of a refusal notice (see the module doc). */
const REFUSED = "refused";
/** The longest failed check a notice carries, in characters. */
const MAX_REFUSAL_REASON_LENGTH = 600;
const MAC_PATTERN = /^[A-Za-z0-9_-]{43}$/;

const encoder = new TextEncoder();

interface Envelope {
  role: "host" | "guest";
  nonce: string;
  seq: number;
  peerNonce?: string;
  body?: string;
  mac: string;
}

interface Peer {
  nonce: string;
  confirmed: boolean;
  lastSeq: number;
}

/** A body sent before the peer's nonce was confirmed (see protocol step 4). */
interface Unconfirmed {
  body: string;
  /** The peer nonce it was sealed for, once sealed. */
  sealedFor?: string;
  /** Whether a copy waits to be sealed. */
  sealing: boolean;
}

interface Queued {
  body: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * A {@linkcode Signaling} that authenticates every message end to end with a
 * shared key, over any other `Signaling`. Drop-in: a transport uses it like
 * the inner signalling, and messages it sends before the peers have met are
 * held until they have (see the module doc for the protocol).
 *
 * Install `onmessage`, `onclose` and `onerror` before `start()`. Refused
 * messages go to `onerror` as {@linkcode AuthenticationError}s; the inner
 * signalling's own errors are passed through.
 *
 * @example Authenticated offer and answer over an in-memory pair
 * ```ts
 * import { createGuestTicket, createTicket, deriveTicketKeys, MemorySignaling, type SignalingMessage } from "@mcp/webrtc";
 * import { AuthenticatedSignaling } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const hostTicket = await createTicket({ url: "wss://signal.example.com" });
 * const guestTicket = await createGuestTicket(hostTicket);
 * const [a, b] = MemorySignaling.createPair();
 * const host = new AuthenticatedSignaling(a, {
 *   key: (await deriveTicketKeys(hostTicket)).signalingKey,
 *   role: "host",
 * });
 * const guest = new AuthenticatedSignaling(b, {
 *   key: (await deriveTicketKeys(guestTicket)).signalingKey,
 *   role: "guest",
 * });
 * const offer = new Promise<SignalingMessage>((resolve) => (host.onmessage = resolve));
 * await Promise.all([host.start(), guest.start()]);
 * await guest.send({ type: "offer", sdp: "v=0 …" }); // resolves once delivered
 * assert.deepEqual(await offer, { type: "offer", sdp: "v=0 …" });
 * await guest.close();
 * await host.close();
 * ```
 */
export class AuthenticatedSignaling extends SignalingBase {
  readonly #inner: Signaling;
  readonly #key: CryptoKey;
  readonly #role: "host" | "guest";
  readonly #maxQueuedMessages: number;
  readonly #maxEnvelopeSize: number;
  readonly #nonce: string;
  #seq = 0;
  #peer?: Peer;
  /**
   * The code and message type of each sealed message sent, by sequence number,
   * to recognise a refusal notice about one of them: the last
   * {@linkcode SENT_MESSAGES_REMEMBERED} only (a notice answers a message of
   * the handshake in progress).
   */
  readonly #sent = new Map<number, { mac: string; type: string }>();
  #noticesSent = 0;
  /** The peer nonce this end last sent (or scheduled) a hello to: it answers each once. */
  #helloFor?: string;
  /** Whether this end's hello was prepared and went to the other peer another way. */
  #helloHanded = false;
  /** The other peer's hello, received another way (`peerHello`), until `start()` reads it. */
  #peerHello?: SignalingMessage;
  #queue: Queued[] = [];
  /**
   * What was sent before the peer's nonce was confirmed, each with the nonce
   * it was sealed for: sent again if another nonce binds this end first.
   */
  #unconfirmed: Unconfirmed[] = [];
  /** Whether the inner signalling reported its close. */
  #carrierClosed = false;
  #sending: Promise<void> = Promise.resolve();
  #receiving: Promise<void> = Promise.resolve();
  #pendingReceives = 0;

  /** Called for every authenticated message from the other peer, in order. */
  declare onmessage?: (message: SignalingMessage) => void;
  /** Called once when the channel can carry no more messages. */
  declare onclose?: () => void;
  /**
   * Called with an {@linkcode AuthenticationError} for every refused message,
   * and with the inner signalling's errors.
   */
  declare onerror?: (error: Error) => void;

  /**
   * Wraps a signalling channel. Takes over the inner channel's callbacks.
   *
   * @param inner The channel to the other peer, not started yet.
   * @param options The shared key, this end's role and limits.
   * @throws {TypeError} If `key` is not an HMAC-SHA-256 key for sign and
   * verify, or `role` is not `"host"` or `"guest"`.
   * @throws {RangeError} If a limit is not a positive integer.
   *
   * @example Wrap a signalling with ticket keys
   * ```ts
   * import { createTicket, deriveTicketKeys, MemorySignaling } from "@mcp/webrtc";
   * import { AuthenticatedSignaling } from "@mcp/webrtc/signaling";
   * import assert from "node:assert/strict";
   *
   * const ticket = await createTicket({ url: "wss://signal.example.com" });
   * const { signalingKey } = await deriveTicketKeys(ticket);
   * const [inner] = MemorySignaling.createPair();
   * const signaling = new AuthenticatedSignaling(inner, { key: signalingKey, role: ticket.kind });
   * assert.ok(signaling);
   * await signaling.close();
   * ```
   */
  constructor(inner: Signaling, options: AuthenticatedSignalingOptions) {
    super();
    const { key, role } = options;
    checkKeyAndRole(key, role);
    const hello = options.hello === undefined ? undefined : prepared.get(options.hello);
    if (options.hello !== undefined && (hello?.key !== key || hello.role !== role || hello.used)) {
      throw new TypeError(
        "Cannot create authenticated signalling as 'hello' was not prepared with this key and role by AuthenticatedSignaling.prepareHello, or already serves another connection: prepare one per connection",
      );
    }
    this.#maxQueuedMessages = positiveInteger(
      "maxQueuedMessages",
      options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES,
    );
    this.#maxEnvelopeSize = positiveInteger(
      "maxEnvelopeSize",
      options.maxEnvelopeSize ?? DEFAULT_MAX_ENVELOPE_SIZE,
    );
    this.#inner = inner;
    this.#key = key;
    recordSealKey(this, key);
    this.#role = role;
    if (hello) {
      hello.used = true;
      this.#nonce = hello.nonce;
      this.#seq = 1;
      this.#helloHanded = true;
    } else {
      this.#nonce = encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    }
    this.#peerHello = options.peerHello;
    inner.onmessage = (message) => this.#enqueueReceive(message);
    inner.onerror = (error) => this.onerror?.(error);
    // What arrived before the inner signalling closed is verified and
    // delivered first: a goodbye among it says why the other peer left.
    inner.onclose = () => {
      this.#carrierClosed = true;
      void this.#receiving.then(() => this.close());
    };
  }

  /** The inner signalling's {@linkcode Signaling.meetingPoint}. */
  get meetingPoint(): string | undefined {
    return this.#inner.meetingPoint;
  }

  /** Always `true`: every message is sealed with the shared key (for the relay path). */
  get authenticated(): true {
    return true;
  }

  /**
   * The inner signalling's relay pipe, if it has one (the room's views do).
   * Its frames are not sealed here: the relay path seals them end to end
   * with keys from an exchange that these sealed messages authenticate.
   * Its close is told after the messages that arrived before it are
   * verified and delivered: a goodbye among them says why the peer left.
   *
   * @throws {Error} If the inner signalling carries no relay, or its service does not relay.
   */
  relayPipe(): RelayPipe {
    const inner = this.#inner as Signaling & RelayCarrier;
    if (typeof inner.relayPipe !== "function") {
      throw new RelayError(
        "Cannot relay through this signalling as it carries messages only: relay through a signalling room (a ticket's room does)",
      );
    }
    const pipe = inner.relayPipe();
    return {
      get limits() {
        return pipe.limits;
      },
      send: (payload) => pipe.send(payload),
      listen: (handlers) =>
        pipe.listen({
          message: handlers.message,
          error: handlers.error,
          close: () => void this.#receiving.then(() => handlers.close()),
        }),
      close: () => pipe.close(),
    };
  }

  /**
   * Starts the inner signalling and sends this end's hello.
   *
   * @throws {Error} If called twice, or the hello cannot be sent.
   */
  override async start(): Promise<void> {
    if (this.startCalled) {
      throw new WebRTCTransportError(
        "Cannot start authenticated signalling as it is already started: the transport's connect() starts it, so do not call start() yourself",
      );
    }
    await super.start();
  }

  /** The next envelope of this end, and its code being computed (the envelope gets it as `mac`). */
  #seal(
    peerNonce: string | undefined,
    body: string | undefined,
  ): { envelope: Record<string, unknown>; sealed: Promise<ArrayBuffer> } {
    const envelope: Record<string, unknown> = {
      type: "sealed",
      v: VERSION,
      role: this.#role,
      nonce: this.#nonce,
      seq: this.#seq++,
    };
    if (peerNonce !== undefined) envelope.peerNonce = peerNonce;
    if (body !== undefined) envelope.body = body;
    const sealed = crypto.subtle.sign(
      "HMAC",
      this.#key,
      macInput(this.#role, this.#nonce, peerNonce, envelope.seq as number, body),
    );
    sealed.catch(() => {});
    return { envelope, sealed };
  }

  protected override async open(): Promise<void> {
    await this.#inner.start?.();
    const peerHello = this.#peerHello;
    this.#peerHello = undefined;
    // The other peer's hello, given as `peerHello` or come with the start (a
    // room hands its host's waiting hello right behind the welcome), is read
    // first: answered, it binds this end to that nonce and lets what waits
    // leave at once, and the answer carries this end's nonce, so a bare hello
    // would only cost the peer a check and a reply.
    if (peerHello !== undefined) this.#enqueueReceive(peerHello);
    await this.#receiving;
    if (this.#helloFor !== undefined) return;
    if (!this.#helloHanded) await this.#post(undefined);
  }

  /**
   * Seals a hello ahead of its connection: its own fresh nonce, sequence
   * number 0. Hand `message` to the peer another way (a signalling room keeps
   * the host's for the next guest), then build the one
   * `AuthenticatedSignaling` of that connection with it as
   * {@linkcode AuthenticatedSignalingOptions.hello}. A copy that reaches
   * another peer binds nothing: an end accepts only envelopes that name its
   * own nonce, and the peer holding the copy is answered by another nonce.
   *
   * @param options The shared key and this end's role, as the constructor takes them.
   * @returns The prepared hello.
   * @throws {TypeError} If `key` or `role` is not valid (as for the constructor).
   *
   * @example A hello delivered ahead, then the connection built on it
   * ```ts
   * import { createGuestTicket, createTicket, deriveTicketKeys, MemorySignaling, type SignalingMessage } from "@mcp/webrtc";
   * import { AuthenticatedSignaling } from "@mcp/webrtc/signaling";
   * import assert from "node:assert/strict";
   *
   * const hostTicket = await createTicket({ url: "wss://signal.example.com" });
   * const hostKey = (await deriveTicketKeys(hostTicket)).signalingKey;
   * const guestKey = (await deriveTicketKeys(await createGuestTicket(hostTicket))).signalingKey;
   * const hello = await AuthenticatedSignaling.prepareHello({ key: hostKey, role: "host" });
   * const [a, b] = MemorySignaling.createPair();
   * const guest = new AuthenticatedSignaling(b, { key: guestKey, role: "guest" });
   * const host = new AuthenticatedSignaling(a, { key: hostKey, role: "host", hello });
   * const offer = new Promise<SignalingMessage>((resolve) => (host.onmessage = resolve));
   * await Promise.all([host.start(), guest.start()]);
   * await a.send(hello.message); // as a room hands the host's to the next guest
   * await guest.send({ type: "offer", sdp: "v=0 …" });
   * assert.deepEqual(await offer, { type: "offer", sdp: "v=0 …" });
   * await guest.close();
   * await host.close();
   * ```
   */
  static async prepareHello(
    options: Pick<AuthenticatedSignalingOptions, "key" | "role">,
  ): Promise<PreparedHello> {
    const { key, role } = options;
    checkKeyAndRole(key, role);
    const nonce = encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    const mac = await crypto.subtle.sign(
      "HMAC",
      key,
      macInput(role, nonce, undefined, 0, undefined),
    );
    const message: SignalingMessage = {
      type: "sealed",
      v: VERSION,
      role,
      nonce,
      seq: 0,
      mac: encodeBase64Url(new Uint8Array(mac)),
    };
    const hello: PreparedHello = Object.freeze({ message });
    prepared.set(hello, { key, role, nonce, used: false });
    return hello;
  }

  /**
   * Seals and sends one message. Before the peers have met, the message waits
   * in a bounded queue; the promise resolves once the inner signalling has
   * taken the sealed message.
   *
   * @param message The message to send; must be JSON-serialisable.
   * @throws {TypeError} If the message is not an object with a string `type`,
   * or cannot be serialised as JSON.
   * @throws {RangeError} If the sealed message would be larger than
   * `maxEnvelopeSize`.
   * @throws {Error} If the signalling is closed, or too many messages already
   * wait for the peer.
   */
  send(message: SignalingMessage): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    let body: string;
    try {
      body = this.#serialise(message);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#peer?.confirmed) return this.#post(body);
    if (this.#queue.length + this.#unconfirmed.length >= this.#maxQueuedMessages) {
      // A plain Error: callers (and a test) know this refusal by that name.
      return Promise.reject(
        new Error(
          `Cannot send signalling message as ${this.#queue.length} messages already wait for the other peer's hello: is the other peer connected through ${
            this.#inner.meetingPoint ?? "the same signalling channel"
          }, with the same key?`,
        ),
      );
    }
    if (this.#peer) return this.#postUnconfirmed(body);
    return new Promise((resolve, reject) => this.#queue.push({ body, resolve, reject }));
  }

  /** Sends a body to a peer nonce not yet confirmed, and keeps it until confirmation. */
  #postUnconfirmed(body: string): Promise<void> {
    const entry: Unconfirmed = { body, sealing: true };
    this.#unconfirmed.push(entry);
    return this.#post(body, entry);
  }

  /**
   * This end was bound to a peer nonce, or confirmed it: what was sealed for
   * another nonce before is sent again to this one (once), and once
   * confirmed nothing more is kept.
   */
  #rebind(): void {
    const peer = this.#peer!;
    for (const entry of this.#unconfirmed) {
      if (entry.sealing || entry.sealedFor === peer.nonce) continue;
      entry.sealing = true;
      this.#post(entry.body, entry).catch((error) => this.#report(error));
    }
    if (peer.confirmed) this.#unconfirmed = [];
  }

  /** Rejects the messages waiting for the peer, then closes the inner signalling. */
  protected override async closeCarrier(): Promise<void> {
    const queue = this.#queue;
    this.#queue = [];
    for (const { reject } of queue) reject(closedError());
    await this.#inner.close();
  }

  #serialise(message: SignalingMessage): string {
    if (typeof message !== "object" || message === null || typeof message.type !== "string") {
      throw new TypeError(
        "Cannot send signalling message as it is not an object with a string 'type'",
      );
    }
    let body: string | undefined;
    try {
      body = JSON.stringify(message);
    } catch (error) {
      throw new TypeError(
        `Cannot send signalling message as it cannot be serialised as JSON: ${
          (error as Error)?.message
        }`,
        { cause: error },
      );
    }
    const size = this.#envelopeSize(body);
    if (size > this.#maxEnvelopeSize) {
      throw new RangeError(
        `Cannot send signalling message as it is too large once sealed: at least ${size} bytes of JSON, the limit is ${this.#maxEnvelopeSize}`,
      );
    }
    return body;
  }

  /**
   * Seals and sends a body (or a hello, if `body` is undefined) in order;
   * `entry` learns the peer nonce it was sealed for.
   */
  #post(body: string | undefined, entry?: Unconfirmed): Promise<void> {
    // Sealed at once, beside those before it (an offer's candidates go
    // together), and handed to the inner signalling in order; each resolves as
    // its own delivery does.
    const peerNonce = this.#peer?.nonce;
    if (entry) {
      entry.sealing = false;
      entry.sealedFor = peerNonce;
    }
    const { envelope, sealed } = this.#seal(peerNonce, body);
    const handedOver = this.#sending.then(async () => {
      const mac = await sealed;
      if (this.closing) throw closedError();
      envelope.mac = encodeBase64Url(new Uint8Array(mac));
      if (body !== undefined) {
        this.#sent.set(envelope.seq as number, {
          mac: envelope.mac as string,
          type: String((JSON.parse(body) as SignalingMessage).type),
        });
        if (this.#sent.size > SENT_MESSAGES_REMEMBERED) {
          this.#sent.delete(this.#sent.keys().next().value!);
        }
      }
      return { sent: this.#inner.send(envelope as SignalingMessage) };
    });
    this.#sending = handedOver.then(() => {}, () => {});
    return handedOver.then(({ sent }) => sent);
  }

  #enqueueReceive(message: SignalingMessage): void {
    if (this.closing) return;
    if (this.#pendingReceives >= MAX_PENDING_RECEIVES) {
      this.#report(refusal(
        `${MAX_PENDING_RECEIVES} earlier messages still wait for verification: the relay floods this end`,
      ));
      return;
    }
    this.#pendingReceives++;
    // Checked at once, beside those before it (an offer's candidates arrive
    // together); acted on in order of arrival.
    const checked = this.#check(message);
    checked.catch(() => {});
    this.#receiving = this.#receiving
      .then(() => this.#receive(checked))
      .catch((error) => this.#report(error))
      .finally(() => this.#pendingReceives--);
  }

  /** An envelope's shape, and whether its code verifies; depends on nothing received before. */
  async #check(message: SignalingMessage): Promise<{ envelope: Envelope; authentic: boolean }> {
    const envelope = this.#decode(message);
    const mac = decodeBase64Url(envelope.mac);
    const authentic = mac !== undefined && await crypto.subtle.verify(
      "HMAC",
      this.#key,
      mac,
      macInput(envelope.role, envelope.nonce, envelope.peerNonce, envelope.seq, envelope.body),
    );
    return { envelope, authentic };
  }

  async #receive(checked: Promise<{ envelope: Envelope; authentic: boolean }>): Promise<void> {
    const { envelope, authentic } = await checked;
    if (this.closing) return;
    if (!authentic) {
      const check =
        "its authentication code does not match: the relay or another party altered or forged it, or the peers hold different keys (tickets of different rooms, say)";
      this.#notice(envelope, check);
      throw refusal(check);
    }
    if (envelope.role === this.#role || envelope.nonce === this.#nonce) {
      throw refusal(
        `it comes from the same role ("${this.#role}") as this end: it is this end's own message reflected back, or both ends were given the same role`,
      );
    }
    const peer = this.#peer;
    // A hello that names another nonce (a stale copy of a waiting hello, or an
    // earlier connection's) is read as a bare hello until a peer is
    // confirmed: answering it binds nothing, and its sender learns this nonce.
    const hello = envelope.body === undefined &&
      (envelope.peerNonce === undefined ||
        (envelope.peerNonce !== this.#nonce && !peer?.confirmed));
    if (envelope.peerNonce === undefined || hello) {
      if (envelope.body !== undefined) {
        throw refusal("it carries a body but does not name this connection's nonce");
      }
      if (peer?.nonce === envelope.nonce) {
        this.#checkSeq(peer, envelope.seq);
      } else if (peer?.confirmed) {
        throw refusal(
          "it is a hello from another connection than the one this end is bound to: it is replayed from an earlier connection, or a second peer joined",
        );
      } else {
        this.#peer = { nonce: envelope.nonce, confirmed: false, lastSeq: envelope.seq };
      }
      // The answering hello goes first: the peer confirms this end by it, so
      // an altered message after it gets a refusal notice.
      this.#sendHello(envelope.nonce);
      if (!this.#peer!.confirmed) {
        this.#rebind();
        this.#flush();
      }
      return;
    }
    if (envelope.peerNonce !== this.#nonce) {
      throw refusal(
        "it answers another connection's nonce: it is replayed from an earlier connection, or meant for another peer",
      );
    }
    if (peer?.nonce === envelope.nonce) {
      this.#checkSeq(peer, envelope.seq);
    } else if (peer?.confirmed) {
      throw refusal(
        "it comes from another connection than the one this end is bound to: a second peer with the same ticket answered",
      );
    } else {
      this.#peer = { nonce: envelope.nonce, confirmed: false, lastSeq: envelope.seq };
    }
    if (!this.#peer!.confirmed) {
      this.#peer!.confirmed = true;
      this.#rebind();
      // A peer that names this end's handed-over hello is bound to it already;
      // this end's next message (the answer its offer asks for) binds it here.
      if (!this.#helloHanded) this.#sendHello(envelope.nonce);
      this.#flush();
    }
    if (envelope.body === undefined) return;
    let body: unknown;
    try {
      body = JSON.parse(envelope.body);
    } catch {
      body = undefined;
    }
    if (
      typeof body !== "object" || body === null ||
      typeof (body as SignalingMessage).type !== "string"
    ) {
      throw refusal("its body is not a JSON object with a string 'type': the other peer is faulty");
    }
    if ((body as SignalingMessage).type === REFUSED) return this.#noticed(body as SignalingMessage);
    this.onmessage?.(body as SignalingMessage);
  }

  /**
   * Tells the bound peer, sealed, that an envelope claiming to be its own
   * failed its seal here (see "Refusal notices" in the module doc).
   */
  #notice(envelope: Envelope, check: string): void {
    const peer = this.#peer;
    if (
      envelope.body === undefined || envelope.role === this.#role ||
      envelope.peerNonce !== this.#nonce || !peer?.confirmed || peer.nonce !== envelope.nonce ||
      this.#noticesSent >= MAX_REFUSAL_NOTICES
    ) return;
    this.#noticesSent++;
    const notice = { type: REFUSED, seq: envelope.seq, mac: envelope.mac, reason: check };
    this.#post(JSON.stringify(notice)).catch((error) => this.#report(error));
  }

  /** A sealed refusal notice from the bound peer: reported only if it is about our own envelope. */
  #noticed(notice: SignalingMessage): void {
    const { seq, mac, reason } = notice;
    const sent = typeof seq === "number" ? this.#sent.get(seq) : undefined;
    if (sent === undefined || sent.mac !== mac) return;
    const check = typeof reason === "string"
      ? reason.slice(0, MAX_REFUSAL_REASON_LENGTH)
      : "no reason given";
    this.#report(
      new PeerRefusalError(
        `The other peer refused this peer's ${
          JSON.stringify(sent.type.slice(0, 40))
        } message as altered on the way: its seal no longer matched its content there, so something on the signalling path changed it (the other peer's check: ${check})`,
      ),
    );
  }

  #checkSeq(peer: Peer, seq: number): void {
    if (seq <= peer.lastSeq) {
      throw refusal(
        `its sequence number ${seq} is not above the last accepted one (${peer.lastSeq}): it is a replayed or reordered copy`,
      );
    }
    peer.lastSeq = seq;
  }

  /** Checks an incoming message's shape; throws an AuthenticationError if wrong. */
  #decode(message: SignalingMessage): Envelope {
    if (typeof message !== "object" || message === null) {
      throw refusal("it is not an object");
    }
    const { type, v, role, nonce, seq, peerNonce, body, mac } = message as Record<
      string,
      unknown
    >;
    if (type !== "sealed") {
      throw refusal(
        `it is not sealed (type ${
          typeof type === "string" ? JSON.stringify(type.slice(0, 40)) : typeof type
        }): the other peer does not authenticate its signalling, or a third party sent it`,
      );
    }
    if (v !== VERSION) {
      throw refusal(
        `its protocol version is not supported: received ${
          typeof v === "number" ? v : typeof v
        }, this end speaks ${VERSION}`,
      );
    }
    if (role !== "host" && role !== "guest") throw refusal(`its role is not "host" or "guest"`);
    if (typeof nonce !== "string" || !NONCE_PATTERN.test(nonce)) {
      throw refusal("its nonce is not 22 base64url characters");
    }
    if (
      peerNonce !== undefined && (typeof peerNonce !== "string" || !NONCE_PATTERN.test(peerNonce))
    ) {
      throw refusal("its peer nonce is not 22 base64url characters");
    }
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
      throw refusal("its sequence number is not a non-negative integer");
    }
    if (body !== undefined) {
      if (typeof body !== "string") throw refusal("its body is not a JSON string");
      const size = this.#envelopeSize(body);
      if (size > this.#maxEnvelopeSize) {
        throw refusal(
          `it is too large: at least ${size} bytes of JSON, the limit is ${this.#maxEnvelopeSize}`,
        );
      }
    }
    if (typeof mac !== "string" || !MAC_PATTERN.test(mac)) {
      throw refusal("its authentication code is missing or is not 43 base64url characters");
    }
    return {
      role,
      nonce,
      seq,
      mac,
      ...(peerNonce === undefined ? {} : { peerNonce: peerNonce as string }),
      ...(body === undefined ? {} : { body: body as string }),
    };
  }

  /** Sends a hello naming `peerNonce`, unless one was already sent to it. */
  #sendHello(peerNonce: string): void {
    if (this.#helloFor === peerNonce) return;
    this.#helloFor = peerNonce;
    this.#post(undefined).catch((error) => {
      // A hello that could not leave because the carrier closed meanwhile (the
      // other end said its goodbye and the stream ended) is no error of this end.
      if (!this.#carrierClosed) this.#report(error);
    });
  }

  /**
   * The size an envelope with this body counts for: the body's escaped UTF-8
   * length plus the overhead. Cheap for oversized bodies (never escapes them).
   */
  #envelopeSize(body: string): number {
    if (body.length + ENVELOPE_OVERHEAD > this.#maxEnvelopeSize) {
      return body.length + ENVELOPE_OVERHEAD;
    }
    return utf8Length(JSON.stringify(body)) + ENVELOPE_OVERHEAD;
  }

  /** Sends what waited for a peer, to the nonce this end is bound to. */
  #flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    const confirmed = this.#peer!.confirmed;
    for (const { body, resolve, reject } of queue) {
      (confirmed ? this.#post(body) : this.#postUnconfirmed(body)).then(resolve, reject);
    }
  }

  #report(error: unknown): void {
    if (this.closing) return;
    this.onerror?.(error instanceof Error ? error : new WebRTCTransportError(String(error)));
  }
}

function macInput(
  role: string,
  nonce: string,
  peerNonce: string | undefined,
  seq: number,
  body: string | undefined,
): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    MAC_LABEL + JSON.stringify([VERSION, role, nonce, peerNonce ?? null, seq, body ?? null]),
  );
}

function checkKeyAndRole(key: CryptoKey, role: "host" | "guest"): void {
  const algorithm = key?.algorithm as HmacKeyAlgorithm | undefined;
  if (
    algorithm?.name !== "HMAC" || algorithm.hash?.name !== "SHA-256" ||
    !key.usages.includes("sign") || !key.usages.includes("verify")
  ) {
    throw new TypeError(
      "Cannot create authenticated signalling as 'key' is not an HMAC-SHA-256 CryptoKey with usages sign and verify: use deriveTicketKeys(ticket).signalingKey",
    );
  }
  if (role !== "host" && role !== "guest") {
    throw new TypeError(
      `Cannot create authenticated signalling as 'role' is not "host" or "guest": received ${
        JSON.stringify(role)
      }`,
    );
  }
}

function refusal(check: string): AuthenticationError {
  return new AuthenticationError(`Refused signalling message as ${check}`);
}

function closedError(): Error {
  return new WebRTCTransportError(
    "Cannot send signalling message as the authenticated signalling is closed",
  );
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot create authenticated signalling as '${name}' must be a positive integer: received ${value}`,
    );
  }
  return value;
}
