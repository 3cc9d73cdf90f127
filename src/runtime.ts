/**
 * The one place where the runtime's implementations are chosen: the
 * `RTCPeerConnection` (the caller's, else the runtime's own, else
 * node-datachannel's polyfill on a native connection made here) and the
 * WebSocket client of the signalling room (the `ws` package in Deno and Node,
 * else the runtime's own, or one the caller passes). Both are loaded lazily,
 * so a runtime without them fails only where one is needed, with a message
 * that says what to install.
 *
 * @module
 */

import { NativeDataChannel } from "./_native_channel.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";
import { WebRTCTransportError } from "./errors.ts";
import type { IceServer, PeerConnectionConstructor, PeerConnectionLike } from "./peer/types.ts";

/**
 * An event handler property. Declared through a method so that sockets whose
 * handlers take a richer event (a DOM `MessageEvent`, a `ws` event) still fit.
 */
type Handler<E> = { handle(event: E): void }["handle"];

/**
 * The part of the WebSocket API the room uses: the global `WebSocket` of
 * browsers, Deno and Node 22+, and the `ws` package, all fit.
 *
 * @example The global WebSocket fits
 * ```ts no-assert
 * import type { WebSocketConstructor } from "@mcp/webrtc/signaling";
 *
 * const constructor: WebSocketConstructor = WebSocket;
 * ```
 */
export interface WebSocketLike {
  /** The subprotocol the server chose. */
  readonly protocol: string;
  /** Sends a text frame, or a binary one (the relay's). */
  send(data: string | Uint8Array<ArrayBuffer>): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Called once the handshake completed. */
  onopen: Handler<never> | null;
  /** Called for every frame received. */
  onmessage: Handler<{ data: unknown }> | null;
  /** Called once the socket closed, or failed to open. */
  onclose: Handler<{ code: number; reason: string }> | null;
  /** Called before `onclose` when the socket failed. */
  onerror: Handler<never> | null;
}

/**
 * A constructor of {@linkcode WebSocketLike} sockets, as `new WebSocket(url, protocols)`.
 *
 * @example Node 20 has no global WebSocket: pass the ws package's
 * ```ts ignore
 * import { SignalingRoom } from "@mcp/webrtc/signaling";
 * import WebSocket from "ws";
 *
 * const room = await SignalingRoom.join(url, { role: "guest", key, WebSocket });
 * ```
 */
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

/**
 * Picks the WebSocket client: in Deno and Node the `ws` package, else the
 * runtime's own (browsers, workers).
 *
 * Deno's built-in client does not set `TCP_NODELAY`: a burst of small frames
 * (an answer and its ICE candidates) then waits for a delayed ACK, 40 ms per
 * burst on Linux. `ws` sets it, and gives Node 20 a WebSocket at all.
 */
export async function resolveWebSocket(): Promise<WebSocketConstructor> {
  const runtime = globalThis as {
    Deno?: unknown;
    process?: { versions?: { node?: string } };
    WebSocket?: WebSocketConstructor;
  };
  if (runtime.Deno !== undefined || runtime.process?.versions?.node !== undefined) {
    try {
      const ws = await import("ws");
      const Base = (ws.WebSocket ?? ws.default) as unknown as new (
        url: string,
        protocols: string[],
        options: { perMessageDeflate: boolean },
      ) => WebSocketLike;
      // Signalling frames are small JSON: compressing them costs CPU at both
      // ends (zlib per frame) and saves nothing worth it.
      return class extends Base {
        constructor(url: string, protocols: string[]) {
          super(url, protocols, { perMessageDeflate: false });
        }
      } as unknown as WebSocketConstructor;
    } catch {
      // Fall back to the runtime's own client below.
    }
  }
  if (runtime.WebSocket) return runtime.WebSocket;
  throw new TypeError(
    "Cannot join room as this runtime has no WebSocket client: install the ws package, or pass one as the WebSocket option",
  );
}

let polyfillPeerConnection: PeerConnectionConstructor | undefined;

/**
 * node-datachannel's `RTCPeerConnection` polyfill on a native connection made
 * here, whose data channels are made and received natively (see
 * `_native_channel.ts`: the polyfill's per-message `EventTarget` dispatch
 * was a measurable share of a round trip); descriptions, candidates, states
 * and statistics stay the polyfill's.
 *
 * The polyfill joins a TURN server's credentials into a URL
 * (`turn:user:password@host`) that libdatachannel percent-decodes, so a TURN
 * REST user name (`<expiry>:<id>`) or a base64 password (`/`, `+`, `=`) was
 * misread and the server refused the allocation. The URLs are made here, the
 * credentials encoded: libdatachannel gets exactly what was given.
 */
function nativeChannelPeerConnection(
  polyfill: typeof import("node-datachannel/polyfill"),
  native: typeof import("node-datachannel").default,
): PeerConnectionConstructor {
  const Base = polyfill.RTCPeerConnection as unknown as new (
    configuration: Record<string, unknown>,
  ) => EventTarget;
  return class extends Base {
    /** The native connection, unless the polyfill made its own (then its channels are used). */
    readonly #native?: import("node-datachannel").PeerConnection;

    constructor(configuration: Record<string, unknown>) {
      let connection: import("node-datachannel").PeerConnection | undefined;
      // Read by the polyfill once it has checked the configuration; what the
      // native side throws, it reports as it does for a connection of its own.
      super({
        ...configuration,
        get peerConnection() {
          const servers = (configuration.iceServers ?? []) as IceServer[];
          return connection ??= new native.PeerConnection(
            `mcp-webrtc-${crypto.randomUUID()}`,
            {
              ...configuration,
              iceServers: servers.flatMap((server) =>
                [server.urls].flat().map((url) => {
                  if (server.username === undefined || server.credential === undefined) return url;
                  const [scheme, rest] = url.split(/:(.*)/s);
                  return `${scheme}:${encodeURIComponent(server.username)}:${
                    encodeURIComponent(server.credential)
                  }@${rest}`;
                })
              ),
            } as import("node-datachannel").RtcConfig,
          );
        },
      });
      if (!connection) return;
      this.#native = connection;
      // Replaces the polyfill's handler: its event carries no state, and a
      // listener that reads `iceConnectionState` reads it when the event is
      // dispatched. Under load ICE's "connected" was dispatched after the
      // connection had closed (the other peer refused our certificate) and
      // read as "closed": the path it found was lost to the diagnosis. The
      // event carries the state of its change in `state`.
      connection.onIceStateChange((state) => {
        const event = new Event("iceconnectionstatechange");
        const connected = state === "completed" ? "connected" : state;
        Object.defineProperty(event, "state", { value: connected });
        this.dispatchEvent(event);
      });
      // Replaces the polyfill's handler: the other side's channels arrive natively.
      connection.onDataChannel((channel) => {
        // The polyfill's RTCDataChannelEvent takes only its own channels.
        const event = new Event("datachannel");
        Object.defineProperty(event, "channel", { value: new NativeDataChannel(channel) });
        this.dispatchEvent(event);
      });
    }

    /** The certificate fingerprint libdatachannel computed in the handshake, once it did. */
    remoteCertificateFingerprint(): { algorithm: string; value: string } | undefined {
      try {
        const fingerprint = this.#native?.remoteFingerprint();
        return fingerprint?.value ? { ...fingerprint } : undefined;
      } catch {
        return undefined;
      }
    }

    createDataChannel(
      label: string,
      init: { ordered?: boolean; protocol?: string } = {},
    ): DataChannelLike {
      if (!this.#native) {
        return (Base.prototype as unknown as PeerConnectionLike).createDataChannel.call(
          this,
          label,
          init,
        ) as DataChannelLike;
      }
      return new NativeDataChannel(
        this.#native.createDataChannel(label, {
          protocol: init.protocol,
          unordered: init.ordered === false,
        }),
      );
    }
  } as unknown as PeerConnectionConstructor;
}

/**
 * Picks the `RTCPeerConnection` implementation: the caller's, else the
 * runtime's own (browsers), else node-datachannel's W3C polyfill (Deno, Node).
 */
export async function resolvePeerConnection(
  injected?: PeerConnectionConstructor,
): Promise<PeerConnectionConstructor> {
  if (injected) return injected;
  const native = (globalThis as { RTCPeerConnection?: PeerConnectionConstructor })
    .RTCPeerConnection;
  if (native) return native;
  try {
    const [polyfill, native] = await Promise.all([
      import("node-datachannel/polyfill"),
      import("node-datachannel"),
    ]);
    polyfillPeerConnection ??= nativeChannelPeerConnection(polyfill, native.default);
    return polyfillPeerConnection;
  } catch (cause) {
    throw new WebRTCTransportError(
      "Cannot create a peer connection as this runtime has no RTCPeerConnection and node-datachannel could not be loaded: install node-datachannel (Deno needs --allow-ffi --allow-read), or pass the RTCPeerConnection option",
      { cause },
    );
  }
}

/**
 * Whether `pc` is node-datachannel's, whoever made its class (its polyfill
 * has members no standard connection has): it makes its answer, and starts
 * ICE, as an offer is applied, and its `close()` ends with a
 * `connectionstatechange` once it released its callbacks into JavaScript,
 * where the standard's fires none.
 */
export function isLibdatachannel(pc: object): boolean {
  return "ext_maxMessageSize" in pc;
}

/**
 * Whether connections made by `Ctor` are node-datachannel's as this module
 * makes them (its own, or a subclass): their ICE receives packets up to
 * libjuice's 4096-byte buffer.
 */
export function isNodeDataChannel(Ctor: PeerConnectionConstructor): boolean {
  const ours = polyfillPeerConnection;
  return ours !== undefined &&
    (Ctor === ours || (Ctor as { prototype?: unknown }).prototype instanceof ours);
}
