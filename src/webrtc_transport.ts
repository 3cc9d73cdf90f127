/**
 * The WebRTC transports, `WebRTCClientTransport` and `WebRTCServerTransport`:
 * each is a view of one session on a {@linkcode WebRTCConnection} of its own.
 * The connection owns the peer connection, its liveness and the session; the
 * transport dials (or answers) it, opens (or accepts) exactly one session on
 * it, and closing the transport closes the connection and the signalling.
 *
 * Just over 400 lines: the options every WebRTC transport and connection
 * takes are documented here, in their one place.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { withResolvers } from "./_async.ts";
import { clockOf, SYSTEM_CLOCK, useClock } from "./_clock.ts";
import { DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RECEIVE_SIZE } from "./constants.ts";
import { PeerLostError, WebRTCTransportError } from "./errors.ts";
import { MemoryBudget } from "./framing.ts";
import type { ConnectionPath, ConnectStep } from "./peer.ts";
import type { Signaling } from "./signaling/signaling.ts";
import {
  ownConnection,
  WebRTCConnection,
  type WebRTCSessionTransport,
  type WebRTCTransportOptions,
} from "./webrtc_connection.ts";

export type { WebRTCTransportOptions };

export type {
  ConnectionPath,
  ConnectStep,
  IceServer,
  PeerConnectionConstructor,
  PeerConnectionLike,
} from "./peer.ts";

export { DEFAULT_ICE_SERVERS } from "./peer.ts";

/**
 * What the two WebRTC transports share: a view of one MCP session on a
 * {@linkcode WebRTCConnection} of its own, negotiated over the given
 * signalling, carrying MCP on the `mcp` data channel. The connection owns the
 * peer connection, its keepalives and the session; closing the transport
 * closes the connection. Use {@linkcode WebRTCClientTransport} or
 * {@linkcode WebRTCServerTransport}.
 *
 * @example Any WebRTC transport is an MCP transport
 * ```ts
 * import { MemorySignaling, WebRTCServerTransport, WebRTCTransport } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const [signaling] = MemorySignaling.createPair();
 * const transport = new WebRTCServerTransport({ signaling });
 * assert.ok(transport instanceof WebRTCTransport);
 * await transport.close();
 * ```
 */
export class WebRTCTransport implements Transport {
  readonly #signaling: Signaling;
  readonly #connection: WebRTCConnection;
  /** Whether this side serves the session (accepts it) rather than opening it. */
  readonly #serving: boolean;
  /** The session the serving side's connection hands over. */
  readonly #accepted = withResolvers<WebRTCSessionTransport>();
  #session?: WebRTCSessionTransport;
  /** The session, once its channel is open. */
  #opened?: WebRTCSessionTransport;
  #ready?: Promise<WebRTCSessionTransport>;
  #closing?: Promise<void>;
  #closed = false;

  /** Called for every JSON-RPC message from the peer. */
  onmessage?: (message: JSONRPCMessage) => void;
  /**
   * Called for a connection failure, a dropped frame, a refused signal, or a
   * peer that went silent (a `PeerLostError`, then `onclose`).
   */
  onerror?: (error: Error) => void;
  /** Called exactly once, when the transport has closed for any reason. */
  onclose?: () => void;

  /**
   * @param options Signalling, ICE servers and limits.
   * @param defaults Which side this is by default, and whether `start()`
   * waits for the connection (the side that waits opens the session; the
   * other serves it).
   * @throws {TypeError} If `options.signaling` is missing.
   * @throws {RangeError} If `connectTimeout`, `keepaliveInterval` or `idleTimeout` is out of range.
   */
  constructor(
    options: WebRTCTransportOptions,
    defaults: { initiator: boolean; awaitConnection: boolean },
  ) {
    if (!options || typeof options.signaling?.send !== "function") {
      throw new TypeError(
        "Cannot create WebRTC transport as 'options.signaling' is not a Signaling: pass { signaling }, e.g. from MemorySignaling.createPair()",
      );
    }
    const timeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
    if (!Number.isSafeInteger(timeout) || timeout < 1) {
      throw new RangeError(
        `Cannot create WebRTC transport as 'connectTimeout' must be a positive integer: received ${timeout}`,
      );
    }
    this.#signaling = options.signaling;
    this.#serving = !defaults.awaitConnection;
    const receiveCap = options.maxReceiveSize ?? DEFAULT_MAX_RECEIVE_SIZE;
    const connection = new WebRTCConnection({
      ...options,
      initiator: options.initiator ?? defaults.initiator,
      // One session carries one unfinished message at a time, held within the
      // receive cap: that is all its connection needs to hold.
      unfinishedBudget: Number.isSafeInteger(receiveCap) && receiveCap >= 1
        ? new MemoryBudget("maxReceiveSize", receiveCap)
        : undefined,
    });
    this.#connection = connection;
    ownConnection(connection, {
      // A silent peer is reported as the session's own keepalives reported it.
      lost: (error) => {
        if (error instanceof PeerLostError && !this.#closed) this.onerror?.(error);
      },
    });
    connection.onerror = (error) => this.onerror?.(error);
    connection.ondisconnect = () => void this.close();
    if (this.#serving) {
      connection.ontransport = (session) => {
        if (this.#session || this.#closed) return void session.close();
        this.#adopt(session);
        this.#accepted.resolve(session);
      };
    }
    this.#accepted.promise.catch(() => {});
  }

  /**
   * The connection this transport is the one session of, e.g. for its
   * `dials` or `ondisconnect`. Closing the transport closes it.
   *
   * @example The one session of its connection
   * ```ts
   * import { MemorySignaling, WebRTCServerTransport } from "@mcp/webrtc";
   * import assert from "node:assert/strict";
   *
   * const [signaling] = MemorySignaling.createPair();
   * const transport = new WebRTCServerTransport({ signaling });
   * assert.equal(transport.connection.sessions, 0); // until the client opens it
   * await transport.close();
   * assert.equal(transport.connection.connected, false);
   * ```
   */
  get connection(): WebRTCConnection {
    return this.#connection;
  }

  /**
   * Called once per step of connection setup (`signaling`, `offer`, `answer`,
   * `ice`, `dtls`, `channel`), e.g. to show progress or time each step.
   */
  get onconnectstep(): ((step: ConnectStep) => void) | undefined {
    return this.#connection.onconnectstep;
  }
  set onconnectstep(handler: ((step: ConnectStep) => void) | undefined) {
    this.#connection.onconnectstep = handler;
  }

  /**
   * Called with the network path (as {@linkcode getConnectionPath} gives it)
   * once it is known after the channel opened, and again each time ICE moves
   * to another candidate pair: libjuice may leave a TURN pair for a direct
   * one a few hundred ms after the channel opened. Read every
   * `PATH_CHECK_INTERVAL` (500 ms) while set, until the transport closes.
   *
   * @example Report the path, and each move to another
   * ```ts
   * import { Client } from "@modelcontextprotocol/sdk/client";
   * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
   * import {
   *   type ConnectionPath,
   *   MemorySignaling,
   *   WebRTCClientTransport,
   *   WebRTCServerTransport,
   * } from "@mcp/webrtc";
   * import assert from "node:assert/strict";
   *
   * // Peers on one machine: no STUN, loopback only.
   * const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
   * const [a, b] = MemorySignaling.createPair();
   * const server = new McpServer({ name: "desktop", version: "1.0.0" });
   * await server.connect(new WebRTCServerTransport({ signaling: b, ...local }));
   * const transport = new WebRTCClientTransport({ signaling: a, ...local });
   * const first = new Promise<ConnectionPath>((resolve) => {
   *   transport.onpathchange = (path) => {
   *     console.log(`via ${path.localCandidateType} to ${path.remoteCandidateType}`);
   *     resolve(path);
   *   };
   * });
   * const client = new Client({ name: "agent", version: "1.0.0" });
   * await client.connect(transport);
   * assert.equal((await first).localCandidateType, "host");
   * await client.close();
   * await server.close();
   * ```
   */
  get onpathchange(): ((path: ConnectionPath) => void) | undefined {
    return this.#connection.onpathchange;
  }
  set onpathchange(handler: ((path: ConnectionPath) => void) | undefined) {
    this.#connection.onpathchange = handler;
  }

  /**
   * Starts the connection. The client's `start()` resolves once the data
   * channel is open and rejects with a `ConnectError` if it cannot be; the
   * server's resolves at once and connects in the background (a failure goes
   * to `onerror`, then `onclose`).
   *
   * @throws {Error} If called twice: `Client.connect()` and `Server.connect()` call it.
   */
  async start(): Promise<void> {
    if (this.#ready) {
      throw new WebRTCTransportError(
        "WebRTC transport already started! If using Client or Server class, note that connect() calls start() automatically.",
      );
    }
    if (this.#closed) {
      throw new WebRTCTransportError(
        "Cannot start WebRTC transport as it is closed: create a new one",
      );
    }
    // The transport's clock, if a test gave it one, is its connection's.
    const clock = clockOf(this);
    if (clock !== SYSTEM_CLOCK) useClock(this.#connection, clock);
    this.#ready = this.#serving ? this.#serve() : this.#open();
    if (!this.#serving) {
      try {
        await this.#ready;
      } catch (error) {
        await this.close();
        throw error;
      }
    } else {
      this.#ready.catch((error) => {
        if (!this.#closed) this.onerror?.(error);
        return this.close();
      });
    }
  }

  /**
   * Sends one message, once the channel is open. Resolves when the channel can
   * take more; messages of any size are chunked as needed.
   *
   * @param message A JSON-RPC message.
   * @throws {WebRTCTransportError} If the transport is not started, is closed, or failed to connect.
   */
  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new WebRTCTransportError("Cannot send message as the WebRTC transport is closed"),
      );
    }
    if (!this.#ready) {
      return Promise.reject(
        new WebRTCTransportError(
          "Cannot send message as the WebRTC transport is not started: call start(), or connect() of a Client or Server",
        ),
      );
    }
    // Handed on in this turn once connected (no await on the way).
    return this.#opened
      ? this.#opened.send(message)
      : this.#ready.then((session) => session.send(message));
  }

  /** Whether the data channel is open and the transport not closed. */
  get connected(): boolean {
    return this.#opened !== undefined && !this.#closed;
  }

  /**
   * The network path the connection uses, once connected: the candidate type
   * of each end, `host` (the peer's own address), `srflx` or `prflx` (a NAT's
   * address for it) or `relay` (a TURN allocation; the path is through TURN
   * when either end is one), and the other end's address. `undefined` before
   * the connection is up, or if the `RTCPeerConnection` implementation
   * reports no statistics. See {@linkcode onpathchange} for its changes.
   *
   * @example Tell how an agent is connected
   * ```ts ignore
   * const path = await transport.getConnectionPath();
   * const turn = [path?.localCandidateType, path?.remoteCandidateType].includes("relay");
   * console.log(`connected ${turn ? "through TURN" : "directly"} to ${path?.remoteAddress}`);
   * ```
   */
  async getConnectionPath(): Promise<ConnectionPath | undefined> {
    if (this.#closed) return undefined;
    return await this.#connection.getConnectionPath();
  }

  /**
   * Closes the session, its connection (the data channel, the peer
   * connection) and the signalling; the other side's transport closes too.
   * Idempotent; `onclose` fires once.
   */
  close(): Promise<void> {
    this.#closed = true;
    // Assigned before closing: callbacks fired during it may call close() again.
    this.#closing ??= Promise.resolve().then(async () => {
      try {
        this.#accepted.reject(
          new WebRTCTransportError("Cannot connect as the transport was closed"),
        );
        await this.#connection.close();
        await this.#signaling.close();
      } finally {
        this.onclose?.();
      }
    });
    return this.#closing;
  }

  /** The opening side: dials the connection and opens the one session on it. */
  async #open(): Promise<WebRTCSessionTransport> {
    const session = this.#connection.openTransport();
    this.#adopt(session);
    await session.start();
    return this.#opened = session;
  }

  /** The serving side: waits for the other side's session, then starts it. */
  async #serve(): Promise<WebRTCSessionTransport> {
    await this.#connection.connect();
    const session = await this.#accepted.promise;
    await session.start();
    if (this.#closed) {
      throw new WebRTCTransportError("Cannot connect as the transport was closed");
    }
    return this.#opened = session;
  }

  /** Makes `session` this transport's: its messages, errors and end are the transport's. */
  #adopt(session: WebRTCSessionTransport): void {
    this.#session = session;
    session.onmessage = (message) => this.onmessage?.(message);
    session.onerror = (error) => this.onerror?.(error);
    session.onclose = () => void this.close();
  }
}
