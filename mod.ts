/**
 * MCP over WebRTC: an MCP client reaches an MCP server that no HTTP request
 * can reach, peer to peer over an encrypted data channel.
 *
 * @module
 */
export * from "./src/signaling/signaling.ts";
export * from "./src/signaling/memory_signaling.ts";
