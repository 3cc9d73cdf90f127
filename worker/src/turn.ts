/**
 * TURN credentials for room members, so that peers behind symmetric NATs
 * connect without anyone copying static credentials around. Two sources, each
 * on only when configured (both may be):
 *
 * - **A TURN server of your own** with a shared secret (coturn's
 *   `use-auth-secret`, the TURN REST API convention): `TURN_URLS` and the
 *   secret `TURN_SECRET`. The worker mints username `<expiry>:<peer id>` and
 *   credential `base64(HMAC-SHA1(secret, username))`, valid for
 *   `TURN_TTL_SECONDS`.
 * - **Cloudflare Realtime TURN**: `CLOUDFLARE_TURN_KEY_ID` and the secret
 *   `CLOUDFLARE_TURN_API_TOKEN`; the worker asks Cloudflare's API for
 *   credentials valid for `TURN_TTL_SECONDS`.
 *
 * Neither secret ever leaves the worker: members get only the short-lived
 * credentials, when they ask for them (`{"type":"ice_servers"}`), within the
 * limits per address and per room (`turn_quota.ts`).
 *
 * @module
 */
import { type IceServerFrame, isIceServerFrame } from "../../src/signaling/room_protocol.ts";

/** The `vars` and secrets that configure TURN credentials. */
export interface TurnEnv {
  /** Space- or comma-separated `turn:`/`turns:`/`stun:` URLs of your TURN server. */
  TURN_URLS?: string;
  /** The secret your TURN server shares with the worker (coturn's `static-auth-secret`). */
  TURN_SECRET?: string;
  /** Seconds the handed-out credentials stay valid. */
  TURN_TTL_SECONDS?: string;
  /** The id of a Cloudflare Realtime TURN key. */
  CLOUDFLARE_TURN_KEY_ID?: string;
  /** The API token of that key. */
  CLOUDFLARE_TURN_API_TOKEN?: string;
}

/**
 * Seconds handed-out credentials stay valid by default: an hour. Whoever
 * holds them may relay through the TURN server until then, so the lifetime is
 * what a stranger's one request is worth; the TURN REST API draft's day was
 * 24 times that. A TURN server checks them again on every refresh of an
 * allocation, so this also bounds how long one relayed connection lasts: a
 * client uses credentials only while at least half their lifetime is left,
 * so a connection gets at least half an hour. Raise `TURN_TTL_SECONDS` for
 * longer relayed sessions.
 */
export const DEFAULT_TURN_TTL_SECONDS = 3_600;

/** Where Cloudflare's API mints credentials for a TURN key. */
const CLOUDFLARE_API = "https://rtc.live.cloudflare.com/v1/turn/keys";

/** Reads `TURN_TTL_SECONDS`, or the default. */
export function turnTtl(env: TurnEnv): number {
  const value = Number(env.TURN_TTL_SECONDS);
  return env.TURN_TTL_SECONDS !== undefined && Number.isSafeInteger(value) && value > 0
    ? value
    : DEFAULT_TURN_TTL_SECONDS;
}

/**
 * Mints credentials for a TURN server that shares `secret` with the worker,
 * by the TURN REST API convention (coturn's `use-auth-secret`).
 *
 * @param secret The shared secret.
 * @param urls The server's URLs.
 * @param id Who the credentials are for (a room's peer id); it ends the username.
 * @param expires When they expire, in seconds since the epoch.
 * @returns One ICE server entry.
 *
 * @example Credentials of a guest, valid for an hour
 * ```ts
 * import { restTurnServer } from "./turn.ts";
 * import assert from "node:assert/strict";
 *
 * const expires = Math.floor(Date.now() / 1000) + 3600;
 * const server = await restTurnServer("s3cret", ["turn:turn.example:3478"], "0123456789abcdef", expires);
 * assert.equal(server.username, `${expires}:0123456789abcdef`);
 * assert.match(server.credential!, /^[A-Za-z0-9+/]{27}=$/);
 * ```
 */
export async function restTurnServer(
  secret: string,
  urls: string[],
  id: string,
  expires: number,
): Promise<IceServerFrame> {
  const username = `${expires}:${id}`;
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", await hmacKey(secret), new TextEncoder().encode(username)),
  );
  return { urls, username, credential: btoa(String.fromCharCode(...mac)) };
}

/** The HMAC key of the last `TURN_SECRET`, imported once per isolate rather than per credential. */
let importedKey: { secret: string; key: Promise<CryptoKey> } | undefined;

function hmacKey(secret: string): Promise<CryptoKey> {
  if (importedKey?.secret !== secret) {
    const key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-1" },
      false,
      ["sign"],
    );
    importedKey = { secret, key };
    // A failed import is not kept: the next credential tries again.
    key.catch(() => importedKey?.key === key && (importedKey = undefined));
  }
  return importedKey.key;
}

/**
 * Asks Cloudflare Realtime TURN for credentials valid for `ttl` seconds.
 *
 * @param keyId The TURN key's id.
 * @param token The TURN key's API token.
 * @param ttl Seconds the credentials stay valid.
 * @param fetcher The `fetch` to use.
 * @returns The ICE servers Cloudflare handed out.
 * @throws {Error} If the API refused or answered something else than ICE servers.
 *
 * @example Ask for a day's credentials
 * ```ts ignore
 * const servers = await cloudflareTurnServers(env.CLOUDFLARE_TURN_KEY_ID, env.CLOUDFLARE_TURN_API_TOKEN, 86400, fetch);
 * ```
 */
export async function cloudflareTurnServers(
  keyId: string,
  token: string,
  ttl: number,
  fetcher: typeof fetch,
): Promise<IceServerFrame[]> {
  const response = await fetcher(
    `${CLOUDFLARE_API}/${encodeURIComponent(keyId)}/credentials/generate-ice-servers`,
    {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ ttl }),
    },
  );
  if (!response.ok) {
    throw new Error(
      `Cannot get Cloudflare TURN credentials as the API answered ${response.status}: check CLOUDFLARE_TURN_KEY_ID and CLOUDFLARE_TURN_API_TOKEN`,
    );
  }
  const body = await response.json() as { iceServers?: unknown };
  const servers = Array.isArray(body.iceServers) ? body.iceServers : [body.iceServers];
  const valid = servers.filter(isIceServerFrame);
  if (valid.length === 0 || valid.length !== servers.length) {
    throw new Error(
      "Cannot get Cloudflare TURN credentials as the API's answer holds no valid iceServers",
    );
  }
  return valid.map(({ urls, username, credential }) =>
    username === undefined ? { urls } : { urls, username, credential }
  );
}

/** The URLs in `TURN_URLS`. */
export function turnUrls(env: TurnEnv): string[] {
  return (env.TURN_URLS ?? "").split(/[\s,]+/).filter((url) => url !== "");
}
