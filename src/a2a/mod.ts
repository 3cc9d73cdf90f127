/**
 * A2A carries the signalling: an A2A agent (the server, in the cloud) reaches
 * the MCP server on the user's desktop (next to the user's A2A client) over
 * WebRTC, with offer, answer and candidates travelling inside the A2A task the
 * two already share. Built on the official `@a2a-js/sdk` (A2A v1.0).
 *
 * - On the agent: {@linkcode A2ASignalingRouter} opens a task's signalling for
 *   a `WebRTCClientTransport` and routes the desktop's replies; a task's
 *   signalling belongs to the request that opened it (a secret that request
 *   carries), even when the agent authenticates nobody.
 * - On the desktop: {@linkcode sendMessageOfferingMcp} sends the user's
 *   message offering the MCP server, answers the agent when it signals and
 *   serves a fresh server from `createServer` (made once the agent has the
 *   answer), and reports the MCP channel open
 *   or failed in its stream; {@linkcode A2AClientSignaling} is the piece under it.
 * - End-to-end sealing with `AuthenticatedSignaling`, keyed by a
 *   signalling-only ticket (`createTicket()` without a url) the two were
 *   paired with, or `sealed: false` said on both sides: a `key` that is not a
 *   key is a `TypeError`, never unsealed.
 *
 * ```ts
 * import { A2A_SIGNALING_EXTENSION_URI, a2aSignalingExtension } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * // The agent card announces the extension; the example of A2ASignalingRouter
 * // is a complete program with both sides.
 * const capabilities = { streaming: true, extensions: [a2aSignalingExtension()] };
 * assert.equal(capabilities.extensions[0]!.uri, A2A_SIGNALING_EXTENSION_URI);
 * ```
 *
 * @module
 */
export { A2A_MAX_KEY_ID_LENGTH } from "../constants.ts";
export {
  A2A_MAX_PENDING_MESSAGES,
  A2A_MAX_SIGNALING_MESSAGE_SIZE,
  A2A_MAX_SIGNALING_PARTS,
  A2A_SIGNALING_EXTENSION_URI,
  A2A_SIGNALING_MEDIA_TYPE,
  type A2AMcpOffer,
  a2aMcpOffer,
  a2aSignalingExtension,
  type A2ASignalingExtensionOptions,
} from "./extension.ts";
export {
  type A2ASignalingKeyLookup,
  A2ASignalingRouter,
  type OpenA2ASignalingOptions,
} from "./a2a_signaling_router.ts";
export { A2AClientSignaling, type A2AClientSignalingOptions } from "./a2a_client_signaling.ts";
export {
  type McpChannelEvent,
  type McpChannelStatus,
  sendMessageOfferingMcp,
  type SendMessageOfferingMcpOptions,
} from "./send_message_offering_mcp.ts";
