/// <reference types="@cloudflare/workers-types" />
/**
 * The TURN credentials one client address may be minted, across every room:
 * a Durable Object per address (`TURN_QUOTAS`, by name), holding one token
 * bucket in storage. A stranger who opens rooms of their own still asks from
 * one address, so the rooms do not multiply what it gets.
 *
 * @module
 */
import { DurableObject } from "cloudflare:workers";

/** A token bucket as stored: tokens left, and when they were counted (ms since the epoch). */
interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Takes one token from the bucket stored under `key`: `burst` tokens at once,
 * refilled evenly over `windowSeconds`.
 *
 * @returns Whether there was a token to take; a refusal takes nothing.
 *
 * @example Three a window, then refused
 * ```ts ignore
 * for (let i = 0; i < 3; i++) assert.ok(await takeToken(storage, "turn", 3, 3600));
 * assert.equal(await takeToken(storage, "turn", 3, 3600), false);
 * ```
 */
export async function takeToken(
  storage: DurableObjectStorage,
  key: string,
  burst: number,
  windowSeconds: number,
): Promise<boolean> {
  const now = Date.now();
  const stored = await storage.get<Bucket>(key);
  const valid = typeof stored?.tokens === "number" && typeof stored.at === "number";
  const tokens = valid
    ? Math.min(burst, stored.tokens + ((now - stored.at) / 1000) * (burst / windowSeconds))
    : burst;
  if (tokens < 1) return false;
  await storage.put<Bucket>(key, { tokens: tokens - 1, at: now });
  return true;
}

/** The storage key of an address's bucket. */
const BUCKET = "bucket";

/**
 * One client address's quota of TURN credentials. Its storage is deleted a
 * window after the last credential (the bucket is full again by then), so
 * addresses seen once cost nothing for long.
 *
 * @example Ask the quota of the request's address
 * ```ts ignore
 * const quota = env.TURN_QUOTAS.get(env.TURN_QUOTAS.idFromName(address));
 * if (!(await quota.take(12, 3600))) return refuse("ice_servers_limited");
 * ```
 */
export class TurnQuota extends DurableObject {
  /**
   * Takes one credential from this address's quota.
   *
   * @param burst Credentials per window.
   * @param windowSeconds The window, in seconds.
   * @returns Whether the address may be minted one now.
   */
  async take(burst: number, windowSeconds: number): Promise<boolean> {
    const taken = await takeToken(this.ctx.storage, BUCKET, burst, windowSeconds);
    if (taken) await this.ctx.storage.setAlarm(Date.now() + windowSeconds * 1000);
    return taken;
  }

  /** Forgets the address: a window after its last credential its bucket is full anyway. */
  override async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
