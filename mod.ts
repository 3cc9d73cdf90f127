/**
 * MCP over WebRTC: an MCP client reaches an MCP server that no HTTP request
 * can reach, peer to peer over an encrypted data channel.
 *
 * @module
 */
export * from "./src/signaling/signaling.ts";
export * from "./src/signaling/memory_signaling.ts";
export * from "./src/errors.ts";
export * from "./src/data_channel_transport.ts";
export * from "./src/webrtc_transport.ts";
export * from "./src/webrtc_client_transport.ts";
export * from "./src/webrtc_server_transport.ts";
export * from "./src/constants.ts";
export * from "./src/ticket.ts";
export * from "./src/signaling/authenticated_signaling.ts";
export type { WebSocketConstructor, WebSocketLike } from "./src/websocket.ts";
export * from "./src/signaling/signaling_room.ts";
export * from "./src/signaling/websocket_signaling.ts";
export * from "./src/webrtc_connection.ts";
export * from "./src/webrtc_listener.ts";
export * from "./src/signaling/ticket_signaling.ts";
