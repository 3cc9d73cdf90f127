/**
 * One data channel of a relay link: an ordered, reliable `RTCDataChannel`
 * look-alike whose frames its link seals and sends.
 *
 * @module
 */

import type { DataChannelLike } from "../data_channel_transport.ts";
import { RelayError } from "../errors.ts";
import { BINARY, CLOSE, RELAY_MAX_MESSAGE_SIZE, TEXT } from "./frames.ts";

/** What a channel needs of its link. */
export interface ChannelLink {
  /** Sends one frame of `kind` on channel `id`; resolves once it went out. */
  write(kind: number, id: number, payload: Uint8Array): Promise<void>;
  /** The channel `id` is closed: the link forgets it. */
  forget(id: number): void;
}

const encoder = new TextEncoder();

/** One data channel of a relay link: an ordered, reliable `RTCDataChannel` look-alike. */
export class RelayChannel extends EventTarget implements DataChannelLike {
  readonly label: string;
  readonly protocol: string;
  readonly id: number;
  readonly #link: ChannelLink;
  #state: "connecting" | "open" | "closing" | "closed" = "connecting";
  #buffered = 0;
  bufferedAmountLowThreshold = 0;
  binaryType = "arraybuffer";

  constructor(link: ChannelLink, id: number, label: string, protocol: string) {
    super();
    this.#link = link;
    this.id = id;
    this.label = label;
    this.protocol = protocol;
  }

  get readyState(): string {
    return this.#state;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  send(data: string | Uint8Array<ArrayBuffer>): void {
    if (this.#state !== "open") {
      throw new RelayError(`Cannot send on a relayed data channel that is ${this.#state}`);
    }
    const text = typeof data === "string";
    const bytes = text ? encoder.encode(data) : new Uint8Array(data);
    if (bytes.byteLength > RELAY_MAX_MESSAGE_SIZE) {
      throw new RangeError(
        `Cannot send a message of ${bytes.byteLength} bytes on a relayed data channel: the limit is ${RELAY_MAX_MESSAGE_SIZE}`,
      );
    }
    this.#buffered += bytes.byteLength;
    this.#link.write(text ? TEXT : BINARY, this.id, bytes).then(
      () => this.#drained(bytes.byteLength),
      () => {},
    );
  }

  close(): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    this.#link.write(CLOSE, this.id, new Uint8Array()).then(
      () => this.closedByPeer(),
      () => this.closedByPeer(),
    );
  }

  /** The channel is open (both sides may send). */
  opened(): void {
    if (this.#state !== "connecting") return;
    this.#state = "open";
    this.dispatchEvent(new Event("open"));
  }

  /** One message from the other side. */
  received(data: string | ArrayBuffer): void {
    if (this.#state !== "open" && this.#state !== "closing") return;
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  /** The channel is closed, by either side or with the link. */
  closedByPeer(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#buffered = 0;
    this.#link.forget(this.id);
    this.dispatchEvent(new Event("close"));
  }

  #drained(bytes: number): void {
    const before = this.#buffered;
    this.#buffered = Math.max(0, before - bytes);
    if (
      before > this.bufferedAmountLowThreshold && this.#buffered <= this.bufferedAmountLowThreshold
    ) {
      this.dispatchEvent(new Event("bufferedamountlow"));
    }
  }
}
