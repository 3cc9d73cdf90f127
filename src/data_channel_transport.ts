/**
 * MCP over one data channel: {@linkcode DataChannelTransport}, this module's
 * framing on the wire (text frames, chunks, keepalives), backpressure, and
 * the receiving side's limits (the receive cap, the budget, the deadline of
 * an unfinished message, answers for what was refused).
 *
 * Longer than 400 lines because the sender and the receiver of one channel
 * share its state (whether the peer takes chunks, the frame size, the queue
 * of writes, whether it closed), and a refusal on one side is answered on the
 * other; the encoding and decoding themselves are in `framing.ts`, the
 * keepalives in `_liveness.ts`.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { clockOf } from "./_clock.ts";
import { Liveness } from "./_liveness.ts";
import { settle, yieldToEventLoop } from "./_async.ts";
import { jsonPieces } from "./_json_pieces.ts";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { parseJsonRpcMessage } from "./_jsonrpc.ts";
import {
  BUFFERED_LOW_CHECK_INTERVAL,
  CHUNK_SIZE,
  CLOSE_DRAIN_TIMEOUT,
  DEFAULT_CHANNEL_OPEN_TIMEOUT,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_MAX_RECEIVE_SIZE,
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
  DRAIN_CHECK_INTERVAL,
  FAIR_ACTIVE_MS,
  FAIR_REPORT_BYTES,
  FALLBACK_MAX_MESSAGE_SIZE,
  HIGH_WATER_MARK,
  LOW_WATER_MARK,
  MAX_FRAME_SIZE,
  MESSAGE_TOO_LARGE,
  SEND_SLICE_MS,
  UNFINISHED_MESSAGE_TIMED_OUT,
} from "./constants.ts";
import { FrameError, MessageSizeError, WebRTCTransportError } from "./errors.ts";
import {
  encodeFrames,
  fitsOneFrame,
  FRAME_LAST,
  FRAME_MORE,
  FrameDecoder,
  MemoryBudget,
  oneTextFrame,
  readReportFrame,
  type RefusedEnvelope,
} from "./framing.ts";
import { utf8Length } from "./_utf8.ts";
import { schedulerOf } from "./_send_scheduler.ts";
import { FairWindow } from "./_fair_window.ts";

/**
 * The part of the W3C `RTCDataChannel` this module uses. A browser's channel,
 * node-datachannel's polyfill and an in-memory fake all fit.
 */
export interface DataChannelLike {
  /** The channel's label. */
  readonly label: string;
  /** `"connecting"`, `"open"`, `"closing"` or `"closed"`. */
  readonly readyState: string;
  /** Bytes queued for sending and not yet sent. */
  readonly bufferedAmount: number;
  /** `bufferedamountlow` fires when `bufferedAmount` falls to this value. */
  bufferedAmountLowThreshold: number;
  /** How binary frames are delivered; set to `"arraybuffer"`. */
  binaryType: string;
  /**
   * Sends one frame, taking what it needs of `data` before it returns, as
   * `RTCDataChannel.send()` does (it copies the bytes): the transport writes
   * the next chunk into the same buffer.
   */
  send(data: string | Uint8Array<ArrayBuffer>): void;
  /** Closes the channel. */
  close(): void;
  /** Listens for `open`, `message`, `close`, `error` and `bufferedamountlow`. */
  addEventListener(type: string, listener: (event: Event) => void): void;
  /** Stops listening. */
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

/** Options of {@linkcode DataChannelTransport}. */
export interface DataChannelTransportOptions {
  /**
   * The largest message accepted from the peer, in UTF-8 bytes. A larger one
   * is dropped with a `MessageSizeError` through `onerror`; the session goes on,
   * and the request it belonged to fails at once with a JSON-RPC error
   * (code `-32000`) on whichever side waits for it.
   *
   * @default {67108864}
   */
  maxReceiveSize?: number;
  /**
   * The largest frame the peer accepts (its SCTP max message size), in bytes,
   * or a function read once the channel is open (the size is negotiated with
   * the connection). A message that fits goes as one text frame, anything
   * larger as chunks of at most 64 KiB; frames are never larger than 256 KiB
   * whatever this says.
   *
   * @default {65536}
   */
  maxMessageSize?: number | (() => number);
  /**
   * Whether the peer reassembles a message sent in chunks (it speaks this
   * module's framing), or a function read once the channel is open. A peer
   * that does not (another stack, which reads one JSON-RPC message per text
   * frame) gets every message as one text frame: a request or notification
   * larger than `maxMessageSize` is refused with a `MessageSizeError`, and a
   * response that large is replaced by a JSON-RPC error (code `-32000`), so
   * that the peer's request fails at once. A keepalive from the peer shows
   * that it speaks the framing after all.
   *
   * @default {true}
   */
  chunks?: boolean | (() => boolean);
  /**
   * Whether to send keepalives from the start. Set it only when the peer is
   * known to speak this module's framing; otherwise keepalives start once the
   * peer sends one, so a plain-text peer never sees a binary frame from us.
   *
   * @default {true}
   */
  keepalive?: boolean;
  /**
   * Milliseconds between keepalives while nothing else is sent; `0` turns
   * keepalives and idle detection off.
   *
   * @default {1000}
   */
  keepaliveInterval?: number;
  /**
   * Milliseconds without any frame from a keepalive-speaking peer after which
   * it is taken as gone and the transport closes.
   *
   * @default {8000}
   */
  idleTimeout?: number;
  /**
   * The budget that the peer's unfinished chunked messages reserve their bytes
   * from before they are kept (e.g. one per connection, inside one per
   * process). A message whose chunk does not fit is dropped as one over
   * `maxReceiveSize` is: a request gets a JSON-RPC error naming the budget
   * (code `-32000`), and the session goes on. Without it, only
   * `maxReceiveSize` bounds what the peer makes this session hold.
   *
   * @default {undefined}
   */
  budget?: MemoryBudget;
  /**
   * The budget that this side's messages reserve their size from while they
   * wait to be written behind others (behind one under way, or a channel
   * whose buffer is over its high-water mark): a peer that stops reading, yet
   * keeps asking, would otherwise make its answers pile up here without
   * bound. A send that does not fit is refused with an error naming the
   * budget, as is every send after it, and the transport closes: the peer is
   * not reading what it is sent. A message gives its reservation back as its
   * writing begins; one with nothing ahead of it reserves nothing. Raise it
   * along with `maxReceiveSize`: a message larger than it cannot wait.
   *
   * @default {new MemoryBudget("maxQueuedBytes", DEFAULT_MAX_QUEUED_BYTES)} (128 MiB)
   */
  queueBudget?: MemoryBudget;
  /**
   * Milliseconds a chunked message may go without a new chunk before it is
   * dropped: a request gets a JSON-RPC error (code `-32000`) saying so, and
   * the transport closes, as the peer stopped in the middle of a message. It
   * bounds progress, not total time: a large message on a slow path takes as
   * long as it needs.
   *
   * @default {10000}
   */
  unfinishedMessageTimeout?: number;
  /**
   * Milliseconds `start()` waits for a connecting channel to open before it
   * closes the channel and fails.
   *
   * @default {10000}
   */
  openTimeout?: number;
}

/** The errors of sends refused for a queue budget. */
const queueRefusals = new WeakSet<Error>();

/**
 * Whether `error` refused a send for the transport's queue budget: the other
 * peer stopped reading, and the stream cannot go on on that channel.
 */
export function isQueueRefusal(error: unknown): boolean {
  return error instanceof Error && queueRefusals.has(error);
}

/**
 * An MCP {@linkcode Transport} over one `RTCDataChannel`-shaped object.
 *
 * Each JSON-RPC message goes as one text frame when it fits the peer's max
 * message size, else as binary chunks; `send()` resolves once the channel can
 * take more (it waits for `bufferedamountlow` above a 4 MiB high-water mark), so
 * sending a large message never buffers it whole in the channel. Incoming
 * frames are validated with the SDK's `JSONRPCMessageSchema`; a bad frame goes
 * to `onerror` and is dropped.
 *
 * The WebRTC transports build on this class; use it directly for a data
 * channel you negotiated yourself. Install the callbacks before `start()`, or
 * messages may be lost.
 *
 * @example Round trip over a linked in-memory channel pair
 * ```ts
 * import { DataChannelTransport } from "@mcp/webrtc/framing";
 * import { createLinkedChannelPair } from "@mcp/webrtc/testing";
 * import assert from "node:assert/strict";
 *
 * const [left, right] = createLinkedChannelPair();
 * const a = new DataChannelTransport(left);
 * const b = new DataChannelTransport(right);
 * const received = new Promise((resolve) => (b.onmessage = resolve));
 * await Promise.all([a.start(), b.start()]);
 * await a.send({ jsonrpc: "2.0", id: 1, method: "ping" });
 * assert.deepEqual(await received, { jsonrpc: "2.0", id: 1, method: "ping" });
 * await a.close();
 * await b.close();
 * ```
 */
export class DataChannelTransport implements Transport {
  readonly #channel: DataChannelLike;
  readonly #decoder: FrameDecoder;
  /** What messages waiting to be written reserve their size from. */
  readonly #queueBudget: MemoryBudget;
  /** Why a message was refused for the queue budget: every later send fails with it. */
  #queueRefused?: Error;
  readonly #maxMessageSize: number | (() => number);
  #frameSize = FALLBACK_MAX_MESSAGE_SIZE;
  readonly #chunksOption: boolean | (() => boolean);
  /** Whether messages too large for one frame go in chunks; known once the channel is open. */
  #chunks = true;
  /** Whether the peer sent a frame of this module's framing. */
  #peerFramed = false;
  readonly #keepaliveInterval: number;
  readonly #idleTimeout: number;
  /** Whether the peer is known from the start to speak the framing. */
  readonly #keepalive: boolean;
  /** The keepalives and the idle check, once the channel is open (unless turned off). */
  #liveness?: Liveness;
  #started = false;
  #closed = false;
  #closing?: Promise<void>;
  #queue: Promise<void> = Promise.resolve();
  /** Messages handed to `send()` whose writing has not ended. */
  #writing = 0;
  #waiters = new Set<() => void>();
  /** The buffer every chunk of a large message is written into, once one was sent. */
  #chunkBuffer?: Uint8Array;
  readonly #unfinishedTimeout: number;
  readonly #openTimeout: number;
  /** When the last chunk of an unfinished message came. */
  #lastChunk = 0;
  #stallTimer?: unknown;
  /** Bytes of chunk frames handed to the channel and read by the peer as it reported, and the window they give. */
  readonly #fair = new FairWindow();
  /** Whether the peer reported what it read: only then is this side held. */
  #peerReports = false;
  /** Whether this side asked the peer to report what it reads. */
  #askedReports = false;
  /** Whether the peer asked for reports; bytes of chunk frames read, and reported. */
  #reporting = false;
  #chunkBytesRead = 0;
  #reportedRead = 0;

  /** Called for every valid JSON-RPC message from the peer. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Called for a dropped frame or a lost peer; the session may go on. */
  onerror?: (error: Error) => void;
  /** Called exactly once, when the transport has closed for any reason. */
  onclose?: () => void;

  /**
   * @param channel An open or opening data channel; this transport owns it.
   * @param options Framing, backpressure and liveness settings.
   * @throws {RangeError} If an option is out of range.
   * @throws {TypeError} If `budget` is not a {@linkcode MemoryBudget}.
   */
  constructor(channel: DataChannelLike, options: DataChannelTransportOptions = {}) {
    const {
      maxReceiveSize = DEFAULT_MAX_RECEIVE_SIZE,
      maxMessageSize = FALLBACK_MAX_MESSAGE_SIZE,
      chunks = true,
      keepalive = true,
      keepaliveInterval = DEFAULT_KEEPALIVE_INTERVAL,
      idleTimeout = DEFAULT_IDLE_TIMEOUT,
      budget,
      queueBudget = new MemoryBudget("maxQueuedBytes", DEFAULT_MAX_QUEUED_BYTES),
      unfinishedMessageTimeout = DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
      openTimeout = DEFAULT_CHANNEL_OPEN_TIMEOUT,
    } = options;
    if (typeof maxMessageSize === "number") requireInteger("maxMessageSize", maxMessageSize, 2);
    requireInteger("keepaliveInterval", keepaliveInterval, 0);
    requireInteger("idleTimeout", idleTimeout, 1);
    requireInteger("unfinishedMessageTimeout", unfinishedMessageTimeout, 1);
    requireInteger("openTimeout", openTimeout, 1);
    for (const [name, given] of [["budget", budget], ["queueBudget", queueBudget]] as const) {
      if (given !== undefined && !(given instanceof MemoryBudget)) {
        throw new TypeError(
          `Cannot create transport as '${name}' is not a MemoryBudget: pass new MemoryBudget(name, bytes) from @mcp/webrtc/framing, or leave it out`,
        );
      }
    }
    this.#queueBudget = queueBudget;
    this.#channel = channel;
    this.#decoder = new FrameDecoder(maxReceiveSize, { parse: true, budget });
    this.#unfinishedTimeout = unfinishedMessageTimeout;
    this.#openTimeout = openTimeout;
    this.#maxMessageSize = maxMessageSize;
    this.#chunksOption = chunks;
    this.#keepalive = keepalive && keepaliveInterval > 0;
    this.#keepaliveInterval = keepaliveInterval;
    this.#idleTimeout = idleTimeout;
  }

  /**
   * Starts receiving at once (frames that arrive while the channel opens are
   * kept); resolves when the channel is open.
   *
   * @throws {Error} If called twice (`Client.connect()` and `Server.connect()`
   * call it for you).
   * @throws {WebRTCTransportError} If the channel closes before it opens, or
   * does not open within `openTimeout` (it is closed then).
   */
  async start(): Promise<void> {
    if (this.#started) {
      throw new WebRTCTransportError(
        "DataChannelTransport already started! If using Client or Server class, note that connect() calls start() automatically.",
      );
    }
    this.#started = true;
    const channel = this.#channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = LOW_WATER_MARK;
    channel.addEventListener("message", this.#onMessage);
    channel.addEventListener("bufferedamountlow", this.#wake);
    channel.addEventListener("close", this.#onChannelClose);
    schedulerOf(this)?.add(channel);
    let late = false;
    const clock = clockOf(this);
    if (channel.readyState === "connecting") {
      await new Promise<void>((resolve) => {
        const done = () => {
          clock.clearTimeout(timer);
          channel.removeEventListener("open", done);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = clock.setTimeout(() => {
          late = true;
          done();
        }, this.#openTimeout);
        channel.addEventListener("open", done);
        this.#waiters.add(done);
      });
    }
    if (channel.readyState !== "open" || this.#closed) {
      const state = channel.readyState;
      this.#finish();
      throw new WebRTCTransportError(
        late
          ? `Cannot start transport as the data channel did not open within ${this.#openTimeout} ms (openTimeout): the peer connection is gone or overloaded; open a new session`
          : `Cannot start transport as the data channel is not open: readyState is "${state}"`,
      );
    }
    const size = typeof this.#maxMessageSize === "number"
      ? this.#maxMessageSize
      : this.#maxMessageSize();
    this.#frameSize = Math.min(
      Number.isSafeInteger(size) && size >= 2 ? size : FALLBACK_MAX_MESSAGE_SIZE,
      MAX_FRAME_SIZE,
    );
    // A keepalive that came while the channel opened has shown it already.
    this.#chunks = this.#peerFramed ||
      (typeof this.#chunksOption === "function" ? this.#chunksOption() : this.#chunksOption);
    if (this.#keepaliveInterval > 0) {
      this.#liveness = new Liveness({
        interval: this.#keepaliveInterval,
        idleTimeout: this.#idleTimeout,
        speaks: this.#keepalive || this.#peerFramed,
        channels: () => [channel],
        lost: (error) => {
          this.onerror?.(error);
          void this.close();
        },
        clock,
      });
      this.#liveness.start();
    }
  }

  /**
   * Sends one message; resolves once it is handed to the channel and the
   * channel can take more. Messages are sent in call order, never interleaved.
   *
   * @param message A JSON-RPC message.
   * @throws {WebRTCTransportError} If the transport is closed, or closes while sending.
   */
  send(message: JSONRPCMessage): Promise<void> {
    // Once one was refused, none after it goes: the stream has no gap.
    if (this.#queueRefused) return Promise.reject(this.#queueRefused);
    if (this.#closed) {
      return Promise.reject(
        new WebRTCTransportError(
          `Cannot send message as the transport is closed: readyState is "${this.#channel.readyState}"`,
        ),
      );
    }
    schedulerOf(this)?.touch(this.#channel);
    let text: Iterable<string>;
    try {
      text = jsonPieces(message);
    } catch (cause) {
      return Promise.reject(
        new TypeError("Cannot send message as it is not serialisable to JSON", { cause }),
      );
    }
    if (!this.#chunks) {
      // One text frame or nothing: the peer cannot put chunks together.
      const whole = [...text].join("");
      if (!fitsOneFrame(whole, this.#frameSize)) return this.#refuseOversize(message, whole);
      text = [whole];
    }
    // A small message with nothing queued before it goes at once, on the wire
    // before send() returns, as with the SDK's own transports.
    const frame = this.#writing === 0 ? oneTextFrame(text, this.#frameSize) : undefined;
    if (frame !== undefined && this.#channel.bufferedAmount <= HIGH_WATER_MARK) {
      try {
        this.#channel.send(frame);
      } catch (error) {
        return Promise.reject(error);
      }
      this.#liveness?.sent();
      return this.#channel.bufferedAmount > HIGH_WATER_MARK
        ? this.#enqueue(this.#writable())
        : Promise.resolve();
    }
    // Behind nothing, it is written now (it may wait inside for the buffer to drain).
    if (this.#writing === 0) return this.#enqueue(this.#queue.then(() => this.#write(text)));
    return this.#waitToWrite(Array.isArray(text) ? text : [...text]);
  }

  /**
   * Queues a message behind those before it, its size reserved from the
   * queue budget until its writing begins; refuses it, and closes, when it
   * does not fit.
   */
  #waitToWrite(pieces: string[]): Promise<void> {
    let size = 0;
    for (const piece of pieces) size += piece.length;
    const refused = this.#queueBudget.reserve(size);
    if (refused) {
      const error = new WebRTCTransportError(
        `Cannot send message (${size} characters) as the messages waiting for the other peer to read would exceed '${refused.name}' (${refused.limit} bytes, ${refused.used} held): it is not reading what it is sent; the session closes`,
      );
      this.#queueRefused = error;
      queueRefusals.add(error);
      this.onerror?.(error);
      void this.close();
      return Promise.reject(error);
    }
    let held = true;
    const release = () => {
      if (held) this.#queueBudget.release(size);
      held = false;
    };
    return this.#enqueue(
      this.#queue.then(() => {
        release();
        return this.#write(pieces);
      }).finally(release),
    );
  }

  /** Counts `writing` as queued until it settles; later messages wait for it. */
  #enqueue(writing: Promise<void>): Promise<void> {
    this.#writing++;
    this.#queue = writing.catch(() => {}).finally(() => this.#writing--);
    return writing;
  }

  /**
   * Waits up to 2 s for queued frames to leave, closes the channel and fires
   * `onclose`. Idempotent: later calls return the same promise.
   */
  close(): Promise<void> {
    // Assigned before shutting down: callbacks fired during it may call close() again.
    this.#closing ??= Promise.resolve().then(() => this.#shutdown());
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    try {
      if (!this.#closed && this.#channel.readyState === "open") {
        const deadline = clockOf(this).now() + CLOSE_DRAIN_TIMEOUT;
        await settle(this.#queue, CLOSE_DRAIN_TIMEOUT);
        await this.#drain(deadline);
      }
    } finally {
      this.#finish();
    }
  }

  async #write(text: Iterable<string>): Promise<void> {
    // Slices are timed on the transport's clock, as its other waits are.
    const clock = clockOf(this);
    let busySince = clock.now();
    // Every chunk is written into one buffer of this transport: a channel
    // copies what send() gives it, as RTCDataChannel does (a new buffer per
    // chunk cost 0.79–0.84× the raw channel's rate for 16 MiB, against
    // 0.95–1.01× in the same process).
    const chunkSize = Math.min(CHUNK_SIZE, this.#frameSize);
    if (this.#chunkBuffer?.byteLength !== chunkSize) this.#chunkBuffer = new Uint8Array(chunkSize);
    const scheduler = schedulerOf(this);
    let first = true;
    for (
      const frame of encodeFrames(text, this.#frameSize, { chunkSize, buffer: this.#chunkBuffer })
    ) {
      if (scheduler && typeof frame !== "string") {
        if (first && !this.#askedReports) {
          // A peer that takes chunks speaks this module: ask it to report what it
          // reads (a version that does not know the request ignores it).
          this.#askedReports = true;
          this.#channel.send(WINDOW_REQUEST);
        }
        first = false;
        // While another session is active, keep at most the window unread by the peer.
        const held = this.#peerReports && scheduler.othersActive(this.#channel);
        if (held) {
          await this.#windowRoom(frame.byteLength);
          busySince = clock.now();
        }
        // The association is shared: wait for this session's turn, then hand one chunk.
        let turn = true;
        if (scheduler.mustWait()) {
          turn = await scheduler.turn(this.#channel);
          busySince = clock.now();
        } else if (clock.now() - busySince > SEND_SLICE_MS) {
          await yieldToEventLoop();
          busySince = clock.now();
          if (scheduler.mustWait()) turn = await scheduler.turn(this.#channel);
        }
        // Without a turn the channel has ended: this throws.
        if (!turn) await this.#writable();
        try {
          if (this.#closed || this.#channel.readyState !== "open") await this.#writable();
          this.#channel.send(frame as Uint8Array<ArrayBuffer>);
          this.#fair.handed(frame.byteLength, clock.now(), held);
        } finally {
          scheduler.handed();
        }
        this.#liveness?.sent();
        continue;
      }
      if (this.#channel.bufferedAmount > HIGH_WATER_MARK || this.#closed) {
        await this.#writable();
        busySince = clock.now();
      } else if (clock.now() - busySince > SEND_SLICE_MS) {
        // A large message is encoded as it is sent: let the rest of the process run.
        await yieldToEventLoop();
        busySince = clock.now();
      }
      this.#channel.send(frame as string | Uint8Array<ArrayBuffer>);
      this.#liveness?.sent();
    }
    if (this.#channel.bufferedAmount > HIGH_WATER_MARK) await this.#writable();
  }

  /**
   * Resolves once handing `size` more bytes keeps at most the window unread
   * by the peer (`FAIR_WINDOW`, more on a path that holds more in flight: see
   * `_fair_window.ts`), or when no report came for the report wait
   * (`FAIR_REPORT_WAIT_MS`, longer on a slow path: the peer is slow to read
   * or to report, and one more chunk goes).
   */
  async #windowRoom(size: number): Promise<void> {
    const clock = clockOf(this);
    const fair = this.#fair;
    while (!this.#closed && fair.sent + size - fair.read > fair.window) {
      const reported = await new Promise<boolean>((resolve) => {
        const done = (result: boolean) => {
          clock.clearTimeout(timer);
          this.#waiters.delete(woken);
          resolve(result);
        };
        const woken = () => done(true);
        const timer = clock.setTimeout(() => done(false), fair.reportWait);
        this.#waiters.add(woken);
      });
      if (!reported) return;
    }
  }

  /** Resolves once the channel buffers at most the high-water mark. */
  async #writable(): Promise<void> {
    while (true) {
      if (this.#closed || this.#channel.readyState !== "open") {
        throw new WebRTCTransportError(
          `Cannot send message as the data channel closed: readyState is "${this.#channel.readyState}"`,
        );
      }
      if (this.#channel.bufferedAmount <= HIGH_WATER_MARK) return;
      // `bufferedamountlow` wakes us; the timer guards against a missed event.
      await this.#wait(BUFFERED_LOW_CHECK_INTERVAL);
    }
  }

  async #drain(deadline: number): Promise<void> {
    const clock = clockOf(this);
    while (
      this.#channel.readyState === "open" && this.#channel.bufferedAmount > 0 &&
      clock.now() < deadline
    ) {
      await this.#wait(Math.min(DRAIN_CHECK_INTERVAL, deadline - clock.now()));
    }
  }

  /**
   * Waits for `bufferedamountlow` (or the channel's end), at most `ms`. The
   * timer is the system's, not the clock's: it stands in for an event some
   * implementations miss, and is no deadline a test would move.
   */
  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #wake = () => {
    for (const waiter of [...this.#waiters]) waiter();
  };

  #onMessage = (event: Event) => {
    if (this.#closed) return;
    const data = (event as MessageEvent).data;
    // A chunk is reported as it arrives, before it is decoded.
    if (data instanceof ArrayBuffer) this.#chunkRead(data);
    const decoded = this.#decoder.push(data);
    this.#liveness?.received(decoded.kind === "keepalive");
    this.#watchProgress(decoded.kind === "partial");
    switch (decoded.kind) {
      case "read":
        this.#peerReports = true;
        if (this.#fair.reported(decoded.bytes, clockOf(this).now())) this.#wake();
        return;
      case "partial":
        return;
      case "keepalive":
        // The liveness answers the first one with keepalives of its own.
        this.#peerFramed = this.#chunks = true;
        return;
      case "error":
        this.onerror?.(decoded.error);
        return;
      case "oversize":
        this.onerror?.(decoded.error);
        this.#answerOversize(decoded.envelope, decoded.error, decoded.budget);
        return;
    }
    let json: unknown;
    if (decoded.kind === "value") json = decoded.value;
    else {
      try {
        json = JSON.parse(decoded.text);
      } catch (cause) {
        this.onerror?.(new FrameError("Dropped an incoming frame as it is not JSON", { cause }));
        return;
      }
    }
    if ((json as { method?: unknown })?.method === WINDOW_REQUEST_METHOD) {
      this.#reporting = true;
      return;
    }
    const parsed = parseJsonRpcMessage(json);
    if (!parsed.success) {
      this.onerror?.(
        new FrameError("Dropped an incoming frame as it is not a JSON-RPC 2.0 message", {
          cause: parsed.error,
        }),
      );
      return;
    }
    schedulerOf(this)?.touch(this.#channel);
    this.onmessage?.(parsed.data);
  };

  /**
   * Counts a chunk frame read, and reports what was read to a peer that
   * asked, while another session of the connection is active (only then can
   * the sender be held; a report costs both ends a frame): every
   * `FAIR_REPORT_BYTES`, and at a message's last chunk. The first report
   * once another session is active catches up with all that was read.
   */
  #chunkRead(frame: ArrayBuffer): void {
    const header = frame.byteLength > 0 ? new Uint8Array(frame, 0, 1)[0] : -1;
    if (header !== FRAME_MORE && header !== FRAME_LAST) return;
    this.#chunkBytesRead += frame.byteLength;
    if (!this.#reporting) return;
    // Twice as long as the sender's test: its side may see the other session a moment later.
    const scheduler = schedulerOf(this);
    if (scheduler && !scheduler.othersActive(this.#channel, 2 * FAIR_ACTIVE_MS)) return;
    const unreported = this.#chunkBytesRead - this.#reportedRead;
    if (header === FRAME_MORE && unreported < FAIR_REPORT_BYTES) return;
    this.#reportedRead = this.#chunkBytesRead;
    try {
      this.#channel.send(readReportFrame(this.#chunkBytesRead));
    } catch {
      // The channel closed: its close event ends the transport.
    }
  }

  /**
   * A message too large for a peer that takes no chunks: refused, and a
   * response is replaced by an error response for the request it answers.
   */
  #refuseOversize(message: JSONRPCMessage, text: string): Promise<void> {
    const size = utf8Length(text);
    const error = new MessageSizeError(
      size,
      this.#frameSize,
      `Cannot send a message of ${size} bytes as the peer takes at most ${this.#frameSize} bytes in one message and does not reassemble chunks (it is not this module): send less at a time, or use this module on both sides`,
    );
    const { id } = message as { id?: string | number };
    if (id === undefined || "method" in message) return Promise.reject(error);
    this.onerror?.(error);
    return this.send({ jsonrpc: "2.0", id, error: sizeRefusal(error) });
  }

  /**
   * Tells whoever waits on a dropped message, instead of letting it time out:
   * a request from the peer gets an error response; a response to one of our
   * requests becomes an error response here.
   */
  #answerOversize(envelope: RefusedEnvelope, error: MessageSizeError, budget?: string): void {
    if (envelope.id === undefined) return;
    const refusal = sizeRefusal(error, budget);
    if (envelope.method !== undefined) {
      this.send({ jsonrpc: "2.0", id: envelope.id, error: refusal }).catch(() => {});
    } else {
      this.onmessage?.({ jsonrpc: "2.0", id: envelope.id, error: refusal });
    }
  }

  /**
   * Keeps the unfinished message's deadline: armed while a chunked message
   * is under way, moved on by each chunk, cleared when it ends.
   */
  #watchProgress(chunk: boolean): void {
    const clock = clockOf(this);
    if (!this.#decoder.unfinished) {
      if (this.#stallTimer !== undefined) clock.clearTimeout(this.#stallTimer);
      this.#stallTimer = undefined;
      return;
    }
    // A keepalive between chunks is no progress.
    if (!chunk) return;
    this.#lastChunk = clock.now();
    this.#stallTimer ??= clock.setTimeout(this.#checkProgress, this.#unfinishedTimeout);
  }

  #checkProgress = () => {
    this.#stallTimer = undefined;
    if (this.#closed || !this.#decoder.unfinished) return;
    const clock = clockOf(this);
    const quiet = clock.now() - this.#lastChunk;
    if (quiet < this.#unfinishedTimeout) {
      this.#stallTimer = clock.setTimeout(this.#checkProgress, this.#unfinishedTimeout - quiet);
      return;
    }
    const envelope = this.#decoder.abandon();
    const message =
      `Closed the session as the peer sent no chunk of an unfinished message for ${quiet} ms (unfinishedMessageTimeout is ${this.#unfinishedTimeout} ms): send each message's chunks without pausing`;
    this.onerror?.(new FrameError(message));
    const answer = envelope?.id !== undefined && envelope.method !== undefined
      ? this.send({
        jsonrpc: "2.0",
        id: envelope.id,
        error: {
          code: UNFINISHED_MESSAGE_TIMED_OUT,
          message,
          data: { budget: "unfinishedMessageTimeout", limit: this.#unfinishedTimeout },
        },
      }).catch(() => {})
      : Promise.resolve();
    void answer.then(() => this.close());
  };

  #onChannelClose = () => this.#finish();

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#liveness?.stop();
    if (this.#stallTimer !== undefined) clockOf(this).clearTimeout(this.#stallTimer);
    // What an unfinished message held goes back to the budget.
    this.#decoder.abandon();
    const channel = this.#channel;
    channel.removeEventListener("message", this.#onMessage);
    channel.removeEventListener("bufferedamountlow", this.#wake);
    channel.removeEventListener("close", this.#onChannelClose);
    schedulerOf(this)?.delete(channel);
    this.#wake();
    try {
      if (channel.readyState !== "closed") channel.close();
    } finally {
      this.onclose?.();
    }
  }
}

/**
 * The notification that asks the peer to report the bytes of chunk frames it
 * reads (`FRAME_READ`); it never reaches MCP.
 */
const WINDOW_REQUEST_METHOD = "mcp-webrtc/window";
const WINDOW_REQUEST = JSON.stringify({ jsonrpc: "2.0", method: WINDOW_REQUEST_METHOD });

/** The JSON-RPC error that stands for a message refused for its size, or by a budget. */
function sizeRefusal(error: MessageSizeError, budget?: string) {
  return {
    code: MESSAGE_TOO_LARGE,
    message: error.message,
    data: { size: error.size, limit: error.limit, ...(budget && { budget }) },
  };
}

function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create transport as '${name}' must be an integer of at least ${min}: received ${value}`,
    );
  }
}
