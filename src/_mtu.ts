/**
 * The choice of the SCTP MTU, made when a peer connection is created.
 *
 * @module
 */
import { LOOPBACK_MTU } from "./constants.ts";

/**
 * The RTC configuration to create a peer connection with: as given, plus
 * {@linkcode LOOPBACK_MTU} as node-datachannel's `mtu` when the other peer
 * is known to take packets that large (its offer carries
 * `LARGE_PACKETS_MARK`), this one binds to a loopback address,
 * sets no `mtu` of its own, and may not take a TURN path: TURN wraps every
 * packet (and a relayed pair at MTU 4000 carried nothing here), so a
 * configuration with a TURN server or `iceTransportPolicy: "relay"` keeps
 * the default.
 *
 * @param config The configuration the user gave (`rtcConfiguration`).
 * @param iceServers The STUN and TURN servers the connection uses.
 * @param peerTakesLargePackets Whether the other peer said it takes them.
 * @returns The configuration to use.
 */
export function withPathMtu(
  config: Record<string, unknown>,
  iceServers: readonly { urls: string | string[] }[] = [],
  peerTakesLargePackets = false,
): Record<string, unknown> {
  if (config.mtu !== undefined || !peerTakesLargePackets || !isLoopback(config.bindAddress)) {
    return config;
  }
  const turn = iceServers.some((server) =>
    [server.urls].flat().some((url) => /^turns?:/.test(url))
  );
  if (turn || config.iceTransportPolicy === "relay") return config;
  return { ...config, mtu: LOOPBACK_MTU };
}

function isLoopback(address: unknown): boolean {
  if (typeof address !== "string") return false;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) || address === "::1";
}
