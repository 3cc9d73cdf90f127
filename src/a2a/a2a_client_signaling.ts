/**
 * The desktop's side (the A2A client): the signalling on the stream of the
 * user's message as a `Signaling`, and the replies it sends the agent.
 *
 * @module
 */

import { HTTP_EXTENSION_HEADER, type SendMessageRequest, type StreamResponse } from "@a2a-js/sdk";
import {
  type Client,
  type RequestOptions,
  ServiceParameters,
  withA2AExtensions,
} from "@a2a-js/sdk/client";
import { yieldToEventLoop } from "../_async.ts";
import { AuthenticatedSignaling } from "../signaling/authenticated_signaling.ts";
import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import {
  A2A_MAX_PENDING_MESSAGES,
  A2A_MAX_SIGNALING_PARTS,
  A2A_SIGNALING_EXTENSION_URI,
  type A2AMcpOffer,
  isSignalingMessage,
  readSignalingParts,
  signalingMessage,
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
 * The desktop's end of one task's signalling: feed it every event of the
 * stream of the user's message ({@linkcode A2AClientSignaling.receive}); it
 * passes the agent's signalling to `onmessage` and sends the replies as
 * `SendMessage` requests that name the task in `referenceTaskIds` (never in
 * `taskId`, which would end the user's stream), one request at a time, each
 * carrying every reply queued meanwhile.
 *
 * {@linkcode sendMessageOfferingMcp} does the feeding and makes one lazily,
 * when the agent first signals; use this class directly to read the stream
 * yourself. The example of `A2ASignalingRouter` is a complete, runnable
 * program with both sides.
 *
 * @example Feed a stream's events by hand
 * ```ts ignore
 * const signaling = new A2AClientSignaling(client);
 * await server.connect(new WebRTCServerTransport({ signaling }));
 * for await (const event of client.sendMessageStream(params, options)) {
 *   if (signaling.receive(event)) continue; // signalling, consumed
 *   show(event);
 * }
 * await signaling.close();
 * ```
 */
export class A2AClientSignaling implements Signaling {
  readonly #client: Pick<Client, "sendMessage">;
  readonly #requestOptions: RequestOptions;
  #taskId?: string;
  #contextId?: string;
  #pending: SignalingMessage[] = [];
  #queue: Queued[] = [];
  /** The replies of the request in flight, if one is. */
  #sending?: Queued[];
  #started = false;
  #closed = false;
  #closeFired = false;

  /** Called for every signalling message from the agent, in order. */
  onmessage?: (message: SignalingMessage) => void;
  /** Called once when the signalling closes. */
  onclose?: () => void;
  /** Called for malformed signalling from the agent (dropped). */
  onerror?: (error: Error) => void;

  /**
   * @param client The A2A client that sent the user's message.
   * @param options Options of the reply requests.
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
    if (!this.#bind(update.taskId, update.contextId)) return true;
    let messages: SignalingMessage[];
    try {
      messages = readSignalingParts(message!);
    } catch (error) {
      this.onerror?.(error as Error);
      return true;
    }
    if (this.#closed) return true;
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
   * Closes the signalling; replies not acknowledged yet are rejected.
   * Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#pending = [];
    const queue = [...(this.#sending ?? []), ...this.#queue];
    this.#queue = [];
    for (const { reject } of queue) {
      reject(new Error("Cannot send signalling message as the A2A client signalling is closed"));
    }
    queueMicrotask(() => {
      if (this.#closeFired) return;
      this.#closeFired = true;
      this.onclose?.();
    });
    return Promise.resolve();
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
    for (const message of messages) {
      queueMicrotask(() => {
        if (!this.#closed) this.onmessage?.(message);
      });
    }
  }

  /** Sends the queued replies in one request, if none is in flight. */
  #pump(): void {
    if (this.#sending || this.#closed || !this.#taskId || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, A2A_MAX_SIGNALING_PARTS);
    this.#sending = batch;
    const request: SendMessageRequest = {
      tenant: "",
      message: signalingMessage("user", batch.map((queued) => queued.message), {
        contextId: this.#contextId ?? "",
        referenceTaskIds: [this.#taskId],
      }),
      configuration: undefined,
      metadata: undefined,
    };
    this.#client.sendMessage(request, this.#requestOptions).then(
      () => {
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

/** Options of {@linkcode sendMessageOfferingMcp}. */
export interface SendMessageOfferingMcpOptions {
  /**
   * Called once, when the agent first signals: connect a
   * `WebRTCServerTransport` over the given signalling to the MCP server (for
   * example `server.connect(new WebRTCServerTransport({ signaling }))`).
   */
  serve: (signaling: Signaling) => void | Promise<void>;
  /**
   * The key that seals signalling end to end: the `signalingKey` of
   * `deriveTicketKeys()` of the desktop's (host) ticket whose guest ticket the
   * agent holds. With it, `serve` gets an `AuthenticatedSignaling` (role
   * `"host"`) and the offer says the desktop seals.
   *
   * @default {undefined} unsealed: the A2A connection is trusted
   */
  key?: CryptoKey;
  /**
   * Tells the agent which key to seal with (a ticket's room id, say); not
   * secret.
   *
   * @default {undefined}
   */
  keyId?: string;
  /**
   * Options of the streaming request and of every reply.
   *
   * @default {{}}
   */
  requestOptions?: RequestOptions;
}

/**
 * Sends the user's message as `client.sendMessageStream()` does, offering the
 * agent this desktop's MCP server over WebRTC, and yields every event of the
 * stream but the signalling, which goes to the `Signaling` given to
 * `options.serve`.
 *
 * The message gets the extension in its `extensions`, the offer
 * ({@linkcode A2AMcpOffer}) in its `metadata`, and the request the
 * `A2A-Extensions` header. The signalling closes when the stream ends; a
 * connection already up does not depend on it. The example of
 * `A2ASignalingRouter` is a complete, runnable program with both sides.
 *
 * @param client The A2A client.
 * @param params The request, as for `client.sendMessageStream()`.
 * @param options What serves the MCP connection, and the sealing key.
 * @returns The stream's events, without the signalling.
 * @throws {TypeError} If `params.message` is missing or `options.serve` is not a function.
 *
 * @example Offer the desktop's MCP server with a message
 * ```ts ignore
 * for await (
 *   const event of sendMessageOfferingMcp(client, { message }, {
 *     serve: (signaling) => server.connect(new WebRTCServerTransport({ signaling })),
 *   })
 * ) {
 *   show(event);
 * }
 * ```
 */
export async function* sendMessageOfferingMcp(
  client: Pick<Client, "sendMessage" | "sendMessageStream">,
  params: SendMessageRequest,
  options: SendMessageOfferingMcpOptions,
): AsyncGenerator<StreamResponse, void, undefined> {
  if (!params?.message) {
    throw new TypeError("Cannot send message as 'params.message' is missing");
  }
  if (typeof options?.serve !== "function") {
    throw new TypeError(
      "Cannot offer the MCP server as 'options.serve' is not a function: pass (signaling) => server.connect(new WebRTCServerTransport({ signaling }))",
    );
  }
  const offer: A2AMcpOffer = options.keyId === undefined
    ? { version: 1, sealed: options.key !== undefined }
    : { version: 1, sealed: options.key !== undefined, keyId: options.keyId };
  const message = {
    ...params.message,
    extensions: [...new Set([...(params.message.extensions ?? []), A2A_SIGNALING_EXTENSION_URI])],
    metadata: { ...params.message.metadata, [A2A_SIGNALING_EXTENSION_URI]: offer },
  };
  const requestOptions = withExtension(options.requestOptions);
  const signaling = new A2AClientSignaling(client, { requestOptions });
  let served = false;
  try {
    for await (const event of client.sendMessageStream({ ...params, message }, requestOptions)) {
      if (!signaling.receive(event)) {
        yield event;
        continue;
      }
      if (served) continue;
      served = true;
      await options.serve(
        options.key
          ? new AuthenticatedSignaling(signaling, { key: options.key, role: "host" })
          : signaling,
      );
    }
  } finally {
    await signaling.close();
  }
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
