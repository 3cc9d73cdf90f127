/**
 * The local Streamable HTTP endpoint that HTTP-only MCP clients use
 * (`connect --http`): {@linkcode serveHttp} bridges each MCP session to its
 * own remote session. The other end, an upstream HTTP MCP server on the
 * desktop (`serve --url`), is `HttpUpstreamTransport` in `http_upstream.ts`.
 *
 * Over 400 lines for a reason: the endpoint is one HTTP handler whose checks
 * (origin, host, media types, body size, session count and idle time) are
 * each a few lines of the same request's path, and read best in its order.
 *
 * @module
 */
import { deadline } from "../_async.ts";
import { clockOf } from "../_clock.ts";
// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
// @ts-types="@modelcontextprotocol/sdk/types"
import { isInitializeRequest, isJSONRPCRequest } from "@modelcontextprotocol/sdk/types.js";
import {
  DEFAULT_MAX_HTTP_SESSIONS,
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_MAX_RECEIVE_SIZE,
  HTTP_BODY_TIMEOUT,
  HTTP_SESSION_IDLE,
  HTTP_SWEEP_MAX_INTERVAL,
  HTTP_SWEEP_MIN_INTERVAL,
  MAX_HTTP_BODY_BYTES,
  MAX_HTTP_INITIALIZE_SIZE,
} from "../constants.ts";
import { type Bridge, bridge, type BridgeOptions } from "./bridge.ts";

export { type HttpUpstreamOptions, HttpUpstreamTransport } from "./http_upstream.ts";

type Id = string | number;

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
   * session id. Its `maxQueuedBytes` also bounds what the session's event
   * streams hold that the HTTP client has not read: past it, `onerror` is
   * called for side `a` with an error naming it, the session is closed, and
   * `onclose` gets that error as its cause.
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
   * The most sessions held at once; one more `initialize` is answered `503`
   * before anything is dialled.
   *
   * @default {64}
   */
  maxSessions?: number;
  /**
   * Milliseconds a request's whole body may take to arrive once its headers
   * are in; a slower one is answered `408`, and what it sent is let go.
   *
   * @default {HTTP_BODY_TIMEOUT} (10000)
   */
  bodyTimeout?: number;
  /**
   * Bytes of request bodies read at once, across all connections; a body
   * whose bytes do not fit is answered `503` with `Retry-After`.
   *
   * @default {MAX_HTTP_BODY_BYTES} (134217728)
   */
  maxBodyBytes?: number;
  /**
   * Origins, besides those on `localhost`, `127.0.0.1` and `[::1]`, whose
   * pages may send requests (e.g. `https://app.example`); a request with any
   * other `Origin` is answered `403`. Requests without `Origin` (not from a
   * browser) are taken.
   *
   * @default {[]}
   */
  allowedOrigins?: string[];
  /**
   * Host names, besides `localhost` and IP addresses, that requests may name
   * in `Host`; any other is answered `403`, as a DNS-rebinding page names
   * its own.
   *
   * @default {[]}
   */
  allowedHosts?: string[];
  /**
   * Called with an error that a request met inside the endpoint (a bug, or a
   * transport to the remote server that could not be made); the request is
   * answered `500` with a JSON-RPC error (`-32603`) saying so.
   *
   * @default {undefined}
   */
  onerror?: (error: Error) => void;
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
  /** Resolves once the server listens (and {@linkcode HttpEndpoint.url} has its port). */
  readonly listening: Promise<void>;
  /** Closes every session and stops listening. */
  close(): Promise<void>;
}

interface Session {
  http: WebStandardStreamableHTTPServerTransport;
  bridge: Bridge;
  unread: UnreadEvents;
}

/**
 * What the event streams of one HTTP session hold that its client has not
 * read yet, within a limit. The SDK's transport writes each message into its
 * stream at once (its `send()` resolves before anything is read), so a client
 * that reads nothing would make it hold every answer: each stream is passed
 * on through {@linkcode UnreadEvents.watch}, which takes what the SDK writes
 * and hands it on only as the server pulls it for the socket, counting the
 * bytes in between. Past the limit `onover` is called once and every stream
 * is dropped with what it held.
 */
class UnreadEvents {
  readonly #limit: number;
  readonly #onover: (error: Error) => void;
  readonly #drops = new Set<(reason: Error) => void>();
  #bytes = 0;
  #over = false;

  constructor(limit: number, onover: (error: Error) => void) {
    this.#limit = limit;
    this.#onover = onover;
  }

  /** The response, its event stream (if it is one) counted. */
  watch(response: Response): Response {
    if (
      !response.body ||
      !mediaTypes(response.headers.get("content-type")).includes("text/event-stream")
    ) {
      return response;
    }
    return new Response(this.#counted(response.body), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  #counted(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const source = body.getReader();
    const queue: Uint8Array[] = [];
    let held = 0;
    let done = false;
    let dropped = false;
    let wake: (() => void) | undefined;
    const release = () => {
      this.#bytes -= held;
      held = 0;
      queue.length = 0;
    };
    const drop = (reason: Error) => {
      dropped = true;
      release();
      void source.cancel(reason).catch(() => {});
      wake?.();
    };
    this.#drops.add(drop);
    void (async () => {
      try {
        while (!dropped) {
          const { value, done: ended } = await source.read();
          if (ended || dropped) break;
          queue.push(value);
          held += value.byteLength;
          this.#bytes += value.byteLength;
          wake?.();
          if (this.#bytes > this.#limit) this.#overflow();
        }
      } catch {
        // The SDK's stream failed: this one ends with what it holds.
      } finally {
        done = true;
        wake?.();
      }
    })();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (queue.length === 0 && !done && !dropped) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
        const chunk = dropped ? undefined : queue.shift();
        if (chunk === undefined) {
          // Ended, or dropped: the stream ends here (an error would only be printed by the server).
          this.#drops.delete(drop);
          controller.close();
          return;
        }
        held -= chunk.byteLength;
        this.#bytes -= chunk.byteLength;
        controller.enqueue(chunk);
      },
      cancel: (reason) => {
        this.#drops.delete(drop);
        drop(reason instanceof Error ? reason : new Error(String(reason)));
      },
    }, { highWaterMark: 0 });
  }

  #overflow(): void {
    if (this.#over) return;
    this.#over = true;
    const error = new Error(
      `Cannot hold more for the HTTP client as what its event streams hold unread would exceed 'maxQueuedBytes' (${this.#limit} bytes, ${this.#bytes} held): it is not reading what it is sent; its session is closed`,
    );
    for (const drop of [...this.#drops]) drop(error);
    this.#drops.clear();
    this.#onover(error);
  }
}

function jsonError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status });
}

function mentionsInitialize(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((message) =>
    typeof message === "object" && message !== null &&
    (message as { method?: unknown }).method === "initialize"
  );
}

/** The host names of this machine's loopback interface, as `URL.hostname` writes them. */
const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The host name of a `Host` header, lower-case, without its port or a final dot. */
function hostName(host: string): string {
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0];
  return name.toLowerCase().replace(/\.$/, "");
}

/**
 * A `Host` header's host name and port, as `host[:port]` or `[ipv6][:port]`
 * with a port from 0 to 65535; `undefined` for anything else (a port that is
 * not a number, two values joined by a comma), which no URL can be made of.
 */
const HOST_HEADER = /^(\[[0-9a-fA-F:.]+\]|[^\s:,/?#@[\]\\]+)(?::(\d{1,5}))?$/;

/** Whether a `Host` header is one host name with an optional port from 0 to 65535. */
function isHostHeader(host: string): boolean {
  const match = HOST_HEADER.exec(host);
  return match !== null && (match[2] === undefined || Number(match[2]) <= 65535);
}

/** Whether a host name is an IP address: DNS rebinding needs a name to rebind. */
function isIpAddress(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || /^\[[0-9a-f:.]+\]$/.test(name);
}

/** The media types listed in an `Accept` or `Content-Type` header, lower-case, without parameters. */
function mediaTypes(header: string | null): string[] {
  return (header ?? "").split(",").map((part) => part.split(";")[0].trim().toLowerCase());
}

/** Shortens what a request sent before it is quoted in an answer. */
function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}

/**
 * Checks what a web page could forge or a rebinding page would show, before
 * anything else is read: `Host` and `Origin`, then the method and the media
 * types. Returns the refusal, or `undefined` to go on.
 */
function refusal(
  request: Request,
  allowed: { hosts: Set<string>; origins: Set<string> },
): Response | undefined {
  const host = request.headers.get("host") ?? "";
  if (!isHostHeader(host)) {
    return jsonError(
      400,
      -32000,
      `Cannot accept the request as its Host ${
        quote(host)
      } is not a host name with an optional port from 0 to 65535: send one Host, such as 127.0.0.1:8080`,
    );
  }
  const name = hostName(host);
  if (!(name === "localhost" || isIpAddress(name) || allowed.hosts.has(name))) {
    return jsonError(
      403,
      -32000,
      `Cannot accept the request as its Host ${
        quote(name).slice(1, -1)
      } is not this bridge's: a page that rebinds its own name to this machine is refused so; reach the bridge at localhost or an IP address, or pass --allow-host NAME to allow a name`,
    );
  }
  const origin = request.headers.get("origin");
  if (origin !== null) {
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      // "null" (a sandboxed or file: page) and anything malformed are refused below.
    }
    const local = url !== undefined && (url.protocol === "http:" || url.protocol === "https:") &&
      LOOPBACK_NAMES.has(url.hostname);
    if (!local && !(url && allowed.origins.has(url.origin))) {
      return jsonError(
        403,
        -32000,
        `Cannot accept the request as its Origin ${
          quote(origin).slice(1, -1)
        } is not allowed: pages on other sites may not use this bridge; pass --allow-origin ORIGIN to allow one`,
      );
    }
  }
  const method = request.method;
  if (method !== "POST" && method !== "GET" && method !== "DELETE") {
    const response = jsonError(
      405,
      -32000,
      `Cannot accept a ${
        quote(method).slice(1, -1)
      } request: the MCP endpoint takes GET, POST, DELETE`,
    );
    response.headers.set("allow", "GET, POST, DELETE");
    return response;
  }
  const accept = mediaTypes(request.headers.get("accept"));
  if (method === "POST") {
    const type = request.headers.get("content-type");
    if (mediaTypes(type)[0] !== "application/json" || type?.includes(",")) {
      return jsonError(
        415,
        -32000,
        `Cannot accept the request as its Content-Type is ${
          type === null ? "missing" : quote(type)
        }: MCP messages are sent as application/json`,
      );
    }
    if (!accept.includes("application/json") || !accept.includes("text/event-stream")) {
      return jsonError(
        406,
        -32000,
        "Cannot accept the request as its Accept header does not list both application/json and text/event-stream: a Streamable HTTP client accepts both",
      );
    }
  } else if (method === "GET" && !accept.includes("text/event-stream")) {
    return jsonError(
      406,
      -32000,
      "Cannot accept the request as its Accept header does not list text/event-stream: a GET opens an event stream",
    );
  }
  return undefined;
}

/** The bytes of request bodies an endpoint holds while it reads them, within a limit. */
interface BodyBudget {
  readonly limit: number;
  readonly timeout: number;
  taken: number;
}

/**
 * Reads a request's body, at most `limit` bytes, taking each chunk's bytes
 * from `budget` before it is kept and giving them back once read, within
 * `budget.timeout`. Resolves with its text, or with the refusal to answer:
 * `413` (longer than `limit`), `503` (the budget is spent), `408` (too slow),
 * `400` (broken off); `what` begins its message.
 */
async function readBody(
  request: Request,
  limit: number,
  limitName: string,
  budget: BodyBudget,
  what: string,
): Promise<string | Response> {
  // A refusal leaves the body unread: its connection is closed, not kept for another request.
  const refuse = (status: number, message: string) => {
    const response = jsonError(status, -32000, `${what} as ${message}`);
    response.headers.set("connection", "close");
    return response;
  };
  const tooLarge = () =>
    refuse(413, `its body is larger than ${limitName} (${limit} bytes): send a smaller one`);
  if (Number(request.headers.get("content-length") ?? 0) > limit) return tooLarge();
  if (!request.body) return "";
  const reader = request.body.getReader();
  const reading = (async (): Promise<string | Response> => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        if (size + value.byteLength > limit) return tooLarge();
        if (budget.taken + value.byteLength > budget.limit) {
          const response = refuse(
            503,
            `the request bodies being read at once would exceed MAX_HTTP_BODY_BYTES (${budget.limit} bytes): send it again in a moment`,
          );
          response.headers.set("retry-after", "1");
          return response;
        }
        budget.taken += value.byteLength;
        size += value.byteLength;
        chunks.push(value);
      }
    } finally {
      budget.taken -= size;
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return new TextDecoder().decode(bytes);
  })();
  try {
    const read = await deadline(reading, budget.timeout);
    if (typeof read !== "string") void reader.cancel().catch(() => {});
    return read;
  } catch (error) {
    void reader.cancel().catch(() => {});
    if ((error as Error).name === "TimeoutError") {
      return refuse(
        408,
        `its body did not arrive within HTTP_BODY_TIMEOUT (${budget.timeout} ms): send the whole body right after the headers`,
      );
    }
    return refuse(
      400,
      `the request's body could not be read (${
        quote((error as Error).message).slice(1, -1)
      }): the client broke off or sent a malformed body; send the request again`,
    );
  }
}

/** {@linkcode readBody}, then its text parsed as JSON (`400`, `-32700`, if it is not). */
async function readJsonBody(
  ...args: Parameters<typeof readBody>
): Promise<{ json: unknown } | Response> {
  const text = await readBody(...args);
  if (typeof text !== "string") return text;
  try {
    return { json: JSON.parse(text) };
  } catch {
    return jsonError(400, -32700, "Parse error: the body is not JSON");
  }
}

/**
 * Serves Streamable HTTP at `/mcp`: each HTTP session (started by an
 * `initialize` POST) gets its own transport to the remote server, bridged
 * message by message; deleting the session or losing the remote ends both.
 *
 * A web page can reach a port on 127.0.0.1, so every request is checked
 * before anything is read or dialled, as the MCP Streamable HTTP transport
 * asks of a local server: `Host` must be one host name with an optional port
 * (`400` otherwise), and that name `localhost`, an IP address or one of
 * `allowedHosts` (a DNS-rebinding page names its own), `Origin`, if sent, a
 * page on `localhost`, `127.0.0.1` or `[::1]` or one of `allowedOrigins`
 * (`403` otherwise); the method GET, POST or DELETE (`405`); a POST's
 * `Content-Type` `application/json` (`415`) and its `Accept` both
 * `application/json` and `text/event-stream` (`406`). Only one well-formed
 * JSON-RPC `initialize` request (`400` otherwise), at most
 * {@linkcode MAX_HTTP_INITIALIZE_SIZE} bytes (`413`), with fewer than
 * `maxSessions` sessions open (`503`), dials the remote server. Every body
 * must arrive within `bodyTimeout` (`408`), and the bodies read at once fit
 * in `maxBodyBytes` (`503`). Whatever fails
 * inside is answered `500` with a JSON-RPC error (`-32603`) and passed to
 * `onerror`.
 *
 * @param options Where to listen and how to reach the remote server.
 * @returns The running endpoint.
 * @throws {TypeError} If an allowed origin is not an http: or https: origin.
 * @throws {RangeError} If `maxSessions`, `maxBodyBytes` or `bodyTimeout` is not a positive integer.
 *
 * @example A page on another site is refused, and nothing is dialled
 * ```ts
 * import { serveHttp } from "./http.ts";
 * // @ts-types="@modelcontextprotocol/sdk/inMemory"
 * import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
 * import assert from "node:assert/strict";
 *
 * let dials = 0;
 * const endpoint = serveHttp({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   dial: () => (dials++, InMemoryTransport.createLinkedPair()[0]),
 * });
 * await endpoint.listening;
 * const response = await fetch(endpoint.url, {
 *   method: "POST",
 *   headers: { Origin: "https://evil.example", "Content-Type": "text/plain" },
 *   body: '{"jsonrpc":"2.0","id":0,"method":"initialize"}',
 * });
 * assert.equal(response.status, 403);
 * await response.body?.cancel();
 * assert.equal(dials, 0);
 * await endpoint.close();
 * ```
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
  const idle = options.sessionIdle ?? HTTP_SESSION_IDLE;
  const clock = clockOf(options);
  const track = (running: Bridge, info: Deno.ServeHandlerInfo) => {
    const state = activity.get(running);
    if (!state) return;
    state.active++;
    info.completed.catch(() => {}).finally(() => {
      state.active--;
      state.since = clock.now();
    });
  };
  const sweep = setInterval(() => {
    const now = clock.now();
    for (const [running, state] of activity) {
      if (state.active === 0 && now - state.since >= idle) {
        activity.delete(running);
        void running.close();
      }
    }
  }, Math.max(HTTP_SWEEP_MIN_INTERVAL, Math.min(idle / 4, HTTP_SWEEP_MAX_INTERVAL)));
  Deno.unrefTimer(sweep);
  let listening = { hostname: options.hostname, port: options.port };
  const maxSessions = options.maxSessions ?? DEFAULT_MAX_HTTP_SESSIONS;
  if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
    throw new RangeError(
      `Cannot serve HTTP as 'maxSessions' must be a positive integer: received ${maxSessions}`,
    );
  }
  const bodies: BodyBudget = {
    limit: options.maxBodyBytes ?? MAX_HTTP_BODY_BYTES,
    timeout: options.bodyTimeout ?? HTTP_BODY_TIMEOUT,
    taken: 0,
  };
  for (const [name, value] of [["maxBodyBytes", bodies.limit], ["bodyTimeout", bodies.timeout]]) {
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new RangeError(
        `Cannot serve HTTP as '${name}' must be a positive integer: received ${value}`,
      );
    }
  }
  const allowed = {
    hosts: new Set((options.allowedHosts ?? []).map(hostName)),
    origins: new Set((options.allowedOrigins ?? []).map(originOf)),
  };

  const handler = async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    // Nothing is read, and nothing dialled, before these checks pass.
    const refused = refusal(request, allowed);
    if (refused) return refused;
    const path = new URL(request.url).pathname;
    if (path !== "/mcp" && path !== "/mcp/") {
      return jsonError(404, -32000, "Not found: the MCP endpoint is /mcp");
    }
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId) {
      const session = sessions.get(sessionId);
      if (!session) return jsonError(404, -32001, "Session not found");
      track(session.bridge, info);
      if (request.method !== "POST") {
        return session.unread.watch(await session.http.handleRequest(request));
      }
      // Read here, within the endpoint's bounds, rather than by the SDK.
      const read = await readJsonBody(
        request,
        DEFAULT_MAX_RECEIVE_SIZE,
        "DEFAULT_MAX_RECEIVE_SIZE",
        bodies,
        "Cannot forward the request",
      );
      if (read instanceof Response) return read;
      return session.unread.watch(
        await session.http.handleRequest(request, { parsedBody: read.json }),
      );
    }
    if (request.method !== "POST") {
      return jsonError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    const read = await readJsonBody(
      request,
      MAX_HTTP_INITIALIZE_SIZE,
      "MAX_HTTP_INITIALIZE_SIZE",
      bodies,
      "Cannot open a session",
    );
    if (read instanceof Response) return read;
    const body = read.json;
    if (!isJSONRPCRequest(body) || !isInitializeRequest(body)) {
      return mentionsInitialize(body)
        ? jsonError(
          400,
          -32600,
          "Cannot open a session as the body is not a well-formed initialize request: a session starts with one JSON-RPC initialize request, with an id and its params, not in a batch",
        )
        : jsonError(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    if (open.size >= maxSessions) {
      return jsonError(
        503,
        -32000,
        `Cannot open another session as this bridge holds ${open.size}, the most --sessions allows: close one (DELETE) or wait for --session-idle to close an idle one`,
      );
    }
    const http = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      onsessioninitialized: (id) => void sessions.set(id, { http, bridge: running, unread }),
      maxRequestBodySize: DEFAULT_MAX_RECEIVE_SIZE,
    });
    const base = options.bridge?.(() => http.sessionId) ?? {};
    // What its client leaves unread is bounded as the bridge bounds each side's queue.
    let overflow: Error | undefined;
    const unread = new UnreadEvents(base.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, (error) => {
      overflow = error;
      base.onerror?.("a", error);
      void running.close();
    });
    const running: Bridge = bridge(new RoutingTransport(http), options.dial(), {
      ...base,
      onclose: (first, cause) => {
        if (http.sessionId) sessions.delete(http.sessionId);
        open.delete(running);
        activity.delete(running);
        base.onclose?.(first, cause ?? overflow);
      },
    });
    open.add(running);
    activity.set(running, { active: 0, since: clock.now() });
    track(running, info);
    const response = unread.watch(await http.handleRequest(request, { parsedBody: body }));
    // Checked above as the SDK checks; should it still refuse, nothing stays open.
    if (http.sessionId === undefined) void running.close();
    return response;
  };

  // Whatever fails inside is answered as JSON-RPC and reported, not thrown at the server.
  const answer = async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    try {
      return await handler(request, info);
    } catch (caught) {
      const error = caught instanceof Error ? caught : new Error(String(caught));
      options.onerror?.(error);
      return jsonError(
        500,
        -32603,
        `Internal error: the bridge failed on this request (${
          quote(error.message).slice(1, -1)
        }); it is reported on the bridge's stderr; send the request again`,
      );
    }
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
  }, answer);

  return {
    get url() {
      return endpointUrl(listening.hostname, listening.port);
    },
    get sessions() {
      return open.size;
    },
    listening: ready,
    async close() {
      clearInterval(sweep);
      await Promise.allSettled([...open].map((running) => running.close()));
      await server.shutdown();
    },
  };
}

/**
 * The origin a page at `text` has, e.g. `https://app.example`.
 *
 * @param text An origin, as an `Origin` header writes it.
 * @returns The origin, normalised.
 * @throws {TypeError} If it is not an http: or https: origin without a path.
 *
 * @example
 * ```ts
 * import { originOf } from "./http.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(originOf("HTTPS://App.Example:443"), "https://app.example");
 * assert.throws(() => originOf("app.example"), /origin/);
 * ```
 */
export function originOf(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    // Answered below.
  }
  if (
    !url || (url.protocol !== "http:" && url.protocol !== "https:") ||
    url.href !== `${url.origin}/` || text.endsWith("/")
  ) {
    throw new TypeError(
      `Cannot allow the origin "${text}" as it is not an origin: write it as scheme://host[:port], e.g. https://app.example`,
    );
  }
  return url.origin;
}

function endpointUrl(hostname: string, port: number): string {
  return `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}/mcp`;
}
