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
 * 6 credit  payload: uint64 big-endian, the bytes the sender may have sent in all (channel 0)
 * ```
 *
 * The dialling side numbers its channels 0, 2, 4…, the other 1, 3, 5….
 *
 * Flow control (QUIC's, RFC 9000 §4, for the link as a whole): each side
 * grants the other a window in its relay hello (`window`, in bytes of sealed
 * frames, tag included), and a sender never has sent more than the credit it
 * was granted. The receiver renews the credit as it reads: once it has
 * dispatched a quarter of its window past what it last granted, it sends a
 * credit frame with the new total (what it dispatched plus its window). So
 * the room, and the reader, hold at most one window per direction whatever
 * the reader does; a reader that stops reading stops the sender, whose frames
 * wait (and whose channels' `bufferedAmount` stays up, so their `send()`
 * waits). Credit and end frames are not counted, so they always pass; they
 * are sealed like every frame, so the room can neither forge nor replay a
 * credit. Flow control runs when both hellos carry a window; a peer of an
 * earlier version sends none, and the link then runs as that version did:
 * no credit frames, no limit on either side.
 *
 * Just over 400 lines, and one file, because framing, the channels' table
 * and the credit window act on the same frames in order (each frame sent is
 * counted against the credit, each one read renews it); its first forty lines are the
 * wire format and flow control above. Its channel lives in `channel.ts`.
 *
 * @module
 */

import { settle, withResolvers } from "../_async.ts";
import {
  BYE_TIMEOUT,
  MAX_BYE_REASON_LENGTH,
  RELAY_CONTROL_SLACK,
  RELAY_MAX_INBOX_FRAMES,
} from "../constants.ts";
import { RelayError } from "../errors.ts";
import { RelayChannel } from "./channel.ts";
import { RELAY_TAG_BYTES, type RelayCipher } from "./crypto.ts";
import {
  BINARY,
  CLOSE,
  CREDIT,
  END,
  HEADER_BYTES,
  OPEN,
  plainFrame,
  type RelayWindows,
  TEXT,
} from "./frames.ts";
import type { RelayPipe } from "./protocol.ts";

export { RelayChannel };
export {
  readRelayWindow,
  RELAY_MAX_FRAME_SIZE,
  RELAY_MAX_MESSAGE_SIZE,
  type RelayWindows,
} from "./frames.ts";

/** A frame that waits for credit. */
interface Waiting {
  readonly frame: Uint8Array<ArrayBuffer>;
  readonly sent: ReturnType<typeof withResolvers<void>>;
}

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
  #ending = false;
  readonly #windows?: RelayWindows;
  /** Frames that wait for credit, in order. */
  #queue: Waiting[] = [];
  #emptied?: ReturnType<typeof withResolvers<void>>;
  /** Bytes of counted frames sent, and the most the other side allows in all. */
  #sentBytes = 0;
  #sendLimit = 0;
  /** Bytes of frames arrived, of uncounted frames among them, of counted frames dispatched. */
  #arrivedBytes = 0;
  #freeBytes = 0;
  #readBytes = 0;
  /** The most this side allows in all, as it last told the other side. */
  #granted = 0;

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
   * @param windows The windows both hellos granted; without them (a peer of an
   * earlier version), no flow control.
   */
  constructor(
    pipe: RelayPipe,
    cipher: RelayCipher,
    initiator: boolean,
    windows?: RelayWindows,
  ) {
    this.#pipe = pipe;
    this.#cipher = cipher;
    this.#nextId = initiator ? 0 : 1;
    this.#windows = windows;
    this.#sendLimit = windows?.send ?? 0;
    this.#granted = windows?.receive ?? 0;
    pipe.listen({
      message: (payload) => this.#receive(payload),
      error: (error) => this.#fail(error),
      // After the frames before it: the other side's sealed end, still being
      // opened when the room tells of its leaving, is what ended the link.
      close: () =>
        void this.#inbox.then(() =>
          this.#fail(
            new RelayError(
              "The relay path was lost: the signalling room connection closed, or the other peer left the room",
            ),
          )
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

  /**
   * The flow control's state: the windows, the bytes sent and the most the
   * other side allows, the bytes waiting for credit; `undefined` without flow
   * control (the other peer is of an earlier version).
   */
  get flow():
    | { windows: RelayWindows; sent: number; limit: number; waiting: number; read: number }
    | undefined {
    if (!this.#windows) return undefined;
    return {
      windows: this.#windows,
      sent: this.#sentBytes,
      limit: this.#sendLimit,
      waiting: this.#queue.reduce((n, { frame }) => n + frame.byteLength + RELAY_TAG_BYTES, 0),
      read: this.#readBytes,
    };
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
    if (this.#ended || this.#ending) return;
    this.#ending = true;
    // Frames that wait for credit get a moment to leave; then the end goes
    // without them (it needs no credit), since the reader may never read.
    if (this.#queue.length > 0) {
      this.#emptied ??= withResolvers<void>();
      await settle(this.#emptied.promise, BYE_TIMEOUT);
    }
    if (this.#ended) return;
    this.#drop();
    const sent = this.#admit(
      plainFrame(END, 0, encoder.encode(reason.slice(0, MAX_BYE_REASON_LENGTH))),
    );
    this.#ended = true;
    await sent.catch(() => {});
    this.#finish(undefined, reason);
  }

  /**
   * Queues one frame; resolves once it is handed to the pipe. Frames are
   * sealed and sent in the order of the calls; with flow control, a frame
   * waits until the other side's credit allows it.
   */
  write(kind: number, id: number, payload: Uint8Array): Promise<void> {
    if (this.#ended) {
      return Promise.reject(new RelayError("Cannot send as the relay link has ended"));
    }
    const bytes = plainFrame(kind, id, payload);
    if (!this.#windows) return this.#admit(bytes);
    const waiting: Waiting = { frame: bytes, sent: withResolvers<void>() };
    this.#queue.push(waiting);
    this.#pump();
    return waiting.sent.promise;
  }

  /** Sends the frames that wait, in order, as far as the credit goes. */
  #pump(): void {
    while (this.#queue.length > 0) {
      const cost = this.#queue[0].frame.byteLength + RELAY_TAG_BYTES;
      if (this.#sentBytes + cost > this.#sendLimit) return;
      const { frame, sent } = this.#queue.shift()!;
      this.#sentBytes += cost;
      this.#admit(frame).then(sent.resolve, sent.reject);
    }
    this.#emptied?.resolve();
    this.#emptied = undefined;
  }

  /** Drops the frames that wait for credit: the link is ending. */
  #drop(): void {
    const queue = this.#queue;
    this.#queue = [];
    const ended = new RelayError("Cannot send as the relay link has ended");
    for (const { sent } of queue) {
      sent.promise.catch(() => {});
      sent.reject(ended);
    }
    this.#emptied?.resolve();
    this.#emptied = undefined;
  }

  /** Seals one frame now and sends it after every frame sealed before. */
  #admit(frame: Uint8Array<ArrayBuffer>): Promise<void> {
    // Sealed now, so frames are numbered in the order they are admitted; the
    // seals run side by side and the frames leave in that order.
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
    this.#arrivedBytes += payload.byteLength;
    if (this.#windows) {
      // Counted frames never exceed what was granted; credits and the end are few.
      if (this.#arrivedBytes - this.#freeBytes > this.#granted + RELAY_CONTROL_SLACK) {
        return this.#fail(
          new RelayError(
            `Refused relayed frames as the other peer sent ${
              this.#arrivedBytes - this.#freeBytes - this.#granted
            } bytes beyond the window this side granted (RELAY_WINDOW, ${this.#windows.receive} bytes, and RELAY_CONTROL_SLACK, ${RELAY_CONTROL_SLACK} bytes, for credits): it ignores the relay's flow control, so the relay path is closed; run this module's current version on both sides`,
          ),
        );
      }
    } else if (++this.#pending > RELAY_MAX_INBOX_FRAMES) {
      return this.#fail(
        new RelayError(
          `The relay link fell more than RELAY_MAX_INBOX_FRAMES (${RELAY_MAX_INBOX_FRAMES}) frames behind: the peer sends faster than this side can open its frames (a peer of this module waits for credit); run this module's current version on both sides`,
        ),
      );
    }
    // Opened now, in the order of arrival, side by side; handled in that order.
    const opened = this.#cipher.open(new Uint8Array(payload));
    opened.catch(() => {});
    this.#inbox = this.#inbox.then(async () => {
      if (!this.#windows) this.#pending--;
      if (this.#ended) return;
      const frame = await opened;
      if (this.#ended) return;
      this.#dispatch(frame);
      this.#read(frame);
    }).catch((error) => this.#fail(error));
  }

  /** A frame was dispatched: counts it, and renews the other side's credit when due. */
  #read(frame: Uint8Array): void {
    const windows = this.#windows;
    if (!windows) return;
    const cost = frame.byteLength + RELAY_TAG_BYTES;
    if (frame[0] === CREDIT || frame[0] === END) {
      this.#freeBytes += cost;
      return;
    }
    this.#readBytes += cost;
    const limit = this.#readBytes + windows.receive;
    if (this.#ended || limit - this.#granted < windows.receive / 4) return;
    this.#granted = limit;
    const payload = new Uint8Array(8);
    new DataView(payload.buffer).setBigUint64(0, BigInt(limit));
    void this.#admit(plainFrame(CREDIT, 0, payload)).catch(() => {});
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
        this.#finish(undefined, decoder.decode(payload).slice(0, MAX_BYE_REASON_LENGTH));
        return;
      case CREDIT: {
        if (!this.#windows || payload.byteLength !== 8) {
          throw new RelayError(
            "Refused a relay credit as the other peer announced no window, or the credit is malformed: the peer is faulty",
          );
        }
        const limit = Number(new DataView(payload.buffer, payload.byteOffset).getBigUint64(0));
        // A credit that grants nothing new changes nothing (QUIC's MAX_DATA).
        if (limit > this.#sendLimit) {
          this.#sendLimit = limit;
          this.#pump();
        }
        return;
      }
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
    this.#drop();
    this.#pipe.close();
    for (const channel of [...this.#channels.values()]) channel.closedByPeer();
    this.#channels.clear();
    const onend = this.onend;
    this.onend = undefined;
    onend?.(error, reason);
  }
}
