/**
 * The relay link: data channels carried over a relay pipe (the signalling
 * room's WebSocket), every frame sealed end to end with a
 * {@linkcode RelayCipher}. Each channel behaves as an ordered, reliable
 * `RTCDataChannel` to {@linkcode DataChannelTransport}: `open`, `message`,
 * `close` and `bufferedamountlow` events, `bufferedAmount` and a size limit.
 *
 * Inside the seal, a frame is one byte of kind, the channel's number (32 bits,
 * big-endian) and the payload:
 *
 * ```text
 * 1 open    payload: JSON { label, protocol }
 * 2 text    payload: UTF-8 text of one message
 * 3 binary  payload: bytes of one message
 * 4 close   no payload: the channel is closed
 * 5 end     payload: UTF-8 reason; the whole link ends cleanly (channel 0)
 * ```
 *
 * The dialling side numbers its channels 0, 2, 4…, the other 1, 3, 5….
 *
 * @module
 */

import type { RelayCipher } from "./_relay_crypto.ts";
import type { DataChannelLike } from "./data_channel_transport.ts";
import { RelayError } from "./errors.ts";
import type { RelayPipe } from "./signaling/relay_protocol.ts";

const OPEN = 1;
const TEXT = 2;
const BINARY = 3;
const CLOSE = 4;
const END = 5;
const HEADER_BYTES = 5;
/**
 * The largest message a relayed channel carries in one frame: what a data
 * channel carries without negotiation. The framing layer chunks to it.
 */
export const RELAY_MAX_MESSAGE_SIZE = 65_536;
/** Frames received and waiting to be opened; more means the link cannot keep up. */
const MAX_INBOX = 1024;
const MAX_REASON_LENGTH = 600;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Data channels over a relay pipe, sealed end to end. */
export class RelayLink {
  readonly #pipe: RelayPipe;
  readonly #cipher: RelayCipher;
  readonly #channels = new Map<number, RelayChannel>();
  #nextId: number;
  #outbox: Promise<void> = Promise.resolve();
  #inbox: Promise<void> = Promise.resolve();
  #pending = 0;
  #ended = false;

  /** Called for each channel the other side opens. */
  ondatachannel?: (channel: RelayChannel) => void;
  /**
   * Called once when the link is over: with no error when the other side
   * ended it (its reason given), else with what broke it.
   */
  onend?: (error: Error | undefined, reason: string) => void;

  /**
   * @param pipe The relay pipe to the other peer; the link listens to it at once.
   * @param cipher The keys of this connection.
   * @param initiator Whether this side dials (numbers its channels evenly).
   */
  constructor(pipe: RelayPipe, cipher: RelayCipher, initiator: boolean) {
    this.#pipe = pipe;
    this.#cipher = cipher;
    this.#nextId = initiator ? 0 : 1;
    pipe.listen({
      message: (payload) => this.#receive(payload),
      error: (error) => this.#fail(error),
      close: () =>
        this.#fail(
          new RelayError(
            "The relay path was lost: the signalling room connection closed, or the other peer left the room",
          ),
        ),
    });
  }

  /** Frames sealed and opened so far. */
  get frames(): { sent: number; received: number } {
    return { sent: this.#cipher.sealed, received: this.#cipher.opened };
  }

  /** Whether the link is over. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Opens a channel; it is open once the current task ends (the link is ordered). */
  createChannel(label: string, protocol: string): RelayChannel {
    if (this.#ended) {
      throw new RelayError("Cannot open a data channel as the relay link has ended");
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const channel = new RelayChannel(this, id, label, protocol);
    this.#channels.set(id, channel);
    void this.write(OPEN, id, encoder.encode(JSON.stringify({ label, protocol })));
    queueMicrotask(() => channel.opened());
    return channel;
  }

  /**
   * Ends the link: tells the other side (sealed, so a relay cannot fake a
   * clean end), closes every channel and lets go of the pipe.
   */
  async end(reason: string): Promise<void> {
    if (this.#ended) return;
    const sent = this.write(END, 0, encoder.encode(reason.slice(0, MAX_REASON_LENGTH)));
    this.#ended = true;
    await sent.catch(() => {});
    this.#finish(undefined, reason);
  }

  /**
   * Queues one frame; resolves once it is handed to the pipe. Frames are
   * sealed and sent in the order of the calls.
   */
  write(kind: number, id: number, payload: Uint8Array): Promise<void> {
    if (this.#ended) {
      return Promise.reject(new RelayError("Cannot send as the relay link has ended"));
    }
    const frame = new Uint8Array(HEADER_BYTES + payload.byteLength);
    frame[0] = kind;
    new DataView(frame.buffer).setUint32(1, id);
    frame.set(payload, HEADER_BYTES);
    // Sealed now, so frames are numbered in the order of the calls; the seals
    // run side by side and the frames leave in that order.
    const sealed = this.#cipher.seal(frame);
    sealed.catch(() => {});
    const task = this.#outbox.then(async () => {
      await this.#pipe.send(await sealed);
    });
    this.#outbox = task.catch((error) => this.#fail(error));
    return task;
  }

  /** A channel is closed: forget it. */
  forget(id: number): void {
    this.#channels.delete(id);
  }

  #receive(payload: Uint8Array): void {
    if (this.#ended) return;
    if (++this.#pending > MAX_INBOX) {
      return this.#fail(
        new RelayError(`The relay link fell ${MAX_INBOX} frames behind: the peer sends too fast`),
      );
    }
    // Opened now, in the order of arrival, side by side; handled in that order.
    const opened = this.#cipher.open(new Uint8Array(payload));
    opened.catch(() => {});
    this.#inbox = this.#inbox.then(async () => {
      this.#pending--;
      if (this.#ended) return;
      const frame = await opened;
      if (!this.#ended) this.#dispatch(frame);
    }).catch((error) => this.#fail(error));
  }

  #dispatch(frame: Uint8Array<ArrayBuffer>): void {
    if (frame.byteLength < HEADER_BYTES) {
      throw new RelayError(
        "Refused a relayed frame as it is shorter than its header: the peer is faulty",
      );
    }
    const kind = frame[0];
    const id = new DataView(frame.buffer, frame.byteOffset).getUint32(1);
    const payload = frame.subarray(HEADER_BYTES);
    const channel = this.#channels.get(id);
    switch (kind) {
      case OPEN: {
        if (channel || id % 2 === this.#nextId % 2) {
          throw new RelayError(
            `Refused a relayed channel ${id} as that number is taken: the peer is faulty`,
          );
        }
        let label = "";
        let protocol = "";
        try {
          ({ label, protocol } = JSON.parse(decoder.decode(payload)));
        } catch {
          // Checked below.
        }
        if (typeof label !== "string" || typeof protocol !== "string") {
          throw new RelayError(
            "Refused a relayed channel as its label is malformed: the peer is faulty",
          );
        }
        const opened = new RelayChannel(this, id, label, protocol);
        this.#channels.set(id, opened);
        opened.opened();
        if (this.ondatachannel) this.ondatachannel(opened);
        else opened.close();
        return;
      }
      case TEXT:
      case BINARY:
        channel?.received(kind === TEXT ? decoder.decode(payload) : payload.slice().buffer);
        return;
      case CLOSE:
        channel?.closedByPeer();
        return;
      case END:
        this.#ended = true;
        this.#finish(undefined, decoder.decode(payload).slice(0, MAX_REASON_LENGTH));
        return;
      default:
        throw new RelayError(`Refused a relayed frame of unknown kind ${kind}: the peer is faulty`);
    }
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const failure = error instanceof Error ? error : new RelayError(String(error));
    this.#finish(failure, failure.message);
  }

  #finish(error: Error | undefined, reason: string): void {
    this.#pipe.close();
    for (const channel of [...this.#channels.values()]) channel.closedByPeer();
    this.#channels.clear();
    const onend = this.onend;
    this.onend = undefined;
    onend?.(error, reason);
  }
}

/** One data channel of a {@linkcode RelayLink}: an ordered, reliable `RTCDataChannel` look-alike. */
export class RelayChannel extends EventTarget implements DataChannelLike {
  readonly label: string;
  readonly protocol: string;
  readonly id: number;
  readonly #link: RelayLink;
  #state: "connecting" | "open" | "closing" | "closed" = "connecting";
  #buffered = 0;
  bufferedAmountLowThreshold = 0;
  binaryType = "arraybuffer";

  constructor(link: RelayLink, id: number, label: string, protocol: string) {
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
