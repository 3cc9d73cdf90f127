/**
 * The one place where the runtime's WebSocket client is chosen, as
 * `src/peer.ts` chooses its `RTCPeerConnection`: the `ws` package in Deno and
 * Node, else the runtime's own (browsers, workers), or one the caller passes.
 *
 * @module
 */

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
