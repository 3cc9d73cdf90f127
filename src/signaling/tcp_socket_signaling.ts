/**
 * aiortc's TCP signalling, for Deno and Node: the carrier of the examples of
 * aiortc and of the Python reference implementation (`mcp-webrtc`), so that
 * the line `new TcpSocketSignaling("localhost", 8000)` pairs a peer of this
 * module with one of theirs, or two of ours.
 *
 * The wire format: one JSON object per `\n`-terminated UTF-8 line,
 * - `{"type":"offer"|"answer","sdp":…}`,
 * - `{"type":"candidate","candidate":"candidate:…","id":<sdpMid>,"label":<sdpMLineIndex>}`,
 * - `{"type":"bye"}`.
 *
 * The side that speaks first (the offerer) listens on host:port for one
 * connection; the other connects. aiortc's side connects once, without
 * retrying; this one retries until the offerer listens, for at most
 * {@linkcode TCP_SIGNALING_CONNECT_TIMEOUT}. `close()` always sends bye before
 * it closes the socket: the reference spins at full CPU on a connection closed
 * without one.
 *
 * Messages of other types (wrappers such as `AuthenticatedSignaling` between
 * two peers of this module) travel as they are; aiortc knows none of them.
 *
 * @example A server that offers, as the reference's servers do
 * ```ts ignore
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { WebRTCServerTransport } from "@mcp/webrtc";
 * import { TcpSocketSignaling } from "@mcp/webrtc/tcp";
 *
 * const server = new McpServer({ name: "greeter", version: "1.0.0" });
 * await server.connect(
 *   new WebRTCServerTransport({
 *     signaling: new TcpSocketSignaling("localhost", 8000),
 *     initiator: true,
 *   }),
 * );
 * ```
 *
 * @module
 */

import { connect, createServer, type Server, type Socket } from "node:net";
import { delay, settle } from "../_async.ts";
import { BYE_TIMEOUT, TCP_SIGNALING_CONNECT_TIMEOUT } from "../constants.ts";
import { WebRTCTransportError } from "../errors.ts";
import type { SignalingMessage, SignalingStartOptions } from "./signaling.ts";
import { SignalingBase } from "./_signaling_base.ts";
import { clockOf } from "../_clock.ts";

/** The pause between two connection attempts; a refused connect costs nothing. */
const RETRY_INTERVAL = 100;

/** The longest line accepted: an SDP with its candidates is a few KiB. */
const MAX_LINE_LENGTH = 256 * 1024;

/** Options of {@linkcode TcpSocketSignaling}. */
export interface TcpSocketSignalingOptions {
  /**
   * Whether this side listens or connects. By default the offerer listens
   * (it speaks first), as in aiortc.
   *
   * @default {"listen" for the offerer, "connect" for the answerer}
   */
  role?: "listen" | "connect";
  /**
   * Milliseconds the connecting side retries while nobody listens.
   *
   * @default {30000}
   */
  connectTimeout?: number;
}

/**
 * aiortc's TCP signalling: one JSON object per line over one TCP connection.
 *
 * @example Two peers of this module on one machine
 * ```ts
 * import { TcpSocketSignaling } from "@mcp/webrtc/tcp";
 * import assert from "node:assert/strict";
 *
 * const offerer = new TcpSocketSignaling("127.0.0.1", 47_391);
 * const answerer = new TcpSocketSignaling("127.0.0.1", 47_391);
 * const received = new Promise((resolve) => (answerer.onmessage = resolve));
 * await Promise.all([offerer.start({ initiator: true }), answerer.start({ initiator: false })]);
 * await offerer.send({ type: "offer", sdp: "v=0" });
 * assert.deepEqual(await received, { type: "offer", sdp: "v=0" });
 * await Promise.all([offerer.close(), answerer.close()]);
 * ```
 */
export class TcpSocketSignaling extends SignalingBase {
  readonly #host: string;
  readonly #port: number;
  readonly #options: TcpSocketSignalingOptions;
  #socket?: Socket;
  #server?: Server;
  #connected?: Promise<void>;
  #byeSent = false;
  #buffer = "";

  /** Called for every message from the other peer, in order. */
  declare onmessage?: (message: SignalingMessage) => void;
  /** Called once when the connection is gone. */
  declare onclose?: () => void;
  /** Called for a line that is not a signalling message (it is dropped). */
  declare onerror?: (error: Error) => void;
  /** Called once the listening side accepts connections: the other side may start. */
  onlisten?: () => void;

  /**
   * @param host The host name or address to listen on or connect to.
   * @param port The TCP port.
   * @param options Which side listens, and how long to retry connecting.
   * @throws {RangeError} If `port` is not a TCP port number.
   */
  constructor(host: string, port: number, options: TcpSocketSignalingOptions = {}) {
    super();
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new RangeError(
        `Cannot create TcpSocketSignaling as the port must be an integer from 1 to 65535: received ${port}`,
      );
    }
    this.#host = host;
    this.#port = port;
    this.#options = options;
  }

  /**
   * Listens for the other peer (the offerer) or connects to it (the
   * answerer); resolves once the two are connected.
   */
  override start(options?: SignalingStartOptions): Promise<void> {
    return super.start(options);
  }

  protected override open(options?: SignalingStartOptions): Promise<void> {
    const role = this.#options.role ?? (options?.initiator ? "listen" : "connect");
    this.#connected = (role === "listen" ? this.#listen() : this.#connect()).then((socket) =>
      this.#adopt(socket)
    );
    return this.#connected;
  }

  /**
   * Sends one message, translated to aiortc's format where it has one.
   *
   * @throws {WebRTCTransportError} If the connection is not up or is closed.
   */
  async send(message: SignalingMessage): Promise<void> {
    if (this.closing || !this.#connected) {
      throw new WebRTCTransportError(
        `Cannot send a ${message.type} through TcpSocketSignaling as it is ${
          this.closing ? "closed" : "not started"
        }: ${this.closing ? "create a new one" : "call start() first"}`,
      );
    }
    await this.#connected;
    const line = toWire(message);
    if (message.type === "bye") {
      if (this.#byeSent) return;
      this.#byeSent = true;
    }
    await this.#write(line);
  }

  /** Sends bye (once), then closes the connection. Idempotent; `onclose` fires once. */
  override close(): Promise<void> {
    return super.close();
  }

  protected override async closeCarrier(): Promise<void> {
    const socket = this.#socket;
    try {
      if (socket && !socket.destroyed && !this.#byeSent) {
        this.#byeSent = true;
        await settle(this.#write(toWire({ type: "bye" })), BYE_TIMEOUT);
      }
    } finally {
      this.#server?.close();
      if (socket && !socket.destroyed) {
        const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
        socket.end();
        // The other side closes its end on our FIN; one that does not is cut off.
        await settle(ended, BYE_TIMEOUT);
        socket.destroy();
      }
      this.#server = undefined;
      this.#socket = undefined;
    }
  }

  #listen(): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const server = createServer({ pauseOnConnect: false });
      this.#server = server;
      server.once("error", (cause) =>
        reject(
          new WebRTCTransportError(
            `Cannot listen on ${this.#host}:${this.#port} for the other peer's signalling: ${cause.message}; pick a free port, or let this side connect (role "connect")`,
            { cause },
          ),
        ));
      server.once("connection", (socket) => {
        // One pair per signalling: nobody else may connect.
        server.close();
        resolve(socket);
      });
      server.listen(this.#port, this.#host, () => this.onlisten?.());
    });
  }

  async #connect(): Promise<Socket> {
    const limit = this.#options.connectTimeout ?? TCP_SIGNALING_CONNECT_TIMEOUT;
    const clock = clockOf(this);
    const until = clock.now() + limit;
    for (let attempt = 1;; attempt++) {
      if (this.closing) {
        throw new WebRTCTransportError("Cannot connect TcpSocketSignaling as it was closed");
      }
      try {
        return await new Promise<Socket>((resolve, reject) => {
          const socket = connect(this.#port, this.#host);
          socket.once("connect", () => {
            socket.off("error", reject);
            resolve(socket);
          });
          socket.once("error", reject);
        });
      } catch (cause) {
        const refused = (cause as { code?: string }).code === "ECONNREFUSED";
        if (!refused || clock.now() + RETRY_INTERVAL > until) {
          throw new WebRTCTransportError(
            `Cannot connect to ${this.#host}:${this.#port} for signalling after ${attempt} attempts in ${limit} ms: ${
              (cause as Error).message
            }; start the other peer (the side that offers listens) or check the host and port`,
            { cause },
          );
        }
        await delay(RETRY_INTERVAL);
      }
    }
  }

  #adopt(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.setNoDelay(true);
    socket.on("data", (chunk: string) => this.#read(chunk));
    socket.on("error", (error: Error & { code?: string }) => {
      // A reset or broken pipe is the other side gone: "close" follows.
      if (error.code !== "ECONNRESET" && error.code !== "EPIPE") this.onerror?.(error);
    });
    // The other side closed: no bye can be sent on it any more.
    socket.on("close", () => void this.close());
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    let end: number;
    while ((end = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 1);
      if (line.trim() === "") continue;
      try {
        const message = fromWire(line);
        if (message) this.accept(message);
      } catch (error) {
        this.onerror?.(error as Error);
      }
    }
    if (this.#buffer.length > MAX_LINE_LENGTH) {
      this.#buffer = "";
      this.onerror?.(
        new WebRTCTransportError(
          `Dropped the signalling connection as a line exceeds ${MAX_LINE_LENGTH} bytes: the other side does not speak aiortc's TCP signalling`,
        ),
      );
      this.#socket?.destroy();
    }
  }

  #write(line: string): Promise<void> {
    const socket = this.#socket;
    if (!socket || socket.destroyed) {
      return Promise.reject(
        new WebRTCTransportError(
          "Cannot send through TcpSocketSignaling as the other peer closed the connection",
        ),
      );
    }
    return new Promise<void>((resolve, reject) =>
      socket.write(`${line}\n`, (error) => error ? reject(error) : resolve())
    );
  }
}

/** One message as aiortc writes it. */
function toWire(message: SignalingMessage): string {
  switch (message.type) {
    case "offer":
    case "answer":
      return JSON.stringify({ sdp: message.sdp, type: message.type });
    case "candidate": {
      const c = message.candidate as {
        candidate: string;
        sdpMid?: string | null;
        sdpMLineIndex?: number | null;
      };
      return JSON.stringify({
        candidate: c.candidate,
        id: c.sdpMid ?? null,
        label: c.sdpMLineIndex ?? null,
        type: "candidate",
      });
    }
    case "bye":
      return JSON.stringify({ type: "bye" });
    default:
      return JSON.stringify(message);
  }
}

/** One line as this module's message; `undefined` for aiortc's end of candidates. */
function fromWire(line: string): SignalingMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (cause) {
    throw new WebRTCTransportError(
      `Dropped a signalling line that is not JSON: ${line.slice(0, 80)}`,
      { cause },
    );
  }
  const message = value as Record<string, unknown> | null;
  if (typeof message !== "object" || message === null || typeof message.type !== "string") {
    throw new WebRTCTransportError(
      `Dropped a signalling line that is not an object with a string 'type': ${line.slice(0, 80)}`,
    );
  }
  if (message.type !== "candidate" || typeof message.candidate !== "string") {
    return message as SignalingMessage;
  }
  if (message.candidate === "") return undefined;
  return {
    type: "candidate",
    candidate: {
      candidate: message.candidate,
      sdpMid: message.id ?? null,
      sdpMLineIndex: message.label ?? null,
    },
  };
}
