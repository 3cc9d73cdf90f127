import { WebRTCTransport, type WebRTCTransportOptions } from "./webrtc_transport.ts";

/**
 * The MCP server's side of a WebRTC connection: it answers the client's offer
 * and accepts the `mcp` data channel. `start()` (called by `Server.connect()`)
 * resolves at once, so a server can be connected before its client exists;
 * the connection completes in the background, and messages sent meanwhile
 * wait for it. A failure goes to `onerror`, then `onclose`.
 *
 * One transport serves one session of one client, on a connection of its own
 * (`transport.connection`); to accept many agents, each with any number of
 * sessions, on one signalling room, use a `WebRTCListener`.
 *
 * @example Serve one client
 * ```ts
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { MemorySignaling, WebRTCServerTransport } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const [, serverSide] = MemorySignaling.createPair();
 * const server = new McpServer({ name: "example", version: "1.0.0" });
 * await server.connect(new WebRTCServerTransport({ signaling: serverSide, iceServers: [] }));
 * assert.ok(server.isConnected());
 * await server.close();
 * ```
 */
export class WebRTCServerTransport extends WebRTCTransport {
  /**
   * @param options Signalling, ICE servers and limits.
   * @throws {TypeError} If `options.signaling` is missing.
   */
  constructor(options: WebRTCTransportOptions) {
    super(options, { initiator: false, awaitConnection: false });
  }
}
