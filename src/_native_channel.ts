/**
 * Data channels on node-datachannel's native API, for the peer connections
 * this module makes with its `RTCPeerConnection` polyfill.
 *
 * The polyfill delivers every incoming message as a `MessageEvent` through
 * `EventTarget`; on loopback that dispatch was a measurable share of a
 * `tools/call` round trip (a bare transport on the polyfill's channel took
 * 1.02–1.05× the time of one on the native channel). So the peer connection
 * keeps the polyfill for everything else (descriptions, candidates, states,
 * statistics; it accepts a native connection made by its user) and makes
 * and receives its data channels natively: messages go straight to the
 * channel's listeners, every other event through `EventTarget` as before.
 *
 * @module
 */
import { yieldToEventLoop } from "./_async.ts";
import { WebRTCTransportError } from "./errors.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";

/** The part of node-datachannel's native `DataChannel` used here. */
export interface NativeChannel {
  getLabel(): string;
  getProtocol(): string;
  isOpen(): boolean;
  bufferedAmount(): number;
  setBufferedAmountLowThreshold(bytes: number): void;
  sendMessage(message: string): boolean;
  sendMessageBinary(message: Uint8Array): boolean;
  close(): void;
  onOpen(callback: () => void): void;
  onClosed(callback: () => void): void;
  onError(callback: (error: string) => void): void;
  onBufferedAmountLow(callback: () => void): void;
  onMessage(callback: (message: string | ArrayBuffer | Uint8Array) => void): void;
}

/** What a message listener receives: the `data` of a `MessageEvent`. */
interface ChannelMessage {
  readonly type: "message";
  readonly data: string | ArrayBuffer;
  readonly target: NativeDataChannel;
}

/**
 * A native data channel with the `RTCDataChannel` surface this module uses,
 * and the polyfill's semantics: `readyState` from `connecting` to `closed`,
 * `close` fired on the turn after the native side closed, binary messages as
 * `ArrayBuffer`s, `send()` refused unless open.
 */
export class NativeDataChannel extends EventTarget implements DataChannelLike {
  readonly label: string;
  /** The sub-protocol the channel was opened with. */
  readonly protocol: string;
  readonly #native: NativeChannel;
  #readyState: "connecting" | "open" | "closing" | "closed";
  #closeRequested = false;
  #threshold = 0;
  /** Message listeners, called directly (not through `EventTarget`). */
  #listeners: { listener: EventListenerOrEventListenerObject; once: boolean }[] = [];

  constructor(native: NativeChannel) {
    super();
    this.#native = native;
    this.label = native.getLabel();
    this.protocol = native.getProtocol();
    this.#readyState = native.isOpen() ? "open" : "connecting";
    native.onOpen(() => {
      this.#readyState = "open";
      this.dispatchEvent(new Event("open"));
    });
    native.onClosed(() => {
      if (!this.#closeRequested) {
        this.#readyState = "closing";
        this.dispatchEvent(new Event("closing"));
      }
      // As the polyfill does: messages dispatched in this turn come first.
      void yieldToEventLoop().then(() => {
        this.#readyState = "closed";
        this.dispatchEvent(new Event("close"));
      });
    });
    native.onError((message) => {
      const event = new Event("error");
      Object.defineProperty(event, "error", { value: new WebRTCTransportError(message) });
      this.dispatchEvent(event);
    });
    native.onBufferedAmountLow(() => this.dispatchEvent(new Event("bufferedamountlow")));
    native.onMessage((message) => {
      const data = typeof message === "string" ? message : arrayBufferOf(message);
      const event = { type: "message", data, target: this } as ChannelMessage as unknown as Event;
      for (const entry of this.#listeners) {
        if (entry.once) this.#remove(entry.listener);
        const { listener } = entry;
        try {
          if (typeof listener === "function") listener.call(this, event);
          else listener.handleEvent(event);
        } catch (error) {
          // An uncaught error, as EventTarget reports one, but on a turn of its
          // own: reported inside the native callback, an unhandled one aborted
          // the process without its message.
          setTimeout(() => reportError(error), 0);
        }
      }
    });
  }

  get readyState(): string {
    return this.#readyState;
  }

  get bufferedAmount(): number {
    return this.#native.bufferedAmount();
  }

  get bufferedAmountLowThreshold(): number {
    return this.#threshold;
  }

  set bufferedAmountLowThreshold(bytes: number) {
    this.#threshold = Number(bytes) || 0;
    this.#native.setBufferedAmountLowThreshold(this.#threshold);
  }

  /** Always `"arraybuffer"`: binary messages arrive as `ArrayBuffer`s. */
  get binaryType(): string {
    return "arraybuffer";
  }

  set binaryType(type: string) {
    if (type !== "arraybuffer") {
      throw new TypeError(
        `Cannot set binaryType to '${type}': this data channel delivers binary messages as ArrayBuffers only`,
      );
    }
  }

  send(data: string | Uint8Array<ArrayBuffer>): void {
    if (this.#readyState !== "open") {
      throw new DOMException(
        `Cannot send on a data channel that is ${this.#readyState}`,
        "InvalidStateError",
      );
    }
    if (typeof data === "string") this.#native.sendMessage(data);
    else this.#native.sendMessageBinary(data);
  }

  close(): void {
    this.#closeRequested = true;
    // As the polyfill does: not from inside a callback of the native side.
    void yieldToEventLoop().then(() => this.#native.close());
  }

  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    if (type !== "message") return super.addEventListener(type, listener, options);
    if (!listener || this.#listeners.some((entry) => entry.listener === listener)) return;
    const once = typeof options === "object" && options.once === true;
    // A copy per change: a listener added or removed during a dispatch takes effect after it.
    this.#listeners = [...this.#listeners, { listener, once }];
    if (typeof options === "object") {
      options.signal?.addEventListener("abort", () => this.#remove(listener), { once: true });
    }
  }

  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    if (type === "message") this.#remove(listener);
    else super.removeEventListener(type, listener, options);
  }

  #remove(listener: EventListenerOrEventListenerObject | null): void {
    this.#listeners = this.#listeners.filter((entry) => entry.listener !== listener);
  }
}

/** A binary message as an `ArrayBuffer` of its own bytes. */
function arrayBufferOf(message: ArrayBuffer | Uint8Array): ArrayBuffer {
  if (message instanceof ArrayBuffer) return message;
  const { buffer, byteOffset, byteLength } = message;
  if (byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer) {
    return buffer;
  }
  return message.slice().buffer as ArrayBuffer;
}
