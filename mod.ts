/**
 * MCP over WebRTC: an MCP client reaches an MCP server that no HTTP request
 * can reach, peer to peer over an encrypted data channel.
 *
 * This entry holds what an application needs: the transports, the
 * connection and the listener, tickets, the `Signaling` seam with its ready
 * implementations, the errors and the documented defaults. The signalling
 * room's client, sealed signalling and the room's key helpers are in
 * `@mcp/webrtc/signaling`; the data-channel transport and its wire format in
 * `@mcp/webrtc/framing`.
 *
 * @example Connect an MCP client to an MCP server in one process
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { MemorySignaling, WebRTCClientTransport, WebRTCServerTransport } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
 * const [a, b] = MemorySignaling.createPair();
 * const server = new McpServer({ name: "example", version: "1.0.0" });
 * const client = new Client({ name: "example-client", version: "1.0.0" });
 * await server.connect(new WebRTCServerTransport({ signaling: b, ...local }));
 * await client.connect(new WebRTCClientTransport({ signaling: a, ...local }));
 * assert.equal(client.getServerVersion()?.name, "example");
 * await client.close();
 * await server.close();
 * ```
 *
 * @module
 */

// Transports, the connection and the listener.
export {
  type ConnectionPath,
  type ConnectStep,
  DEFAULT_ICE_SERVERS,
  type IceServer,
  type PeerConnectionConstructor,
  type PeerConnectionLike,
  WebRTCTransport,
  type WebRTCTransportOptions,
} from "./src/webrtc_transport.ts";
export { WebRTCClientTransport } from "./src/webrtc_client_transport.ts";
export { WebRTCServerTransport } from "./src/webrtc_server_transport.ts";
export {
  WebRTCConnection,
  type WebRTCConnectionOptions,
  type WebRTCSessionTransport,
} from "./src/webrtc_connection.ts";
export {
  type Agent,
  type AgentSession,
  type ConnectableServer,
  type Invite,
  type InviteOptions,
  type InviteRecord,
  type ListenOptions,
  type RevokeResult,
  WebRTCListener,
  type WebRTCListenerOptions,
} from "./src/webrtc_listener.ts";
export {
  type AuditRecord,
  PolicyTransport,
  type PolicyTransportOptions,
} from "./src/policy_transport.ts";

// Tickets.
export {
  assertTicketUsable,
  createGuestTicket,
  createTicket,
  type CreateTicketOptions,
  deriveTicketKeys,
  formatTicket,
  isTicketExpired,
  parseTicket,
  type Ticket,
  type TicketKeys,
  type TicketKind,
} from "./src/ticket.ts";

// Signalling: the seam and its ready implementations.
export type {
  Signaling,
  SignalingHub,
  SignalingMessage,
  SignalingStartOptions,
} from "./src/signaling/signaling.ts";
export { MemorySignaling } from "./src/signaling/memory_signaling.ts";
export { TicketSignaling, type TicketSignalingOptions } from "./src/signaling/ticket_signaling.ts";

// Errors: every one extends WebRTCTransportError.
export {
  AuthenticationError,
  ConnectError,
  type ConnectStage,
  FrameError,
  MessageSizeError,
  PeerLostError,
  PeerRefusalError,
  RelayError,
  SignalingRoomError,
  type SignalingRoomErrorCode,
  SignalRefusedError,
  TicketError,
  WebRTCTransportError,
} from "./src/errors.ts";

// The defaults of the options above.
export {
  DEFAULT_CONNECT_TIMEOUT,
  DEFAULT_CONNECTION_LINGER,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_MAX_AGENTS,
  DEFAULT_MAX_RECEIVE_SIZE,
  DEFAULT_MAX_SESSIONS_PER_AGENT,
  DEFAULT_MAX_TRACKED_REQUESTS,
  DEFAULT_MAX_UNFINISHED_BYTES,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  DEFAULT_SESSION_STARTS_PER_SECOND,
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
} from "./src/constants.ts";
