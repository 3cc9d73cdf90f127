/**
 * Signalling beyond tickets: the client of the signalling room (its host
 * side, {@linkcode SignalingRoom}, and its guest side,
 * {@linkcode WebSocketSignaling}), sealed signalling
 * ({@linkcode AuthenticatedSignaling}) and the room's key helpers. The errors
 * they raise ({@linkcode SignalingRoomError}, `AuthenticationError`) are in
 * the root entry.
 *
 * @example Make a room's id and key
 * ```ts
 * import { createRoomKey, keyVerifier, verifyKey } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const key = createRoomKey();
 * const room = await keyVerifier(key);
 * assert.ok(await verifyKey(key, room));
 * ```
 *
 * @module
 */
export {
  createRoomId,
  createRoomKey,
  type ReconnectOptions,
  SignalingRoom,
  type SignalingRoomOptions,
} from "./signaling_room.ts";
export { WebSocketSignaling, type WebSocketSignalingOptions } from "./websocket_signaling.ts";
export {
  AuthenticatedSignaling,
  type AuthenticatedSignalingOptions,
  type PreparedHello,
} from "./authenticated_signaling.ts";
export { keyVerifier, pairRoomId, roomUrl, verifyKey } from "./room_protocol.ts";
export type { WebSocketConstructor, WebSocketLike } from "../runtime.ts";
export { DEFAULT_HOST_TIMEOUT } from "../constants.ts";
