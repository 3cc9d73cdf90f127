/**
 * The desktop's side (the A2A client): the signalling on the stream of the
 * user's message as a `Signaling`, and the replies it sends the agent.
 *
 * @module
 */

import {
  HTTP_EXTENSION_HEADER,
  type Message,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
} from "@a2a-js/sdk";
import {
  type Client,
  type RequestOptions,
  ServiceParameters,
  withA2AExtensions,
} from "@a2a-js/sdk/client";
import { settle, withResolvers, yieldToEventLoop } from "../_async.ts";
import { A2A_MAX_KEY_ID_LENGTH, BYE_TIMEOUT } from "../constants.ts";
import { AuthenticatedSignaling } from "../signaling/authenticated_signaling.ts";
import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import type { ConnectableServer } from "../webrtc_listener.ts";
import { WebRTCServerTransport } from "../webrtc_server_transport.ts";
import type { WebRTCTransportOptions } from "../webrtc_transport.ts";
import {
  A2A_MAX_PENDING_MESSAGES,
  A2A_MAX_SIGNALING_PARTS,
  A2A_SIGNALING_EXTENSION_URI,
  type A2AMcpOffer,
  checkSignalingKey,
  isRoutedSignaling,
  isSignalingMessage,
  newSignalingSecret,
  readSignalingParts,
  signalingExtensionVersion,
  signalingMessage,
  versionMismatch,
} from "./extension.ts";

/** Options of {@linkcode A2AClientSignaling}. */
export interface A2AClientSignalingOptions {
  /**
   * Options of every reply request: the caller's `serviceParameters` (such as
   * an `Authorization` header), an abort signal. The extension's
   * `A2A-Extensions` header is added.
   *
   * @default {{}}
   */
  requestOptions?: RequestOptions;
}

interface Queued {
  message: SignalingMessage;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The desktop's end of one task's signalling: send the user's message with
 * {@linkcode A2AClientSignaling.offer}'s request, feed it every event of that
 * request's stream ({@linkcode A2AClientSignaling.receive}); it passes the
 * agent's signalling to `onmessage` and sends the replies as `SendMessage`
 * requests that name the task in `referenceTaskIds` (never in `taskId`,
 * which would end the user's stream) and carry this signalling's secret, one
 * request at a time, each carrying every reply queued meanwhile.
 *
 * It refuses, and closes with the reason in {@linkcode A2AClientSignaling.failure},
 * an agent that does not route replies past its executor: signalling without
 * the agent's routing mark, or a reply answered by anything but an
 * acknowledgement.
 *
 * {@linkcode sendMessageOfferingMcp} does all this and serves the MCP server;
 * use this class directly to read the stream yourself.
 *
 * @example Feed a stream's events by hand
 * ```ts
 * import { Role, type SendMessageRequest, type StreamResponse } from "@a2a-js/sdk";
 * import { A2AClientSignaling } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * // An A2A Client from ClientFactory, in real life; this agent only creates the task.
 * const client = {
 *   sendMessage: () => Promise.reject(new Error("not reached")),
 *   async *sendMessageStream(_params: SendMessageRequest): AsyncGenerator<StreamResponse> {
 *     yield { payload: { $case: "task", value: {
 *       id: "task-1", contextId: "context-1", artifacts: [], history: [], metadata: undefined,
 *       status: undefined,
 *     } } };
 *   },
 * };
 * const signaling = new A2AClientSignaling(client);
 * const params = signaling.offer({
 *   tenant: "",
 *   message: {
 *     messageId: crypto.randomUUID(), contextId: "", taskId: "", role: Role.ROLE_USER,
 *     parts: [], metadata: undefined, extensions: [], referenceTaskIds: [],
 *   },
 *   configuration: undefined,
 *   metadata: undefined,
 * }, { version: 2, sealed: false });
 * const yours: StreamResponse[] = [];
 * for await (const event of client.sendMessageStream(params)) {
 *   if (!signaling.receive(event)) yours.push(event); // signalling is consumed
 * }
 * assert.equal(yours.length, 1);
 * assert.equal(signaling.taskId, "task-1");
 * await signaling.close();
 * ```
 */
export class A2AClientSignaling implements Signaling {
  readonly #client: Pick<Client, "sendMessage">;
  readonly #requestOptions: RequestOptions;
  readonly #secret = newSignalingSecret();
  #taskId?: string;
  #contextId?: string;
  #pending: SignalingMessage[] = [];
  #queue: Queued[] = [];
  /** The replies of the request in flight, if one is. */
  #sending?: Queued[];
  #started = false;
  #closed = false;
  #closeFired = false;
  #failure?: Error;

  /** Called for every signalling message from the agent, in order. */
  onmessage?: (message: SignalingMessage) => void;
  /** Called once when the signalling closes. */
  onclose?: () => void;
  /** Called for malformed signalling from the agent (dropped), and for a refused agent. */
  onerror?: (error: Error) => void;

  /**
   * @param client The A2A client that sends the user's message.
   * @param options Options of the reply requests.
   * @throws {TypeError} If `client` has no `sendMessage`.
   */
  constructor(client: Pick<Client, "sendMessage">, options: A2AClientSignalingOptions = {}) {
    if (typeof client?.sendMessage !== "function") {
      throw new TypeError(
        "Cannot create A2A client signalling as 'client' is not an A2A Client: pass the one from ClientFactory",
      );
    }
    this.#client = client;
    this.#requestOptions = withExtension(options.requestOptions);
  }

  /** The task this signalling belongs to, once the stream named it. */
  get taskId(): string | undefined {
    return this.#taskId;
  }

  /**
   * Why this signalling refused the agent and closed, if it did: the agent
   * announces the extension but does not route replies past its executor.
   */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /**
   * The request to send with `client.sendMessageStream()`: `params` with the
   * offer in the message (its `extensions` and `metadata`) and this
   * signalling's secret in the request's `metadata`.
   *
   * @param params The user's request.
   * @param offer What to offer: whether the desktop seals, and with which key.
   * @returns The request that offers the MCP server.
   */
  offer(params: SendMessageRequest, offer: A2AMcpOffer): SendMessageRequest {
    const message = params.message!;
    return {
      ...params,
      message: {
        ...message,
        extensions: [...new Set([...(message.extensions ?? []), A2A_SIGNALING_EXTENSION_URI])],
        metadata: { ...message.metadata, [A2A_SIGNALING_EXTENSION_URI]: offer },
      },
      metadata: { ...params.metadata, [A2A_SIGNALING_EXTENSION_URI]: { secret: this.#secret } },
    };
  }

  /**
   * Takes one event of the stream of the user's message.
   *
   * @param event An event of `client.sendMessageStream()`.
   * @returns `true` if the event carried signalling (consumed here), `false`
   * for any other event, which is the caller's.
   */
  receive(event: StreamResponse): boolean {
    const payload = event?.payload;
    if (payload?.$case === "task") {
      this.#bind(payload.value.id, payload.value.contextId);
      return false;
    }
    if (payload?.$case !== "statusUpdate") return false;
    const update = payload.value;
    const message = update.status?.message;
    if (!isSignalingMessage(message)) return false;
    if (this.#closed) return true;
    if (!isRoutedSignaling(message)) {
      this.#refuse(
        "Cannot connect to the agent over A2A as its signalling does not say that it routes replies: the agent announces the extension but its request handler is not wrapped with A2ASignalingRouter.wrapRequestHandler(), so replies would reach its executor as user messages; none was sent",
      );
      return true;
    }
    if (!this.#bind(update.taskId, update.contextId)) return true;
    let messages: SignalingMessage[];
    try {
      messages = readSignalingParts(message!);
    } catch (error) {
      this.onerror?.(error as Error);
      return true;
    }
    if (this.#started) this.#deliver(messages);
    else if (this.#pending.length + messages.length > A2A_MAX_PENDING_MESSAGES) {
      this.onerror?.(
        new Error(
          `Dropped the agent's signalling as ${this.#pending.length} signalling messages already wait for the desktop's transport to start`,
        ),
      );
    } else this.#pending.push(...messages);
    return true;
  }

  /** Starts delivering the agent's messages, including those received before. */
  start(): Promise<void> {
    if (this.#started) return Promise.resolve();
    this.#started = true;
    const pending = this.#pending;
    this.#pending = [];
    this.#deliver(pending);
    this.#pump();
    return Promise.resolve();
  }

  /**
   * Sends one message to the agent. Resolves once the request that carried
   * it was acknowledged; waits until the stream has named its task.
   *
   * @throws {Error} If the signalling is closed or the agent refused the request.
   */
  send(message: SignalingMessage): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        this.#failure ??
          new Error("Cannot send signalling message as the A2A client signalling is closed"),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ message, resolve, reject });
      // After this turn: what is sent in the same turn (an answer and its
      // candidates) goes in one request.
      if (this.#queue.length === 1) void yieldToEventLoop().then(() => this.#pump());
    });
  }

  /**
   * Closes the signalling; replies not acknowledged yet are rejected. What
   * the agent sent before is still delivered, before `onclose`. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#pending = [];
    const queue = [...(this.#sending ?? []), ...this.#queue];
    this.#queue = [];
    for (const { reject } of queue) {
      reject(
        this.#failure ??
          new Error("Cannot send signalling message as the A2A client signalling is closed"),
      );
    }
    // After the deliveries already queued.
    queueMicrotask(() => {
      if (this.#closeFired) return;
      this.#closeFired = true;
      this.onclose?.();
    });
    return Promise.resolve();
  }

  /** Refuses the agent: records why, reports it and closes. */
  #refuse(reason: string): void {
    if (this.#failure) return;
    this.#failure = new Error(reason);
    this.onerror?.(this.#failure);
    void this.close();
  }

  /** Records the stream's task; `false` if the event is of another task. */
  #bind(taskId: string | undefined, contextId: string | undefined): boolean {
    if (!taskId) return false;
    if (this.#taskId === undefined) {
      this.#taskId = taskId;
      this.#contextId = contextId || undefined;
      this.#pump();
      return true;
    }
    if (this.#taskId === taskId) return true;
    this.onerror?.(
      new Error(
        `Ignored signalling of task ${taskId} as this signalling belongs to task ${this.#taskId}`,
      ),
    );
    return false;
  }

  #deliver(messages: SignalingMessage[]): void {
    for (const message of messages) queueMicrotask(() => this.onmessage?.(message));
  }

  /** Sends the queued replies in one request, if none is in flight. */
  #pump(): void {
    if (this.#sending || this.#closed || !this.#taskId || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, A2A_MAX_SIGNALING_PARTS);
    this.#sending = batch;
    const taskId = this.#taskId;
    const request: SendMessageRequest = {
      tenant: "",
      message: signalingMessage("user", batch.map((queued) => queued.message), {
        contextId: this.#contextId ?? "",
        referenceTaskIds: [taskId],
      }),
      configuration: undefined,
      metadata: { [A2A_SIGNALING_EXTENSION_URI]: { secret: this.#secret } },
    };
    this.#client.sendMessage(request, this.#requestOptions).then(
      (reply) => {
        if (!isAcknowledgement(reply, taskId)) {
          this.#refuse(
            "Cannot send signalling to the agent as it answered a reply with a task or message of its own, not an acknowledgement: its request handler is not wrapped with A2ASignalingRouter.wrapRequestHandler(), so the reply reached its executor",
          );
          for (const { reject } of batch) reject(this.#failure);
          return;
        }
        for (const { resolve } of batch) resolve();
      },
      (cause) => {
        const error = new Error(
          `Cannot send signalling to the agent as it refused the request: ${
            cause instanceof Error ? cause.message : String(cause)
          }`,
          { cause },
        );
        for (const { reject } of batch) reject(error);
      },
    ).finally(() => {
      this.#sending = undefined;
      this.#pump();
    });
  }
}

/** Whether the agent's answer to a reply is the router's acknowledgement. */
function isAcknowledgement(reply: Message | Task | undefined, taskId: string): boolean {
  const message = reply as Message | undefined;
  return typeof message?.messageId === "string" &&
    (message.extensions ?? []).includes(A2A_SIGNALING_EXTENSION_URI) &&
    (message.referenceTaskIds ?? []).includes(taskId);
}

/** What becomes of the MCP channel a message offered: open, or failed and why. */
export type McpChannelStatus =
  | {
    /** The agent's MCP client reached the desktop's server: the data channel is open. */
    readonly state: "open";
    /** The transport serving it, e.g. for `getConnectionPath()` or `close()`. */
    readonly transport: WebRTCServerTransport;
  }
  | {
    /** The channel did not open. */
    readonly state: "failed";
    /** Why: the transport's `ConnectError`, an `AuthenticationError`, or a refused agent. */
    readonly error: Error;
  };

/**
 * An event of {@linkcode sendMessageOfferingMcp}'s stream that no agent sent:
 * what became of the MCP channel. Shaped like the SDK's `StreamResponse`, so
 * a `switch (event.payload?.$case)` covers both.
 */
export interface McpChannelEvent {
  /** The channel's status. */
  readonly payload: { readonly $case: "mcpChannel"; readonly value: McpChannelStatus };
}

/** Options of {@linkcode sendMessageOfferingMcp}. */
export interface SendMessageOfferingMcpOptions {
  /**
   * Makes a fresh MCP server for this message's channel (`McpServer` and
   * `Server` both fit): MCP sessions are stateful, so two messages never
   * share one. Called once, when the agent first signals; the server is
   * closed when its transport closes.
   */
  createServer: () => ConnectableServer | Promise<ConnectableServer>;
  /**
   * The key that seals signalling end to end: the `signalingKey` of
   * `await deriveTicketKeys(ticket)`, the desktop's (host) ticket whose guest
   * ticket the agent holds. The offer then says the desktop seals, and the
   * signalling is an `AuthenticatedSignaling` (role `"host"`). Present but not
   * such a key (undefined, null, a promise) is a `TypeError`: give either
   * `key` or `sealed: false`.
   */
  key?: CryptoKey;
  /**
   * `false` to offer unsealed signalling (the A2A connection is trusted):
   * said, never assumed. Give either this or `key`.
   */
  sealed?: false;
  /**
   * Tells the agent which key to seal with (a ticket's room id, say); not
   * secret.
   *
   * @default {undefined}
   */
  keyId?: string;
  /**
   * Options of the `WebRTCServerTransport` (ICE servers, timeouts).
   *
   * @default {{}}
   */
  transportOptions?: Omit<WebRTCTransportOptions, "signaling">;
  /**
   * Options of the streaming request and of every reply.
   *
   * @default {{}}
   */
  requestOptions?: RequestOptions;
}

/**
 * Sends the user's message as `client.sendMessageStream()` does, offering the
 * agent this desktop's MCP server over WebRTC: yields every event of the
 * stream but the signalling, serves a fresh server from
 * `options.createServer()` when the agent signals, and yields one
 * {@linkcode McpChannelEvent} when that server's channel opened or failed
 * (with the reason). Messages sent at once each get their own channel.
 *
 * The message gets the extension in its `extensions` and the offer
 * ({@linkcode A2AMcpOffer}) in its `metadata`; the request gets a fresh
 * secret in its `metadata` (which replies carry, and no other client knows)
 * and the `A2A-Extensions` header. The signalling closes when the stream
 * ends; a connection already up does not depend on it. The example of
 * `A2ASignalingRouter` is a complete, runnable program with both sides.
 *
 * @param client The A2A client.
 * @param params The request, as for `client.sendMessageStream()`.
 * @param options The server factory, and the sealing key or `sealed: false`.
 * @returns The stream's events without the signalling, and the channel's.
 * @throws {TypeError} At the call: if `params.message` is missing,
 * `options.createServer` is not a function, `key` is given but is not a key,
 * or neither `key` nor `sealed: false` is given.
 *
 * @example Offer the desktop's MCP server with a message
 * ```ts
 * import { Role, type StreamResponse } from "@a2a-js/sdk";
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { sendMessageOfferingMcp } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * // An A2A Client from ClientFactory, in real life; this agent never signals.
 * const client = {
 *   sendMessage: () => Promise.reject(new Error("not reached")),
 *   async *sendMessageStream(): AsyncGenerator<StreamResponse> {},
 * };
 * const params = {
 *   tenant: "",
 *   message: {
 *     messageId: crypto.randomUUID(), contextId: "", taskId: "", role: Role.ROLE_USER,
 *     parts: [{
 *       content: { $case: "text" as const, value: "What does notes.txt say?" },
 *       mediaType: "text/plain", filename: "", metadata: undefined,
 *     }],
 *     metadata: undefined, extensions: [], referenceTaskIds: [],
 *   },
 *   configuration: undefined,
 *   metadata: undefined,
 * };
 * const createServer = () => new McpServer({ name: "desktop", version: "1.0.0" });
 * for await (const event of sendMessageOfferingMcp(client, params, { createServer, sealed: false })) {
 *   if (event.payload?.$case === "mcpChannel") console.log(event.payload.value.state);
 * }
 * // A key that is not one (here: not awaited) fails at the call, never unsealed.
 * const key = undefined as unknown as CryptoKey;
 * assert.throws(() => sendMessageOfferingMcp(client, params, { createServer, key }), TypeError);
 * ```
 */
export function sendMessageOfferingMcp(
  client: Pick<Client, "sendMessage" | "sendMessageStream">,
  params: SendMessageRequest,
  options: SendMessageOfferingMcpOptions,
): AsyncGenerator<StreamResponse | McpChannelEvent, void, undefined> {
  if (!params?.message) {
    throw new TypeError("Cannot send message as 'params.message' is missing");
  }
  if (typeof options?.createServer !== "function") {
    throw new TypeError(
      "Cannot offer the MCP server as 'options.createServer' is not a function: pass () => new McpServer(…), a fresh server for each message",
    );
  }
  let key: CryptoKey | undefined;
  if ("key" in options) {
    if (options.sealed !== undefined) {
      throw new TypeError(
        "Cannot offer the MCP server as both 'key' and 'sealed' are given: give the key to seal, or sealed: false without a key",
      );
    }
    key = checkSignalingKey(options.key, "offer the MCP server");
  } else if (options.sealed !== false) {
    throw new TypeError(
      "Cannot offer the MCP server as neither 'key' nor 'sealed: false' is given: pass { key: (await deriveTicketKeys(ticket)).signalingKey } to seal, or say { sealed: false }",
    );
  }
  if (
    options.keyId !== undefined &&
    (typeof options.keyId !== "string" || options.keyId.length > A2A_MAX_KEY_ID_LENGTH)
  ) {
    throw new TypeError(
      `Cannot offer the MCP server as 'keyId' is not a string of at most A2A_MAX_KEY_ID_LENGTH (${A2A_MAX_KEY_ID_LENGTH}) characters: name the key with a shorter string, e.g. the room id`,
    );
  }
  return offering(client, params, options, key);
}

async function* offering(
  client: Pick<Client, "sendMessage" | "sendMessageStream">,
  params: SendMessageRequest,
  options: SendMessageOfferingMcpOptions,
  key: CryptoKey | undefined,
): AsyncGenerator<StreamResponse | McpChannelEvent, void, undefined> {
  const offer: A2AMcpOffer = options.keyId === undefined
    ? { version: 2, sealed: key !== undefined }
    : { version: 2, sealed: key !== undefined, keyId: options.keyId };
  const requestOptions = withExtension(options.requestOptions);
  const signaling = new A2AClientSignaling(client, { requestOptions });
  const channel = new ChannelWatch();
  // An agent whose card announces only another version of the extension will not take the offer.
  const theirs = await otherVersionOf(client);
  if (theirs !== undefined) {
    channel.fail(new Error(`Cannot offer the MCP server as ${versionMismatch(theirs, "desktop")}`));
  }
  const stream = client.sendMessageStream(signaling.offer(params, offer), requestOptions);
  let serving = theirs !== undefined; // A refused agent is never served.
  try {
    let next = stream.next();
    while (true) {
      const outcome = await Promise.race([next, channel.changed()]);
      yield* channel.take();
      if (outcome === CHANGED) continue;
      if (outcome.done) break;
      next = stream.next();
      const event = outcome.value;
      if (!signaling.receive(event)) {
        yield event;
        continue;
      }
      if (signaling.failure) channel.fail(signaling.failure);
      else if (!serving) {
        serving = true;
        await channel.serve(
          options,
          key ? new AuthenticatedSignaling(signaling, { key, role: "host" }) : signaling,
        );
      }
      yield* channel.take();
    }
  } finally {
    await signaling.close();
    void stream.return?.(undefined);
  }
  // The stream is over: a channel still opening learns why it cannot (the
  // agent's goodbye, or the signalling's end) from its transport.
  if (serving) await channel.settled();
  yield* channel.take();
}

const CHANGED = Symbol("changed");

/** Serves one message's channel, and tells what became of it, once. */
class ChannelWatch {
  #events: McpChannelEvent[] = [];
  #decided = false;
  #wake?: () => void;
  #settled = withResolvers<void>();

  /** Resolves with {@linkcode CHANGED} once an event waits. */
  changed(): Promise<typeof CHANGED> {
    if (this.#events.length > 0) return Promise.resolve(CHANGED);
    return new Promise((resolve) => (this.#wake = () => resolve(CHANGED)));
  }

  /** The events that wait, taken. */
  take(): McpChannelEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }

  /** Resolves once the channel opened or failed. */
  settled(): Promise<void> {
    return this.#settled.promise;
  }

  fail(error: Error): void {
    this.#decide({ state: "failed", error });
  }

  async serve(options: SendMessageOfferingMcpOptions, signaling: Signaling): Promise<void> {
    let server: ConnectableServer;
    try {
      server = await options.createServer();
    } catch (cause) {
      const error = new Error(
        `Cannot serve the agent as createServer() failed: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { cause },
      );
      // The agent learns why at once, not at its connect timeout.
      await signaling.start?.({ initiator: false });
      await settle(signaling.send({ type: "bye", reason: error.message }), BYE_TIMEOUT);
      return this.fail(error);
    }
    const transport = new WebRTCServerTransport({ ...options.transportOptions, signaling });
    let error: Error | undefined;
    transport.onconnectstep = (step) => {
      if (step === "channel") this.#decide({ state: "open", transport });
    };
    // Kept by server.connect(), which chains its own handlers after them.
    transport.onerror = (reported) => {
      error ??= reported;
    };
    transport.onclose = () => {
      this.fail(
        error ??
          new Error("Cannot serve the agent as the MCP channel closed before it opened"),
      );
      void server.close();
    };
    try {
      await server.connect(transport);
    } catch (cause) {
      this.fail(cause as Error);
      await transport.close();
    }
  }

  #decide(status: McpChannelStatus): void {
    if (this.#decided) return;
    this.#decided = true;
    this.#events.push({ payload: { $case: "mcpChannel", value: status } });
    this.#settled.resolve();
    this.#wake?.();
    this.#wake = undefined;
  }
}

/**
 * The version of the extension the agent's card announces, if the client can
 * read the card and it announces only another version than this one.
 */
async function otherVersionOf(client: object): Promise<number | undefined> {
  const read = (client as Partial<Pick<Client, "getAgentCard">>).getAgentCard;
  if (typeof read !== "function") return undefined;
  const card = await read.call(client).catch(() => undefined);
  const versions = (card?.capabilities?.extensions ?? [])
    .map((extension) => signalingExtensionVersion(extension?.uri))
    .filter((version) => version !== undefined);
  return versions.length > 0 && !versions.includes(2) ? versions[0] : undefined;
}

/** The request options with the extension added to the `A2A-Extensions` header. */
function withExtension(options: RequestOptions = {}): RequestOptions {
  const parameters = { ...options.serviceParameters };
  const named = Object.keys(parameters).filter((name) =>
    name.toLowerCase() === HTTP_EXTENSION_HEADER.toLowerCase()
  );
  const extensions = named.flatMap((name) => parameters[name]!.split(","))
    .map((uri) => uri.trim()).filter((uri) => uri !== "");
  for (const name of named) delete parameters[name];
  return {
    ...options,
    serviceParameters: ServiceParameters.createFrom(
      parameters,
      withA2AExtensions(...new Set([...extensions, A2A_SIGNALING_EXTENSION_URI])),
    ),
  };
}
