/**
 * An upstream Streamable HTTP MCP server on the desktop (`serve --url`), as
 * the transport the bridge forwards the agent's session to.
 *
 * @module
 */
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { settle } from "../_async.ts";
import { HTTP_TERMINATE_TIMEOUT } from "../constants.ts";

type Id = string | number;

/** Options of {@linkcode HttpUpstreamTransport}. */
export interface HttpUpstreamOptions {
  /**
   * Headers sent with every request, e.g. `Authorization`.
   *
   * @default {{}}
   */
  headers?: Record<string, string>;
}

/**
 * A client transport to a Streamable HTTP MCP server that can be bridged
 * message by message: it notices the `initialize` exchange itself (which a
 * `Client` would report to its transport) so that later requests carry the
 * negotiated `MCP-Protocol-Version`, and it ends the HTTP session on close.
 *
 * @example Bridge an agent to a local HTTP server
 * ```ts ignore
 * import { HttpUpstreamTransport } from "./http.ts";
 *
 * const upstream = new HttpUpstreamTransport(new URL("http://127.0.0.1:3001/mcp"), {
 *   headers: { Authorization: "Bearer …" },
 * });
 * ```
 */
export class HttpUpstreamTransport implements Transport {
  readonly #inner: StreamableHTTPClientTransport;
  readonly #initializing = new Set<Id>();
  #closing?: Promise<void>;

  /** Called for every message from the server. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Called for request and stream failures. */
  onerror?: (error: Error) => void;
  /** Called once, when closed. */
  onclose?: () => void;

  /**
   * @param url The server's MCP endpoint.
   * @param options Headers.
   */
  constructor(url: URL, options: HttpUpstreamOptions = {}) {
    this.#inner = new StreamableHTTPClientTransport(url, {
      requestInit: { headers: options.headers ?? {} },
    });
  }

  /** Starts the transport (no request is made until the first message). */
  start(): Promise<void> {
    const inner = this.#inner;
    inner.onmessage = (message) => {
      if ("result" in message && this.#initializing.delete(message.id as Id)) {
        const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
        if (typeof version === "string") inner.setProtocolVersion(version);
      }
      this.onmessage?.(message);
    };
    inner.onerror = (error) => this.onerror?.(error);
    inner.onclose = () => void this.close();
    return inner.start();
  }

  /**
   * Posts one message to the server.
   *
   * @param message A JSON-RPC message.
   * @param options Passed to the SDK transport.
   * @throws {Error} If the server could not be reached or answered with an error status.
   */
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if ("method" in message && message.method === "initialize" && "id" in message) {
      this.#initializing.add(message.id as Id);
    }
    return this.#inner.send(message, options);
  }

  /** Ends the HTTP session (DELETE) and closes; idempotent, `onclose` fires once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        if (this.#inner.sessionId) {
          await settle(this.#inner.terminateSession(), HTTP_TERMINATE_TIMEOUT);
        }
        this.#inner.onclose = undefined;
        await this.#inner.close().catch(() => {});
      } finally {
        this.onclose?.();
      }
    })();
    return this.#closing;
  }
}
