/**
 * Streamable HTTP at both ends of the bridge: a local endpoint that HTTP-only
 * MCP clients use (`connect --http`), and an upstream HTTP MCP server on the
 * desktop (`serve --url`).
 *
 * @module
 */
import { settle } from "../_async.ts";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { DEFAULT_MAX_RECEIVE_SIZE, HTTP_TERMINATE_TIMEOUT } from "../constants.ts";
import { type Bridge, bridge, type BridgeOptions } from "./bridge.ts";

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

/**
 * The HTTP side of one session, routing what the remote server sends to the
 * right SSE stream: a response to its request's stream, a progress
 * notification to the stream of the request that asked for progress, any
 * other server message to the stream of the latest request in flight (or,
 * with none in flight, to the client's standalone GET stream).
 */
class RoutingTransport implements Transport {
  readonly #inner: WebStandardStreamableHTTPServerTransport;
  readonly #inFlight: Id[] = [];
  readonly #progress = new Map<string | number, Id>();

  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;

  constructor(inner: WebStandardStreamableHTTPServerTransport) {
    this.#inner = inner;
  }

  start(): Promise<void> {
    this.#inner.onmessage = (message) => {
      if ("method" in message && "id" in message) {
        this.#inFlight.push(message.id as Id);
        const token = (message.params as { _meta?: { progressToken?: string | number } })?._meta
          ?.progressToken;
        if (token !== undefined) this.#progress.set(token, message.id as Id);
      } else if ("method" in message && message.method === "notifications/cancelled") {
        this.#settle((message.params as { requestId?: Id })?.requestId);
      }
      this.onmessage?.(message);
    };
    this.#inner.onerror = (error) => this.onerror?.(error);
    this.#inner.onclose = () => this.onclose?.();
    return this.#inner.start();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (!("method" in message) && "id" in message) {
      this.#settle(message.id as Id);
      return this.#inner.send(message);
    }
    let related: Id | undefined;
    if ("method" in message && message.method === "notifications/progress") {
      related = this.#progress.get(
        (message.params as { progressToken: string | number })
          .progressToken,
      );
    }
    related ??= this.#inFlight.at(-1);
    return this.#inner.send(message, { relatedRequestId: related });
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  #settle(id: Id | undefined): void {
    if (id === undefined) return;
    const index = this.#inFlight.indexOf(id);
    if (index >= 0) this.#inFlight.splice(index, 1);
    for (const [token, request] of this.#progress) {
      if (request === id) this.#progress.delete(token);
    }
  }
}

/** Options of {@linkcode serveHttp}. */
export interface ServeHttpOptions {
  /** The address to listen on, e.g. `127.0.0.1`. */
  hostname: string;
  /** The port to listen on; `0` picks a free one. */
  port: number;
  /** Makes the (not started) transport to the remote server for a new session. */
  dial: () => Transport;
  /**
   * Options of each session's bridge (error messages, callbacks), with the
   * session id.
   *
   * @default {{}}
   */
  bridge?: (sessionId: () => string | undefined) => BridgeOptions;
  /**
   * Milliseconds a session may stay without any open HTTP request (no
   * request in progress, no SSE stream) before it is closed, with its
   * connection: clients that exit without deleting their session would
   * otherwise keep it forever.
   *
   * @default {600000}
   */
  sessionIdle?: number;
  /**
   * Called once the server listens.
   *
   * @default {undefined}
   */
  onlisten?: (url: string) => void;
}

/** A running endpoint: see {@linkcode serveHttp}. */
export interface HttpEndpoint {
  /** The MCP endpoint, e.g. `http://127.0.0.1:8080/mcp`. */
  readonly url: string;
  /** The sessions open now. */
  readonly sessions: number;
  /** Closes every session and stops listening. */
  close(): Promise<void>;
}

interface Session {
  http: WebStandardStreamableHTTPServerTransport;
  bridge: Bridge;
}

function jsonError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status });
}

function isInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((message) =>
    typeof message === "object" && message !== null &&
    (message as { method?: unknown }).method === "initialize"
  );
}

/**
 * Serves Streamable HTTP at `/mcp`: each HTTP session (started by an
 * `initialize` POST) gets its own transport to the remote server, bridged
 * message by message; deleting the session or losing the remote ends both.
 *
 * @param options Where to listen and how to reach the remote server.
 * @returns The running endpoint.
 *
 * @example Expose a remote server to HTTP clients
 * ```ts ignore
 * import { serveHttp } from "./http.ts";
 * import { TicketSignaling, WebRTCClientTransport } from "../../mod.ts";
 *
 * const endpoint = serveHttp({
 *   hostname: "127.0.0.1",
 *   port: 8080,
 *   dial: () => new WebRTCClientTransport({ signaling: new TicketSignaling(Deno.args[0]) }),
 * });
 * console.log(endpoint.url);
 * ```
 */
export function serveHttp(options: ServeHttpOptions): HttpEndpoint {
  const sessions = new Map<string, Session>();
  const open = new Set<Bridge>();
  const activity = new Map<Bridge, { active: number; since: number }>();
  const idle = options.sessionIdle ?? 600_000;
  const track = (running: Bridge, info: Deno.ServeHandlerInfo) => {
    const state = activity.get(running);
    if (!state) return;
    state.active++;
    info.completed.catch(() => {}).finally(() => {
      state.active--;
      state.since = Date.now();
    });
  };
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [running, state] of activity) {
      if (state.active === 0 && now - state.since >= idle) {
        activity.delete(running);
        void running.close();
      }
    }
  }, Math.max(50, Math.min(idle / 4, 30_000)));
  Deno.unrefTimer(sweep);
  let listening = { hostname: options.hostname, port: options.port };
  const loopback = ["127.0.0.1", "localhost", "::1"].includes(options.hostname);

  const handler = async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (path !== "/mcp" && path !== "/mcp/") {
      return jsonError(404, -32000, "Not found: the MCP endpoint is /mcp");
    }
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId) {
      const session = sessions.get(sessionId);
      if (!session) return jsonError(404, -32001, "Session not found");
      track(session.bridge, info);
      return await session.http.handleRequest(request);
    }
    if (request.method !== "POST") {
      return jsonError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    let body: unknown;
    try {
      body = await request.clone().json();
    } catch {
      return jsonError(400, -32700, "Parse error: the body is not JSON");
    }
    if (!isInitialize(body)) {
      return jsonError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    const port = listening.port;
    const http = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, { http, bridge: running }),
      maxRequestBodySize: DEFAULT_MAX_RECEIVE_SIZE,
      enableDnsRebindingProtection: loopback,
      allowedHosts: loopback
        ? [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]
        : undefined,
    });
    const base = options.bridge?.(() => http.sessionId) ?? {};
    const running: Bridge = bridge(new RoutingTransport(http), options.dial(), {
      ...base,
      onclose: (first, cause) => {
        if (http.sessionId) sessions.delete(http.sessionId);
        open.delete(running);
        activity.delete(running);
        base.onclose?.(first, cause);
      },
    });
    open.add(running);
    activity.set(running, { active: 0, since: Date.now() });
    track(running, info);
    return await http.handleRequest(request, { parsedBody: body });
  };

  let resolveListening!: () => void;
  const ready = new Promise<void>((resolve) => (resolveListening = resolve));
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: (address) => {
      listening = { hostname: address.hostname, port: address.port };
      resolveListening();
      options.onlisten?.(endpointUrl(address.hostname, address.port));
    },
  }, handler);
  void ready;

  return {
    get url() {
      return endpointUrl(listening.hostname, listening.port);
    },
    get sessions() {
      return open.size;
    },
    async close() {
      clearInterval(sweep);
      await Promise.allSettled([...open].map((running) => running.close()));
      await server.shutdown();
    },
  };
}

function endpointUrl(hostname: string, port: number): string {
  return `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}/mcp`;
}
