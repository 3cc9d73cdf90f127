/**
 * The claim that binds a new peer connection to a lost one's sessions.
 *
 * Once a connection of this module is up, the dialling side opens a control
 * channel labelled {@linkcode CLAIM_LABEL} and sends `{ t: "hello" }`, or,
 * when it has sessions to resume, a claim `{ t: "claim", connection, nonce,
 * mac }`; the serving side answers a hello with a grant `{ t: "grant",
 * connection, secret }` (a connection id and a resume secret, 128 random bits
 * each, base64url: they travel only inside the DTLS channel, or the relay's
 * sealed link), and a claim with `{ t: "accepted", connection, secret }` (a
 * new grant: the old id is forgotten, so a replayed claim names nothing) or
 * `{ t: "refused", reason }`.
 *
 * The claim's `mac` is an HMAC-SHA-256 under a key derived (HKDF-SHA-256)
 * from the resume secret, salted with an HMAC under the signalling's sealing
 * key when there is one (a ticket's), over the connection id, the nonce and
 * both ends' bindings of the connection it is sent on: their DTLS certificate
 * fingerprints (from the descriptions exchanged), or on the relay their
 * X25519 keys. A claim seen on one connection is of no use on another.
 *
 * @module
 */

import { decodeBase64Url, encodeBase64Url } from "./_base64url.ts";
import type { Clock } from "./_clock.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";
import { MAX_RESUME_CLAIM_BYTES } from "./constants.ts";

/** The label of the control channel the claim is sent on. */
export const CLAIM_LABEL = "mcp-resume";

const INFO = new TextEncoder().encode("mcp-webrtc resume claim v1");
const SALT_LABEL = new TextEncoder().encode("mcp-webrtc resume salt v1");
const TOKEN = /^[A-Za-z0-9_-]{22}$/;
const MAC = /^[A-Za-z0-9_-]{43}$/;

/** What the serving side gives the dialling side for its next claim. */
export interface Grant {
  /** The connection id, 128 random bits, base64url. */
  readonly connection: string;
  /** The resume secret, 128 random bits, base64url. */
  readonly secret: string;
}

/** What binds a claim to the connection it is sent on. */
export interface Binding {
  /** The dialling side's DTLS fingerprint, or relay key. */
  readonly dialling: string;
  /** The serving side's DTLS fingerprint, or relay key. */
  readonly serving: string;
}

/** A claim, as sent. */
export interface Claim {
  readonly connection: string;
  readonly nonce: string;
  readonly mac: string;
}

function randomToken(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** A new grant: a connection id and a resume secret. */
export function newGrant(): Grant {
  return { connection: randomToken(), secret: randomToken() };
}

async function claimKey(secret: string, salt?: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const raw = decodeBase64Url(secret)!;
  const ikm = await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
  return await crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: salt ?? new Uint8Array(0), info: INFO },
    ikm,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign", "verify"],
  );
}

function claimData(connection: string, nonce: string, binding: Binding): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(
    ["mcp-webrtc/claim", connection, nonce, binding.dialling, binding.serving].join("\n"),
  ) as Uint8Array<ArrayBuffer>;
}

/** The key that seals each signalling's messages, where one does (a ticket's). */
const sealKeys = new WeakMap<object, CryptoKey>();

/** Records that `signaling` seals its messages with `key`. */
export function recordSealKey(signaling: object, key: CryptoKey): void {
  sealKeys.set(signaling, key);
}

/** The key `signaling` seals its messages with, if it does. */
export function sealKeyOf(signaling: object): CryptoKey | undefined {
  return sealKeys.get(signaling);
}

/**
 * The salt a sealing key adds to the claim's key: an HMAC under it, so that
 * the key never leaves its `CryptoKey`.
 */
export async function sealSalt(key: CryptoKey | undefined): Promise<Uint8Array<ArrayBuffer>> {
  if (!key) return new Uint8Array(0);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, SALT_LABEL));
}

/** The dialling side's claim for `grant` on the connection `binding` names. */
export async function makeClaim(
  grant: Grant,
  binding: Binding,
  salt?: Uint8Array<ArrayBuffer>,
): Promise<Claim> {
  const nonce = randomToken();
  const key = await claimKey(grant.secret, salt);
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, claimData(grant.connection, nonce, binding)),
  );
  return { connection: grant.connection, nonce, mac: encodeBase64Url(mac) };
}

/** A control message read from the channel, or `undefined` if it is malformed. */
export function readControl(data: unknown): Record<string, unknown> | undefined {
  if (typeof data !== "string" || data.length > MAX_RESUME_CLAIM_BYTES) return undefined;
  try {
    const value = JSON.parse(data);
    return value && typeof value === "object" && typeof value.t === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends `message` on a new control channel once it opens, and resolves with
 * the first answer (`undefined` if the channel closed, the answer was
 * malformed, or none came within `timeout` ms); then closes the channel.
 */
export function askOnChannel(
  channel: DataChannelLike,
  message: Record<string, unknown>,
  clock: Clock,
  timeout: number,
): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const done = (answer?: Record<string, unknown>) => {
      clock.clearTimeout(timer);
      resolve(answer);
      try {
        channel.close();
      } catch {
        // Already closed.
      }
    };
    const timer = clock.setTimeout(() => done(), timeout);
    const send = () => {
      try {
        channel.send(JSON.stringify(message));
      } catch {
        done();
      }
    };
    channel.addEventListener("message", (event) => {
      done(readControl((event as MessageEvent).data));
    });
    channel.addEventListener("close", () => done());
    if (channel.readyState === "open") send();
    else channel.addEventListener("open", send);
  });
}

/** A grant read from an answer, or `undefined` if it is malformed. */
export function readGrant(message: Record<string, unknown>): Grant | undefined {
  const { connection, secret } = message;
  if (typeof connection !== "string" || !TOKEN.test(connection)) return undefined;
  if (typeof secret !== "string" || !TOKEN.test(secret)) return undefined;
  return { connection, secret };
}

/**
 * The serving side's grants, each held for one holder (a connection whose
 * sessions a claim may take over): at most one grant per holder, so the book
 * is bounded by the holders kept.
 */
export class ClaimBook<T> {
  readonly #grants = new Map<string, { secret: string; holder: T }>();
  readonly #ids = new Map<T, string>();

  /** How many grants are held. */
  get size(): number {
    return this.#grants.size;
  }

  /** A new grant for `holder`; its earlier one is forgotten. */
  grant(holder: T): Grant {
    this.forget(holder);
    const grant = newGrant();
    this.#grants.set(grant.connection, { secret: grant.secret, holder });
    this.#ids.set(holder, grant.connection);
    return grant;
  }

  /** Forgets `holder`'s grant. */
  forget(holder: T): void {
    const id = this.#ids.get(holder);
    if (id === undefined) return;
    this.#ids.delete(holder);
    this.#grants.delete(id);
  }

  /**
   * Checks a claim on the connection `binding` names. An accepted claim's
   * grant is forgotten (its holder gets a new one from the caller).
   *
   * @returns The holder the claim names, or why it is refused.
   */
  async redeem(
    message: Record<string, unknown>,
    binding: Binding,
    salt?: Uint8Array<ArrayBuffer>,
  ): Promise<{ holder: T } | { refused: string }> {
    const { connection, nonce, mac } = message;
    if (
      typeof connection !== "string" || !TOKEN.test(connection) ||
      typeof nonce !== "string" || !TOKEN.test(nonce) ||
      typeof mac !== "string" || !MAC.test(mac)
    ) {
      return { refused: "malformed claim" };
    }
    const held = this.#grants.get(connection);
    if (!held) {
      return {
        refused:
          "unknown connection: the serving side restarted, the grace period passed, or the claim was used before",
      };
    }
    const key = await claimKey(held.secret, salt);
    const valid = await crypto.subtle.verify(
      "HMAC",
      key,
      decodeBase64Url(mac)!,
      claimData(connection, nonce, binding),
    );
    if (!valid) {
      return {
        refused:
          "wrong claim code: not made with this connection's secret, or for another connection",
      };
    }
    // Another claim of the same id may have been checked at the same time: one wins.
    if (this.#grants.get(connection) !== held) {
      return { refused: "unknown connection: the claim was used before" };
    }
    this.forget(held.holder);
    return { holder: held.holder };
  }
}

/**
 * What a test may see and change of a dialling connection's claims: the
 * grants it received, the claims it sent, and a forger for the next claim.
 */
export interface ClaimProbe {
  readonly grants: Grant[];
  readonly claims: Claim[];
  forge?: (claim: Claim, grant: Grant) => Claim | Promise<Claim>;
  /** Sends a hello where a claim would go, as a peer that lost its grant would. */
  withhold?: boolean;
  /** Called after each grant was recorded. */
  ongrant?: () => void;
}

/** The probes tests set on connections. */
export const claimProbes: WeakMap<object, ClaimProbe> = new WeakMap();
