/**
 * One MCP session of a `WebRTCConnection`: its data channel, its
 * framing (a {@linkcode DataChannelTransport} on that channel) and its state
 * (the callbacks of whoever serves or uses it, whether it started or closed).
 *
 * A session knows its connection only through a {@linkcode SessionHost}, and
 * never the peer connection: it is given a channel (`bind`) and gives it back
 * when it closes (`detach`). That is the seam for a connection that moves its
 * sessions to a new peer connection after a network change: such a
 * connection would bind each session to a channel of the new peer, and the
 * session's MCP state would stay as it is.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { type Clock, SYSTEM_CLOCK, useClock } from "./_clock.ts";
import { INCOMING_CHANNEL_OPEN_TIMEOUT } from "./constants.ts";
import {
  type DataChannelLike,
  DataChannelTransport,
  type DataChannelTransportOptions,
} from "./data_channel_transport.ts";
import { WebRTCTransportError } from "./errors.ts";
import { type SendScheduler, useScheduler } from "./_send_scheduler.ts";

/** Where a channel comes from, and what it says about the other peer. */
export interface ChannelOrigin {
  /** Whether the other peer opened it (it is open once announced). */
  incoming: boolean;
  /** Whether the other peer announced this module's framing on it. */
  speaks: boolean;
}

/**
 * What a session reaches of the connection that carries it (`C`: the
 * connection's type, which this module does not import, so that the
 * connection's module and this one do not import each other).
 */
export interface SessionHost<C> {
  /** The connection, as the session shows it. */
  readonly connection: C;
  /** A session has its channel: count it. */
  attach(session: ChannelSession<C>): void;
  /** A session closed: forget it. */
  detach(session: ChannelSession<C>): void;
  /** The framing options of a session on a channel of this origin. */
  channelOptions(origin: ChannelOrigin): DataChannelTransportOptions;
  /** The clock the session's deadlines read. */
  clock(): Clock;
  /** The turns of the connection's sessions at its association's send buffer. */
  readonly scheduler: SendScheduler;
}

/** One session's transport: a {@linkcode DataChannelTransport} on a channel of its own. */
export class ChannelSession<C> implements Transport {
  readonly #host: SessionHost<C>;
  readonly #open?: () => Promise<{ channel: DataChannelLike; origin: ChannelOrigin }>;
  /** The channel transport, once open. */
  #opened?: DataChannelTransport;
  #inner?: DataChannelTransport;
  #ready?: Promise<DataChannelTransport>;
  #channel?: DataChannelLike;
  #started = false;
  #closed = false;
  #closing?: Promise<void>;
  #ended!: () => void;
  readonly closed: Promise<void> = new Promise((resolve) => (this.#ended = resolve));

  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;

  /**
   * @param host The connection's side of the session.
   * @param open Gets the session a channel when it starts, unless it was bound to one before.
   */
  constructor(
    host: SessionHost<C>,
    open?: () => Promise<{ channel: DataChannelLike; origin: ChannelOrigin }>,
  ) {
    this.#host = host;
    this.#open = open;
  }

  /** The connection that carries this session. */
  get connection(): C {
    return this.#host.connection;
  }

  /** The session's channel, once it has one. */
  get channel(): DataChannelLike | undefined {
    return this.#channel;
  }

  /** Whether the channel is open and the session not closed. */
  get open(): boolean {
    return this.#opened !== undefined && !this.#closed;
  }

  /**
   * Makes the channel transport and listens, before anyone starts the session.
   * A channel that does not open within `openTimeout` of `DataChannelTransport`
   * (or, for one the other peer opened, {@linkcode INCOMING_CHANNEL_OPEN_TIMEOUT})
   * closes the session.
   */
  bind(channel: DataChannelLike, origin: ChannelOrigin): void {
    this.#channel = channel;
    const inner = new DataChannelTransport(channel, this.#host.channelOptions(origin));
    const clock = this.#host.clock();
    // The framing's deadlines read the connection's clock.
    if (clock !== SYSTEM_CLOCK) useClock(inner, clock);
    useScheduler(inner, this.#host.scheduler);
    inner.onmessage = (message) => this.onmessage?.(message);
    inner.onerror = (error) => this.onerror?.(error);
    inner.onclose = () => void this.close();
    this.#inner = inner;
    let late = false;
    const timer = origin.incoming && channel.readyState === "connecting"
      ? clock.setTimeout(() => {
        late = true;
        void inner.close();
      }, INCOMING_CHANNEL_OPEN_TIMEOUT)
      : undefined;
    this.#ready = inner.start().then(
      () => this.#opened = inner,
      (error) => {
        if (!late) throw error;
        throw new WebRTCTransportError(
          `Cannot start the session as the channel the other peer opened for it did not open within ${INCOMING_CHANNEL_OPEN_TIMEOUT} ms (INCOMING_CHANNEL_OPEN_TIMEOUT): the other peer closed it before it opened, or the connection is overloaded; the other peer may open a new session`,
          { cause: error },
        );
      },
    ).finally(() => timer !== undefined && clock.clearTimeout(timer));
    this.#ready.catch(() => {});
    this.#host.attach(this);
  }

  async start(): Promise<void> {
    if (this.#started) {
      throw new WebRTCTransportError(
        "WebRTC session already started! If using Client or Server class, note that connect() calls start() automatically.",
      );
    }
    this.#started = true;
    if (this.#closed) {
      throw new WebRTCTransportError("Cannot start the session as it is closed: open a new one");
    }
    try {
      if (!this.#inner) {
        if (!this.#open) {
          throw new WebRTCTransportError("Cannot start the session as it has no channel");
        }
        const { channel, origin } = await this.#open();
        this.bind(channel, origin);
      }
      await this.#ready;
    } catch (error) {
      await this.close();
      throw error;
    }
    if (this.#closed) {
      throw new WebRTCTransportError("Cannot start the session as it was closed meanwhile");
    }
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new WebRTCTransportError("Cannot send message as the WebRTC session is closed"),
      );
    }
    if (!this.#ready) {
      return Promise.reject(
        new WebRTCTransportError(
          "Cannot send message as the WebRTC session is not started: call start(), or connect() of a Client or Server",
        ),
      );
    }
    // Handed on in this turn once the channel is open (no await on the way).
    return this.#opened
      ? this.#opened.send(message)
      : this.#ready.then((inner) => inner.send(message));
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= Promise.resolve().then(async () => {
      try {
        await this.#inner?.close();
      } finally {
        this.#host.detach(this);
        this.#ended();
        this.onclose?.();
      }
    });
    return this.#closing;
  }
}
