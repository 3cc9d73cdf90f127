/**
 * The choice of the SCTP MTU, made when a peer connection is created.
 *
 * @module
 */
import { LOOPBACK_MTU } from "./constants.ts";

/**
 * The RTC configuration to create a peer connection with: as given, plus
 * {@linkcode LOOPBACK_MTU} as node-datachannel's `mtu` when it binds to a
 * loopback address and sets no `mtu` of its own.
 *
 * @param config The configuration the user gave (`rtcConfiguration`).
 * @returns The configuration to use.
 */
export function withPathMtu(config: Record<string, unknown>): Record<string, unknown> {
  if (config.mtu !== undefined || !isLoopback(config.bindAddress)) return config;
  return { ...config, mtu: LOOPBACK_MTU };
}

function isLoopback(address: unknown): boolean {
  if (typeof address !== "string") return false;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) || address === "::1";
}
