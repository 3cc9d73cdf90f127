/**
 * The lifecycle every {@linkcode Signaling} of this module shares, in one
 * place (the shape of the MCP SDK's `InMemoryTransport`):
 *
 * - messages from the other peer that arrive before `start()` wait, in a
 *   bounded buffer, and are delivered once it resolved, in order;
 * - delivery is asynchronous (a microtask), never inside the call that
 *   brought the message in;
 * - `close()` is idempotent: the first call closes the carrier and then, in
 *   a `finally`, calls `onclose` once; later calls return the same promise.
 *   What was delivered before `close()` reaches `onmessage` before `onclose`,
 *   nothing after it.
 *
 * An implementation says how it opens (`open`), sends (`send`) and closes
 * its carrier (`closeCarrier`); it hands each message from the other peer to
 * `accept`, and ends itself with `close()` when its carrier went away.
 * Wrappers whose inner signalling already buffers (sealed signalling, a room
 * view behind a guest's connection) may pass messages to `onmessage` directly.
 *
 * @module
 */
import type { Signaling, SignalingMessage, SignalingStartOptions } from "./signaling.ts";

/** The base of every `Signaling` of this module: see the module doc. */
export abstract class SignalingBase implements Signaling {
  /** Called for every message from the other peer, in order. */
  onmessage?: (message: SignalingMessage) => void;
  /** Called once, when the channel can carry no more messages. */
  onclose?: () => void;
  /** Called for a problem that does not close the channel. */
  onerror?: (error: Error) => void;

  readonly #maxWaiting: number;
  #waiting: SignalingMessage[] = [];
  #starting?: Promise<void>;
  #started = false;
  #closing?: Promise<void>;
  #closed = false;
  #closeCalled = false;

  /**
   * @param maxWaiting The most messages kept until `start()`; beyond it
   *   `accept` refuses them (the implementation says so to `onerror`).
   */
  constructor(maxWaiting = Infinity) {
    this.#maxWaiting = maxWaiting;
  }

  /** Whether `close()` was called, or the carrier went away. */
  protected get closing(): boolean {
    return this.#closeCalled;
  }

  /** Whether `start()` was called. */
  protected get startCalled(): boolean {
    return this.#starting !== undefined;
  }

  /** How many messages wait for `start()`. */
  protected get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Opens the carrier, then delivers the messages that waited. Idempotent:
   * a second call returns the first one's promise.
   */
  start(options?: SignalingStartOptions): Promise<void> {
    this.#starting ??= this.#start(options);
    return this.#starting;
  }

  async #start(options?: SignalingStartOptions): Promise<void> {
    await this.open(options);
    if (this.#closeCalled) return;
    this.#started = true;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const message of waiting) this.#deliver(message);
  }

  /** Sends one message to the other peer. */
  abstract send(message: SignalingMessage): Promise<void>;

  /**
   * Closes the channel: the carrier first, then `onclose`, once, in a
   * `finally`. Idempotent; later calls return the first one's promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closeCalled = true;
    this.#waiting = [];
    try {
      await this.closeCarrier();
    } finally {
      this.#closed = true;
      this.onclose?.();
    }
  }

  /** What `start()` does before delivering: connect, join, say hello. */
  protected open(_options?: SignalingStartOptions): Promise<void> | void {}

  /** What `close()` does before `onclose`: release the carrier. Must not await `close()`. */
  protected closeCarrier(): Promise<void> | void {}

  /**
   * Takes one message from the other peer: delivered if started, else kept
   * until `start()`.
   *
   * @returns `false` if it was dropped: closed, or `maxWaiting` already wait.
   */
  protected accept(message: SignalingMessage): boolean {
    if (this.#closeCalled) return false;
    if (this.#started) {
      this.#deliver(message);
      return true;
    }
    if (this.#waiting.length >= this.#maxWaiting) return false;
    this.#waiting.push(message);
    return true;
  }

  #deliver(message: SignalingMessage): void {
    queueMicrotask(() => {
      if (!this.#closed) this.onmessage?.(message);
    });
  }
}
