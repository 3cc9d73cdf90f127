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
import { yieldToEventLoop } from "../_async.ts";
import { WebRTCTransportError } from "../errors.ts";
import { SignalingBase } from "../signaling/_signaling_base.ts";
import type { SignalingMessage } from "../signaling/signaling.ts";
import {
  A2A_MAX_PENDING_MESSAGES,
  A2A_MAX_SIGNALING_PARTS,
  A2A_SIGNALING_EXTENSION_URI,
  type A2AMcpOffer,
  isRoutedSignaling,
  isSignalingMessage,
  newSignalingSecret,
  readSignalingParts,
  signalingMessage,
} from "./extension.ts";

let forDial: (of: A2AClientSignaling, dial: number) => A2AClientSignaling;
let isClosing: (signaling: A2AClientSignaling) => boolean;

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
export class A2AClientSignaling extends SignalingBase {
  readonly #client: Pick<Client, "sendMessage">;
  readonly #requestOptions: RequestOptions;
  #secret = newSignalingSecret();
  /** Which of the agent's dials this signalling answers: the first, or the one it was made for. */
  #dial = 1;
  #taskId?: string;
  #contextId?: string;
  #queue: Queued[] = [];
  /** The replies of the request in flight, if one is. */
  #sending?: Queued[];
  #failure?: Error;

  /** Called for every signalling message from the agent, in order. */
  declare onmessage?: (message: SignalingMessage) => void;
  /** Called once when the signalling closes. */
  declare onclose?: () => void;
  /** Called for malformed signalling from the agent (dropped), and for a refused agent. */
  declare onerror?: (error: Error) => void;

  /**
   * @param client The A2A client that sends the user's message.
   * @param options Options of the reply requests.
   * @throws {TypeError} If `client` has no `sendMessage`.
   */
  constructor(client: Pick<Client, "sendMessage">, options: A2AClientSignalingOptions = {}) {
    super(A2A_MAX_PENDING_MESSAGES);
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
    if (this.closing) return true;
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
    if (this.waiting + messages.length > A2A_MAX_PENDING_MESSAGES) {
      this.onerror?.(
        new WebRTCTransportError(
          `Dropped the agent's signalling as ${this.waiting} signalling messages already wait for the desktop's transport to start`,
        ),
      );
    } else for (const message of messages) this.accept(message);
    return true;
  }

  /** Starts delivering the agent's messages, including those received before. */
  override start(): Promise<void> {
    return super.start();
  }

  /** Sends the replies queued before the start. */
  protected override open(): void {
    this.#pump();
  }

  /**
   * Sends one message to the agent. Resolves once the request that carried
   * it was acknowledged; waits until the stream has named its task.
   *
   * @throws {Error} If the signalling is closed or the agent refused the request.
   */
  send(message: SignalingMessage): Promise<void> {
    if (this.closing) return Promise.reject(this.#failure ?? closedError());
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
  override close(): Promise<void> {
    return super.close();
  }

  protected override closeCarrier(): void {
    const queue = [...(this.#sending ?? []), ...this.#queue];
    this.#queue = [];
    for (const { reject } of queue) reject(this.#failure ?? closedError());
  }

  /** Refuses the agent: records why, reports it and closes. */
  #refuse(reason: string): void {
    if (this.#failure) return;
    this.#failure = new WebRTCTransportError(reason);
    this.onerror?.(this.#failure);
    void this.close();
  }

  static {
    forDial = (of, dial) => {
      const next = new A2AClientSignaling(of.#client, { requestOptions: of.#requestOptions });
      next.#secret = of.#secret;
      next.#dial = dial;
      if (of.#taskId !== undefined) next.#bind(of.#taskId, of.#contextId);
      return next;
    };
    isClosing = (signaling) => signaling.closing;
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
      new WebRTCTransportError(
        `Ignored signalling of task ${taskId} as this signalling belongs to task ${this.#taskId}`,
      ),
    );
    return false;
  }

  /** Sends the queued replies in one request, if none is in flight. */
  #pump(): void {
    if (this.#sending || this.closing || !this.#taskId || this.#queue.length === 0) return;
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
      metadata: { [A2A_SIGNALING_EXTENSION_URI]: { secret: this.#secret, dial: this.#dial } },
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
        const error = new WebRTCTransportError(
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

/**
 * The signalling of another dial of the agent on the same stream: the same
 * client, secret and task as `of`, its replies saying `dial`.
 */
export function signalingForDial(of: A2AClientSignaling, dial: number): A2AClientSignaling {
  return forDial(of, dial);
}

/** Whether `signaling` is closed or closing. */
export function signalingClosing(signaling: A2AClientSignaling): boolean {
  return isClosing(signaling);
}

/** Whether the agent's answer to a reply is the router's acknowledgement. */
function isAcknowledgement(reply: Message | Task | undefined, taskId: string): boolean {
  const message = reply as Message | undefined;
  return typeof message?.messageId === "string" &&
    (message.extensions ?? []).includes(A2A_SIGNALING_EXTENSION_URI) &&
    (message.referenceTaskIds ?? []).includes(taskId);
}

/** The request options with the extension added to the `A2A-Extensions` header. */
export function withExtension(options: RequestOptions = {}): RequestOptions {
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

function closedError(): Error {
  return new WebRTCTransportError(
    "Cannot send signalling message as the A2A client signalling is closed",
  );
}
