/**
 * One connection to the other peer, in steps read in order. Private to the
 * package: the transports are the public face.
 *
 * 1. `runtime.ts`: the runtime's `RTCPeerConnection` (and WebSocket client).
 * 2. `peer/types.ts`: the shapes a connection is made of and the settings of one peer.
 * 3. `peer/sdp.ts`: the text of offers, answers and candidates, and the marks of this module.
 * 4. `peer/candidates.ts`: when candidates cross the signalling.
 * 5. `peer/negotiate.ts`: the offer side and the answer side, each one async function.
 * 6. `peer/diagnosis.ts`: what a failed connect says, from what was observed.
 * 7. `peer/direct.ts`: {@linkcode Peer}, one `RTCPeerConnection` and its lifetime.
 * 8. `peer/retry.ts`: when a direct connect is tried once more, and its attempts.
 * 9. `peer/path_peer.ts`: {@linkcode PathPeer}, the direct path or the relay (`relay/`).
 *
 * @module
 */

export { resolvePeerConnection } from "./runtime.ts";
export {
  type Connected,
  type ConnectionPath,
  type ConnectStep,
  DEFAULT_ICE_SERVERS,
  type IceCandidateInit,
  type IceServer,
  type PeerConnectionConstructor,
  type PeerConnectionLike,
  type PeerOptions,
} from "./peer/types.ts";
export {
  markDescription,
  offerAsApplied,
  readMaxMessageSize,
  splitCandidates,
} from "./peer/sdp.ts";
export { Peer } from "./peer/direct.ts";
export { PathPeer, type PathPeerOptions, RELAY_PATH_TYPE, relayFlow } from "./peer/path_peer.ts";
