/**
 * The relay path's cryptography: an ephemeral X25519 key exchange whose public
 * keys travel as sealed signalling messages (so the ticket authenticates
 * them), HKDF-SHA-256 for one AES-256-GCM key per direction, and frames sealed
 * under an implicit, strictly increasing counter. All WebCrypto, which has
 * X25519, HKDF and AES-GCM in Deno, Node 20, browsers and workerd alike.
 *
 * Construction (see docs/SECURITY.md, "The relay path"):
 *
 * - Each side makes a fresh X25519 key pair per connection and sends its
 *   public key `P` in a sealed `{ type: "relay", v: 1, key: base64url(P) }`,
 *   with the window it grants for the link's flow control (`window`, bytes;
 *   see `_relay_link.ts`). A hello without `window` is of a peer of an earlier
 *   version: the link then runs without flow control. Old peers ignore the
 *   field, so both versions still connect.
 * - `Z = X25519(own private key, peer's P)`; a Z of all zeros (a low-order
 *   peer key) is refused.
 * - The key of the direction from A to B is
 *   `HKDF-SHA-256(ikm = Z, salt = "mcp-webrtc/v1 relay", info = "mcp-webrtc/v1 relay key\n" || P_A || P_B)`,
 *   32 bytes, for AES-256-GCM. Each side seals with the key of its own
 *   direction and opens with the other's, so a frame reflected back to its
 *   sender does not open.
 * - Frame number n (from 0) of a direction is sealed with the 96-bit IV
 *   `0x00000000 || uint64be(n)`, no additional data; the counter is never
 *   sent. A receiver opens frame n with the IV of the next number it expects,
 *   so a frame altered, dropped, replayed or reordered by the relay fails
 *   authentication; after one failure the receiver refuses everything.
 *
 * @module
 */

import { decodeBase64Url, encodeBase64Url } from "../_base64url.ts";
import { RelayError } from "../errors.ts";

/** The version of the relay's key exchange and frames. */
export const RELAY_VERSION = 1;
/** The signalling message type that carries a relay public key. */
export const RELAY_HELLO = "relay";
/** Bytes of AES-GCM's authentication tag, added to every frame. */
export const RELAY_TAG_BYTES = 16;
/**
 * Frames a direction may seal before the connection must end: far below
 * AES-GCM's limit for one key with unique IVs, and never reached (a frame
 * per microsecond for eight years).
 */
const MAX_FRAMES = 2 ** 48;

const encoder = new TextEncoder();
const SALT = encoder.encode("mcp-webrtc/v1 relay");
const INFO = encoder.encode("mcp-webrtc/v1 relay key\n");

/** The relay hello: this side's public key, for the sealed signalling. */
export interface RelayHello {
  readonly type: typeof RELAY_HELLO;
  readonly v: typeof RELAY_VERSION;
  /** The X25519 public key, 43 base64url characters. */
  readonly key: string;
  /** Why the sender wants the relay, for the other side's log. */
  readonly reason?: string;
  /**
   * The bytes of sealed frames the sender lets the other side have in flight
   * toward it (the flow control's window); absent from peers of an earlier
   * version, which have no flow control.
   */
  readonly window?: number;
}

/** This side's ephemeral X25519 key pair for one connection. */
export class RelayKeyShare {
  readonly #privateKey: CryptoKey;
  /** The raw public key, 32 bytes. */
  readonly publicKey: Uint8Array<ArrayBuffer>;
  #used = false;

  private constructor(privateKey: CryptoKey, publicKey: Uint8Array<ArrayBuffer>) {
    this.#privateKey = privateKey;
    this.publicKey = publicKey;
  }

  /** Makes a fresh key pair (the private key is not extractable). */
  static async create(): Promise<RelayKeyShare> {
    const pair = await crypto.subtle.generateKey({ name: "X25519" }, false, [
      "deriveBits",
    ]) as CryptoKeyPair;
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new RelayKeyShare(pair.privateKey, raw);
  }

  /** The hello that carries this public key, and the window this side grants. */
  hello(reason?: string, window?: number): RelayHello {
    const hello: RelayHello = {
      type: RELAY_HELLO,
      v: RELAY_VERSION,
      key: encodeBase64Url(this.publicKey),
      ...(reason === undefined ? {} : { reason: reason.slice(0, 200) }),
      ...(window === undefined ? {} : { window }),
    };
    return hello;
  }

  /**
   * Derives the two directions' ciphers from the peer's public key. A key
   * share derives once: a second peer key is refused.
   *
   * @throws {RelayError} If the peer key is malformed or of low order, or this share was used.
   */
  async derive(peerPublicKey: Uint8Array<ArrayBuffer>): Promise<RelayCipher> {
    if (this.#used) {
      throw new RelayError(
        "Cannot derive relay keys as this key share already derived them: make a new one per connection",
      );
    }
    this.#used = true;
    if (peerPublicKey.byteLength !== 32) {
      throw new RelayError(
        `Cannot derive relay keys as the peer's public key is ${peerPublicKey.byteLength} bytes: X25519 keys are 32`,
      );
    }
    let shared: Uint8Array;
    try {
      const peer = await crypto.subtle.importKey(
        "raw",
        peerPublicKey,
        { name: "X25519" },
        false,
        [],
      );
      shared = new Uint8Array(
        await crypto.subtle.deriveBits({ name: "X25519", public: peer }, this.#privateKey, 256),
      );
    } catch (cause) {
      throw new RelayError(
        "Cannot derive relay keys as the peer's public key is not a valid X25519 key",
        { cause },
      );
    }
    if (shared.every((byte) => byte === 0)) {
      throw new RelayError(
        "Cannot derive relay keys as the peer's public key is of low order: the peer is faulty or hostile",
      );
    }
    const ikm = await crypto.subtle.importKey(
      "raw",
      shared as Uint8Array<ArrayBuffer>,
      "HKDF",
      false,
      [
        "deriveKey",
      ],
    );
    const key = (from: Uint8Array, to: Uint8Array) =>
      crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: SALT, info: concat(INFO, from, to) },
        ikm,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    const [send, receive] = await Promise.all([
      key(this.publicKey, peerPublicKey),
      key(peerPublicKey, this.publicKey),
    ]);
    return new RelayCipher(send, receive);
  }
}

/**
 * Reads a relay hello's public key.
 *
 * @returns The 32-byte key, or `undefined` if the hello is malformed.
 */
export function readRelayHello(
  message: Record<string, unknown>,
): Uint8Array<ArrayBuffer> | undefined {
  if (message.type !== RELAY_HELLO || message.v !== RELAY_VERSION) return undefined;
  if (typeof message.key !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(message.key)) return undefined;
  const key = decodeBase64Url(message.key);
  return key?.byteLength === 32 ? key : undefined;
}

/**
 * Both directions of one relay connection: `seal` numbers frames in the order
 * it is called, `open` expects them in exactly that order.
 */
export class RelayCipher {
  readonly #send: CryptoKey;
  readonly #receive: CryptoKey;
  #sent = 0;
  #received = 0;
  #failed?: RelayError;

  constructor(send: CryptoKey, receive: CryptoKey) {
    this.#send = send;
    this.#receive = receive;
  }

  /** Frames sealed so far. */
  get sealed(): number {
    return this.#sent;
  }

  /** Frames opened so far. */
  get opened(): number {
    return this.#received;
  }

  /**
   * Seals the next frame. Its number is taken when called, so frames must be
   * sent in the order of the calls.
   *
   * @throws {RelayError} If the direction has sealed its maximum of frames.
   */
  seal(plaintext: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#sent >= MAX_FRAMES) {
      return Promise.reject(
        new RelayError("Cannot seal a relay frame as the connection sealed its maximum: reconnect"),
      );
    }
    const iv = ivOf(this.#sent++);
    return crypto.subtle.encrypt({ name: "AES-GCM", iv }, this.#send, plaintext).then((sealed) =>
      new Uint8Array(sealed)
    );
  }

  /**
   * Opens the next frame from the peer. Its number is taken when called, so
   * frames must be opened in the order they arrived.
   *
   * @throws {RelayError} If the frame is not the next one the peer sealed; every later call throws too.
   */
  open(frame: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#failed) return Promise.reject(this.#failed);
    const number = this.#received++;
    return crypto.subtle.decrypt({ name: "AES-GCM", iv: ivOf(number) }, this.#receive, frame).then(
      (plain) => new Uint8Array(plain),
      (cause) => {
        this.#failed ??= new RelayError(
          `Refused relayed frame ${number} as it is not the peer's frame ${number}: the relay altered, dropped, replayed or reordered frames, so the relay path is closed`,
          { cause },
        );
        throw this.#failed;
      },
    );
  }
}

function ivOf(counter: number): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(counter));
  return iv;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
