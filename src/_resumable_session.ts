/**
 * An MCP session that continues on a new channel after its channel was lost:
 * {@linkcode ResumableSession}, a `Transport` over whichever channel transport
 * it is bound to now, with a {@linkcode ResumeLog} that numbers, keeps and
 * sends again its messages.
 *
 * ## Protocol
 *
 * Control messages are JSON-RPC notifications whose method starts with
 * `mcp-webrtc/`; they are never numbered and never reach MCP.
 *
 * - The opening side's first message on each channel is
 *   `mcp-webrtc/resume` `{ session, received, resume }`: the session's id
 *   (128 random bits, base64url; sent only inside the channel), how many
 *   messages it received, and whether it resumes a session (`true`) or starts
 *   one.
 * - The accepting side answers `mcp-webrtc/resumed` `{ received }` before
 *   anything else, or `mcp-webrtc/refused` `{ reason }` and closes the
 *   channel (a session it does not hold: it restarted, or the grace period
 *   passed). Each side then sends again what the other's count says it lacks,
 *   then what is new.
 * - `mcp-webrtc/ack` `{ received }` acknowledges (see `ResumeLog`).
 * - `mcp-webrtc/end` `{}` ends the session; the other side answers with its
 *   own, and the side that sent it first closes the channel only then (or
 *   after `SESSION_END_TIMEOUT`): a channel's close and its last messages
 *   reach the other peer's code apart, so a close sent at once could overtake
 *   the end. A channel that closes without it suspends the session: its owner
 *   binds it to a new channel, or closes it.
 *
 * A peer that does not speak it answers the opening side's first message
 * with MCP (it ignores an unknown notification): the session then runs as a
 * plain one, keeps nothing and cannot resume. An opening side that does not
 * speak it sends MCP first, and the accepting side runs the session plain.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { encodeBase64Url } from "./_base64url.ts";
import { ResumeLog, type ResumeLogOptions } from "./_resume_log.ts";
import { settle } from "./_async.ts";
import { MAX_EARLY_BYTES, MAX_EARLY_MESSAGES, SESSION_END_TIMEOUT } from "./constants.ts";
import { WebRTCTransportError } from "./errors.ts";
import { isQueueRefusal } from "./data_channel_transport.ts";

const RESUME = "mcp-webrtc/resume";
const RESUMED = "mcp-webrtc/resumed";
const REFUSED = "mcp-webrtc/refused";
const ACK = "mcp-webrtc/ack";
const END = "mcp-webrtc/end";
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

/** A control message's parameters, if `message` is a control message. */
function control(
  message: JSONRPCMessage,
): { method: string; params: Record<string, unknown> } | undefined {
  const { method, params } = message as { method?: unknown; params?: unknown };
  if (typeof method !== "string" || !method.startsWith("mcp-webrtc/") || "id" in message) {
    return undefined;
  }
  return { method, params: (params ?? {}) as Record<string, unknown> };
}

/** Resolves when `inner` brings the other side's `mcp-webrtc/end`, or closes. */
function endAnswer(inner: Transport): Promise<void> {
  return new Promise<void>((resolve) => {
    inner.onmessage = (message) => {
      if (control(message)?.method === END) resolve();
    };
    inner.onclose = () => resolve();
  });
}

function notice(method: string, params: Record<string, unknown>): JSONRPCMessage {
  return { jsonrpc: "2.0", method, params } as JSONRPCMessage;
}

function count(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? value as number : undefined;
}

/** One MCP session that a channel's loss suspends instead of ending. */
export class ResumableSession implements Transport {
  /** The session's id: 128 random bits, base64url. */
  readonly id: string;
  readonly #log: ResumeLog<JSONRPCMessage>;
  /** The channel transport messages go to now, once its handshake is done. */
  #inner?: Transport;
  /** Runs as a plain session: the other peer does not speak the protocol. */
  #plain = false;
  #bindings = 0;
  /** Whether the other side's first message on a new session's channel came. */
  #answered = true;
  #started = false;
  /** The other side's messages before this side started (at most `MAX_EARLY_MESSAGES`, `MAX_EARLY_BYTES`). */
  #early: JSONRPCMessage[] = [];
  #earlyBytes = 0;
  #closed = false;
  #closing?: Promise<void>;
  /** Whether the other side ended the session (its `mcp-webrtc/end` came). */
  #endReceived = false;

  onmessage?: (message: JSONRPCMessage) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  /** The channel closed without the session's end: bind the session to a new one, or close it. */
  onsuspend?: () => void;

  /** Resolves once the session has closed, however it ended. */
  readonly closed: Promise<void>;
  #ended!: () => void;
  readonly #open?: () => Promise<Transport>;

  /**
   * @param id The session's id (the accepting side takes the opening side's); a new random one if omitted.
   * @param options The log's budget, acknowledgement timing and clock; `open`, for the
   * opening side, gets the first channel transport (started) when the session starts.
   */
  constructor(
    id?: string,
    options: Omit<ResumeLogOptions, "acknowledge"> & { open?: () => Promise<Transport> } = {},
  ) {
    this.closed = new Promise((resolve) => (this.#ended = resolve));
    this.#open = options.open;
    this.id = id ?? encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    this.#log = new ResumeLog({
      ...options,
      acknowledge: (received) => this.#control(ACK, { received }),
    });
  }

  /** Whether the session has a channel now. */
  get bound(): boolean {
    return this.#inner !== undefined;
  }

  /** How many channels the session has been bound to. */
  get bindings(): number {
    return this.#bindings;
  }

  /**
   * The opening side: binds the session to a started channel transport,
   * saying whether it starts or resumes, and resolves once the other side
   * answered and what it lacked was sent again.
   *
   * @throws {WebRTCTransportError} If the other side refused it (the session then closes).
   */
  bind(inner: Transport): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new WebRTCTransportError("Cannot bind the session as it is closed"));
    }
    const hello = notice(RESUME, {
      session: this.id,
      received: this.#log.received,
      resume: this.#bindings > 0,
    });
    if (this.#bindings === 0) {
      // A new session: the other side received nothing, so what was kept goes
      // at once, and its first message says whether it speaks the protocol.
      inner.send(hello).catch(() => {});
      this.#answered = false;
      this.#attach(inner, 0);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      inner.onmessage = (message) => {
        const first = control(message);
        const received = count(first?.params.received);
        if (first?.method === RESUMED && received !== undefined) {
          try {
            this.#attach(inner, received);
            resolve();
          } catch (error) {
            void inner.close();
            reject(this.#fail(error as Error));
          }
          return;
        }
        void inner.close();
        reject(this.#fail(
          first?.method === REFUSED
            ? new WebRTCTransportError(
              `Cannot resume the session as the other peer refused it (${
                JSON.stringify(String(first.params.reason ?? "no reason given").slice(0, 200))
              }): open a new session`,
            )
            : new WebRTCTransportError(
              "Cannot resume the session as the other peer did not answer the claim: it does not speak this protocol",
            ),
        ));
      };
      inner.onclose = () =>
        reject(
          new WebRTCTransportError(
            "Cannot resume the session as its new channel closed before the other peer answered: bind it to another",
          ),
        );
      inner.send(hello).catch(() => {});
    });
  }

  /**
   * The accepting side: reads a channel's first message and binds the session
   * it names, a held one (`find`) or a new one.
   *
   * @param inner A started channel transport, before any message arrived.
   * @param find The held session with this id, if any, or why a resume is refused on this channel.
   * @returns The session, and whether it is new; a new session is plain when
   * the other peer spoke MCP first. `undefined` if the claim was refused (the
   * channel is closed).
   */
  static accept(
    inner: Transport,
    find: (id: string) => ResumableSession | string | undefined,
    options: Omit<ResumeLogOptions, "acknowledge"> = {},
  ): Promise<{ session: ResumableSession; created: boolean } | undefined> {
    return new Promise((resolve) => {
      inner.onclose = () => resolve(undefined);
      inner.onmessage = (message) => {
        const first = control(message);
        const refuse = (reason: string) => {
          inner.send(notice(REFUSED, { reason })).catch(() => {}).finally(() => inner.close());
          resolve(undefined);
        };
        if (first?.method !== RESUME) {
          const session = new ResumableSession(undefined, options);
          session.#plain = true;
          session.#log.close();
          session.#attach(inner, 0);
          session.#deliver(message);
          resolve({ session, created: true });
          return;
        }
        const { session: id, received, resume } = first.params;
        const got = count(received);
        if (typeof id !== "string" || !SESSION_ID.test(id) || got === undefined) {
          refuse("malformed claim");
          return;
        }
        const found = find(id);
        const held = typeof found === "string" ? undefined : found;
        if (resume !== true) {
          if (held || got !== 0) {
            refuse("a new session cannot name a session in use or messages received");
            return;
          }
          const session = new ResumableSession(id, options);
          session.#answer(inner, 0);
          resolve({ session, created: true });
          return;
        }
        if (typeof found === "string") {
          refuse(found);
          return;
        }
        if (!held || held.#closed) {
          refuse("unknown session: the serving side restarted, or the grace period passed");
          return;
        }
        try {
          held.#answer(inner, got);
          resolve({ session: held, created: false });
        } catch (error) {
          refuse("the claim's count does not match what was sent");
          void held.#fail(error as Error);
        }
      };
    });
  }

  start(): Promise<void> {
    if (this.#started) {
      throw new Error(
        "WebRTC session already started! If using Client or Server class, note that connect() calls start() automatically.",
      );
    }
    this.#started = true;
    this.#earlyBytes = 0;
    for (const message of this.#early.splice(0)) this.onmessage?.(message);
    if (!this.#open || this.#bindings > 0) return Promise.resolve();
    return this.#open().then((inner) => this.bind(inner)).catch(async (error) => {
      await this.close();
      throw error;
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new WebRTCTransportError("Cannot send message as the WebRTC session is closed"),
      );
    }
    if (this.#plain) return this.#inner!.send(message);
    try {
      this.#log.keep(message, JSON.stringify(message).length);
    } catch (error) {
      void this.#fail(error as Error);
      return Promise.reject(error);
    }
    // Kept: a send that fails with its channel is sent again on the next one.
    // Waiting for the channel's send keeps its backpressure. One refused as
    // the other peer stopped reading ends the session: the peer may never
    // come back to take it.
    return this.#inner
      ? this.#inner.send(message).catch((error) => {
        if (isQueueRefusal(error)) void this.#fail(error);
      })
      : Promise.resolve();
  }

  /** Ends the session, telling the other side so that it does not hold it. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= Promise.resolve().then(async () => {
      const inner = this.#inner;
      this.#inner = undefined;
      try {
        if (inner && !this.#plain) {
          // Ending first, wait for the other side's answer: then it has read the end.
          const answered = this.#endReceived ? undefined : endAnswer(inner);
          await inner.send(notice(END, {})).catch(() => {});
          if (answered) await settle(answered, SESSION_END_TIMEOUT);
        }
        await inner?.close();
      } finally {
        this.#log.close();
        this.#ended();
        this.onclose?.();
      }
    });
    return this.#closing;
  }

  /** The accepting side's answer on a new channel, then what the other side lacks. */
  #answer(inner: Transport, received: number): void {
    const mine = this.#log.received;
    this.#attach(
      inner,
      received,
      () => inner.send(notice(RESUMED, { received: mine })).catch(() => {}),
    );
  }

  /** Makes `inner` the session's channel, sending again what the other side lacks first. */
  #attach(inner: Transport, received: number, before?: () => void): void {
    const { resend } = this.#plain ? { resend: [] } : this.#log.rebind(received);
    inner.onmessage = (message) => {
      if (this.#inner === inner) this.#receive(message);
    };
    inner.onerror = (error) => this.onerror?.(error);
    inner.onclose = () => {
      if (this.#inner !== inner) return;
      this.#inner = undefined;
      if (this.#plain) void this.close();
      else if (!this.#closed) this.onsuspend?.();
    };
    before?.();
    for (const kept of resend) inner.send(kept.message).catch(() => {});
    this.#inner = inner;
    this.#bindings++;
  }

  #receive(message: JSONRPCMessage): void {
    if (this.#plain) return this.#deliver(message);
    const signal = control(message);
    if (!this.#answered) {
      this.#answered = true;
      if (signal?.method === RESUMED && signal.params.received === 0) return;
      if (signal) {
        void this.#fail(
          new WebRTCTransportError(
            `Cannot start the session as the other peer answered its claim with ${signal.method}: it refused it`,
          ),
        );
        return;
      }
      // The other side answered with MCP: it does not speak the protocol.
      this.#plain = true;
      this.#log.close();
      return this.#deliver(message);
    }
    if (signal) {
      if (signal.method === ACK) {
        try {
          this.#log.release(count(signal.params.received) ?? -1);
        } catch (error) {
          void this.#fail(error as Error);
        }
      } else if (signal.method === END) {
        this.#endReceived = true;
        void this.close();
      }
      return;
    }
    try {
      if (this.#log.accept(this.#log.received + 1)) this.#deliver(message);
    } catch (error) {
      void this.#fail(error as Error);
    }
  }

  #deliver(message: JSONRPCMessage): void {
    if (this.#started) return void this.onmessage?.(message);
    if (this.#closed) return;
    this.#earlyBytes += JSON.stringify(message).length;
    if (this.#early.length >= MAX_EARLY_MESSAGES || this.#earlyBytes > MAX_EARLY_BYTES) {
      this.#early = [];
      void this.#fail(
        new WebRTCTransportError(
          `Ended the session as the other peer sent more than ${MAX_EARLY_MESSAGES} messages or ${MAX_EARLY_BYTES} bytes before its server started (MAX_EARLY_MESSAGES, MAX_EARLY_BYTES): an MCP client waits for initialize's result before it sends more`,
        ),
      );
      return;
    }
    this.#early.push(message);
  }

  #control(method: string, params: Record<string, unknown>): void {
    this.#inner?.send(notice(method, params)).catch(() => {});
  }

  #fail(error: Error): Error {
    this.onerror?.(error);
    void this.close();
    return error;
  }
}
