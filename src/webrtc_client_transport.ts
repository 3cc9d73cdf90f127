import { WebRTCTransport, type WebRTCTransportOptions } from "./webrtc_transport.ts";

/**
 * The MCP client's side of a WebRTC connection: it creates the `mcp` data
 * channel and the offer, and `start()` (called by `Client.connect()`) resolves
 * once the channel is open or rejects with a `ConnectError` that names the
 * stage that failed. It is the one session of a `WebRTCConnection` of its own
 * (`transport.connection`); for several sessions on one connection, use a
 * `WebRTCConnection` directly.
 *
 * @example Connect a Client to a server over WebRTC on this machine
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { MemorySignaling, WebRTCClientTransport, WebRTCServerTransport } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const [a, b] = MemorySignaling.createPair();
 * const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
 * const server = new McpServer({ name: "example", version: "1.0.0" });
 * await server.connect(new WebRTCServerTransport({ signaling: b, ...local }));
 * const client = new Client({ name: "example-client", version: "1.0.0" });
 * await client.connect(new WebRTCClientTransport({ signaling: a, ...local }));
 * assert.equal(client.getServerVersion()?.name, "example");
 * await client.close();
 * await server.close();
 * ```
 */
export class WebRTCClientTransport extends WebRTCTransport {
  /**
   * @param options Signalling, ICE servers and limits.
   * @throws {TypeError} If `options.signaling` is missing.
   */
  constructor(options: WebRTCTransportOptions) {
    super(options, { initiator: true, awaitConnection: true });
  }
}
