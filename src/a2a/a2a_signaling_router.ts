/**
 * The agent's side (the A2A server): a task's signalling as a `Signaling`,
 * and the routing of the desktop's replies to it.
 *
 * @module
 */

import type { Message, SendMessageRequest } from "@a2a-js/sdk";
import { Role } from "@a2a-js/sdk";
import { RequestMalformedError, TaskNotFoundError } from "@a2a-js/sdk/errors";
import type {
  A2ARequestHandler,
  AgentExecutionEvent,
  ExecutionEventBus,
  RequestContext,
  ServerCallContext,
  TaskStore,
} from "@a2a-js/sdk/server";
import { AuthenticatedSignaling } from "../signaling/authenticated_signaling.ts";
import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import { WebRTCConnection, type WebRTCConnectionOptions } from "../webrtc_connection.ts";
import {
  A2A_SIGNALING_EXTENSION_URI,
  a2aMcpOffer,
  checkSignalingKey,
  isSignalingPart,
  readSignalingParts,
  sameSecret,
  signalingDialOf,
  signalingSecretOf,
} from "./extension.ts";
import { A2A_MAX_OPEN_SIGNALING } from "../constants.ts";
import { WebRTCTransportError } from "../errors.ts";
import { A2ATaskSignaling, CALL_STATE_KEY, type CallState, endsStream } from "./_task_signaling.ts";
import { SignalingRequestHandler, withoutSignaling } from "./_request_handler.ts";

/**
 * Looks up the key of a desktop by the `keyId` of its offer: the
 * `signalingKey` of the agent's (guest) ticket paired with that desktop, or
 * `undefined` for a desktop this agent was not paired with (refused).
 */
export type A2ASignalingKeyLookup = (keyId: string | undefined) => CryptoKey | undefined;

/**
 * Options of {@linkcode A2ASignalingRouter.openSignaling}: either a key (or a
 * lookup of one), or `sealed: false`. Unsealed is said, never assumed.
 */
export type OpenA2ASignalingOptions =
  | {
    /**
     * The key that seals signalling end to end: the `signalingKey` of
     * `await deriveTicketKeys(ticket)`, the agent's (guest) ticket for this
     * desktop, or a function that looks it up by the offer's `keyId`. The
     * returned signalling is then an `AuthenticatedSignaling` (role
     * `"guest"`), and a desktop that does not seal is refused. Present but
     * not a key (undefined, null, a promise) is a `TypeError`.
     */
    key: CryptoKey | A2ASignalingKeyLookup;
    sealed?: undefined;
  }
  | {
    /** `false`: unsealed signalling, the A2A connection is trusted; a sealed offer is refused. */
    sealed: false;
    key?: undefined;
  };
/**
 * The agent's side of the extension, one per A2A server: it opens a task's
 * signalling (a {@linkcode Signaling} for `WebRTCClientTransport`), and
 * routes the desktop's replies to it.
 *
 * Signalling to the desktop travels as `TaskStatusUpdateEvent`s (state
 * `WORKING`) on the stream of the user's own `SendStreamingMessage`, each
 * `status.message` holding one data part of media type
 * `A2A_SIGNALING_MEDIA_TYPE`. Replies come as separate `SendMessage` requests
 * in the same context that name the task in `referenceTaskIds`; the
 * {@linkcode A2ASignalingRouter.wrapRequestHandler | wrapped request handler}
 * delivers them to the task's signalling and answers each with a bare
 * acknowledgement, so they never reach the executor or the task store. A reply
 * that names the task in `taskId` instead is routed the same way: given to the
 * SDK, it would re-run the executor on the task's event bus and end the
 * user's stream (`-32004`). For that reason any other message naming the task
 * in `taskId` is refused (`TaskNotFoundError`) from the first dial until the
 * user's stream ends, unless it carries the secret of the request that opened
 * the signalling. A router holds at most `A2A_MAX_OPEN_SIGNALING` (128)
 * signallings open at once.
 *
 * The {@linkcode A2ASignalingRouter.wrapTaskStore | wrapped task store} keeps
 * signalling out of the task history: SDPs name the agent's addresses and are
 * of no use once the connection is up.
 *
 * A task's signalling belongs to the request that opened it, even when the
 * agent authenticates nobody: replies are accepted only if they carry the
 * secret of that request's `metadata` (taken out before the SDK sees the
 * request, so never stored), and come from the same tenant and user (as the
 * SDK scopes tasks) while the signalling is open; its status updates show
 * only on that request's stream, never on a resubscription or another
 * client's stream; every task the handler returns is without signalling.
 * `openSignaling()` refuses a request that did not pass through the wrapped
 * handler, and every signalling message it sends carries the routing mark
 * that desktops require.
 *
 * @example An agent reaches the desktop's MCP server, in one process
 * ```ts
 * import { type Message, Role, TaskState } from "@a2a-js/sdk";
 * import { DefaultRequestHandler, InMemoryTaskStore, ServerCallContext } from "@a2a-js/sdk/server";
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { WebRTCClientTransport } from "@mcp/webrtc";
 * import {
 *   a2aMcpOffer,
 *   a2aSignalingExtension,
 *   A2ASignalingRouter,
 *   sendMessageOfferingMcp,
 * } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
 * const text = (value: string, taskId = "", contextId = ""): Message => ({
 *   messageId: crypto.randomUUID(), contextId, taskId, role: Role.ROLE_AGENT,
 *   parts: [{ content: { $case: "text", value }, mediaType: "text/plain", filename: "", metadata: {} }],
 *   metadata: undefined, extensions: [], referenceTaskIds: [],
 * });
 *
 * // The agent: its executor connects an MCP client to the desktop while it works on the task.
 * const router = new A2ASignalingRouter();
 * const card = {
 *   name: "agent", description: "", supportedInterfaces: [], provider: undefined, version: "1",
 *   capabilities: { streaming: true, extensions: [a2aSignalingExtension()] },
 *   securitySchemes: {}, securityRequirements: [], defaultInputModes: [], defaultOutputModes: [],
 *   skills: [], signatures: [],
 * };
 * const agent = router.wrapRequestHandler(
 *   new DefaultRequestHandler(card, router.wrapTaskStore(new InMemoryTaskStore()), {
 *     async execute(context, bus) {
 *       const { taskId, contextId } = context;
 *       const status = (state: TaskState, message?: Message) => ({
 *         state, message, timestamp: new Date().toISOString(),
 *       });
 *       bus.publish({ kind: "task", data: {
 *         id: taskId, contextId, status: status(TaskState.TASK_STATE_WORKING),
 *         artifacts: [], history: [], metadata: undefined,
 *       } });
 *       assert.ok(a2aMcpOffer(context.userMessage));
 *       const mcp = new Client({ name: "agent", version: "1.0.0" });
 *       await mcp.connect(new WebRTCClientTransport({
 *         signaling: router.openSignaling(context, bus, { sealed: false }), ...local,
 *       }));
 *       const answer = `the desktop serves ${mcp.getServerVersion()?.name}`;
 *       await mcp.close();
 *       bus.publish({ kind: "statusUpdate", data: {
 *         taskId, contextId, metadata: undefined,
 *         status: status(TaskState.TASK_STATE_COMPLETED, text(answer, taskId, contextId)),
 *       } });
 *     },
 *     cancelTask: async () => {},
 *   }),
 * );
 *
 * // The desktop: an A2A client (here calling the handler in process; over HTTP in real life).
 * const client = {
 *   sendMessage: (params: Parameters<typeof agent.sendMessage>[0]) =>
 *     agent.sendMessage(params, new ServerCallContext()),
 *   sendMessageStream: (params: Parameters<typeof agent.sendMessageStream>[0]) =>
 *     agent.sendMessageStream(params, new ServerCallContext()),
 * };
 * let answer = "";
 * let channel = "";
 * const params = { tenant: "", message: text("hello"), configuration: undefined, metadata: undefined };
 * for await (
 *   const event of sendMessageOfferingMcp(client, params, {
 *     createServer: () => new McpServer({ name: "desktop", version: "1.0.0" }),
 *     sealed: false,
 *     transportOptions: local,
 *   })
 * ) {
 *   if (event.payload?.$case === "mcpChannel") channel = event.payload.value.state;
 *   const status = event.payload?.$case === "statusUpdate" ? event.payload.value.status : undefined;
 *   const part = status?.message?.parts[0]?.content;
 *   if (part?.$case === "text") answer = part.value;
 * }
 * assert.equal(channel, "open");
 * assert.equal(answer, "the desktop serves desktop");
 * ```
 */
export class A2ASignalingRouter {
  readonly #open = new Map<string, A2ATaskSignaling>();
  /** The secret of the request that opened each task's signalling, until that request's stream ends. */
  readonly #guarded = new Map<string, string>();

  /**
   * Opens the signalling of the task being executed, to hand to a
   * `WebRTCClientTransport`. Publish the task (a `task` event) before the
   * transport starts: signalling goes out as status updates of that task.
   *
   * The signalling closes when the task's stream ends (a final, input- or
   * auth-required state, or the event bus finishes); a connection already up
   * does not depend on it.
   *
   * @param context The executor's request context.
   * @param eventBus The executor's event bus.
   * @param options The key (or its lookup by the offer's `keyId`) to seal
   * with, or `sealed: false`.
   * @returns The task's signalling; an `AuthenticatedSignaling` over it with `key`.
   * @throws {TypeError} If `options` give neither a key nor `sealed: false`,
   * or a key that is not one; the request did not pass through
   * {@linkcode A2ASignalingRouter.wrapRequestHandler}; the user's message
   * does not offer an MCP server; the offer and the options disagree on
   * sealing, or no key is found for its `keyId`; or the task's signalling is
   * already open.
   * @throws {WebRTCTransportError} If the router already holds
   * `A2A_MAX_OPEN_SIGNALING` (128) signallings open.
   */
  openSignaling(
    context: RequestContext,
    eventBus: ExecutionEventBus,
    options: OpenA2ASignalingOptions,
  ): Signaling {
    const sealing = sealingOf(options);
    const offer = a2aMcpOffer(context.userMessage);
    if (!offer) {
      throw new TypeError(
        "Cannot open signalling as the user's message does not offer an MCP server over WebRTC: check a2aMcpOffer(context.userMessage) first",
      );
    }
    const call = context.context?.state?.get(CALL_STATE_KEY) as CallState | undefined;
    if (!call) {
      throw new TypeError(
        "Cannot open signalling as the request did not pass through A2ASignalingRouter.wrapRequestHandler(): wrap the request handler you serve, or the desktop's replies reach the executor as user messages",
      );
    }
    if (!call.secret) {
      throw new TypeError(
        "Cannot open signalling as the desktop's request carries no signalling secret in its metadata: the desktop speaks an older version of the extension; update it",
      );
    }
    let key: CryptoKey | undefined;
    if (offer.sealed) {
      if (sealing === false) {
        throw new TypeError(
          `Cannot open signalling as the desktop seals its signalling${
            offer.keyId ? ` with key "${offer.keyId}"` : ""
          } and no key was given: pass { key } from deriveTicketKeys() of the ticket paired with it`,
        );
      }
      const found = typeof sealing === "function" ? sealing(offer.keyId) : sealing;
      if (found === undefined && typeof sealing === "function") {
        throw new TypeError(
          `Cannot open signalling as no key was found for the desktop's key id ${
            JSON.stringify(offer.keyId ?? null)
          }: this agent was not paired with that desktop`,
        );
      }
      key = checkSignalingKey(found, "open signalling with the key the lookup returned");
    } else if (sealing !== false) {
      throw new TypeError(
        "Cannot open signalling as a key was given but the desktop's offer is not sealed: the desktop was not given the ticket, or something on the A2A path removed the seal; refusing unsealed signalling",
      );
    }
    const id = scopedTaskId(context.context, context.taskId);
    if (this.#open.has(id)) {
      throw new TypeError(
        `Cannot open signalling as task ${context.taskId} already has open signalling: close it first`,
      );
    }
    if (this.#open.size >= A2A_MAX_OPEN_SIGNALING) {
      throw new WebRTCTransportError(
        `Cannot open signalling as this agent holds ${this.#open.size} signallings open at once, the limit (A2A_MAX_OPEN_SIGNALING): try again once a connection attempt ends`,
      );
    }
    if (!call.guarded) {
      call.guarded = true;
      this.#guard(id, context.taskId, call.secret, eventBus);
    }
    context.context.addActivatedExtension(A2A_SIGNALING_EXTENSION_URI);
    const signaling = new A2ATaskSignaling(
      eventBus,
      { taskId: context.taskId, contextId: context.contextId },
      call as Required<Pick<CallState, "secret" | "published">>,
      call.dials = (call.dials ?? 0) + 1,
      () => {
        if (this.#open.get(id) === signaling) this.#open.delete(id);
      },
    );
    this.#open.set(id, signaling);
    if (!key) return signaling;
    // The desktop's hello came with its offer, for the first dial: a later
    // dial meets a new connection of the desktop, with a nonce of its own.
    const peerHello = signaling.dial === 1 ? offer.hello : undefined;
    return new AuthenticatedSignaling(signaling, {
      key,
      role: "guest",
      ...(peerHello === undefined ? {} : { peerHello }),
    });
  }

  /**
   * A connection to the desktop through the task's signalling, for the
   * executor's MCP client (`client.connect(connection.openTransport())`):
   * each dial opens the task's signalling again (the first at once, so that
   * what {@linkcode A2ASignalingRouter.openSignaling} refuses is thrown
   * here). When the desktop's offer says it answers again (`resume`), a
   * session outlives a lost peer connection: the connection dials again
   * through the same task while the user's stream is open, the desktop
   * answers, and the calls in flight complete on the same server. Close the
   * connection when the executor is done with it.
   *
   * @example Connect the executor's MCP client
   * ```ts ignore
   * const connection = router.openConnection(context, bus, { sealed: false });
   * try {
   *   await mcp.connect(connection.openTransport());
   *   // … calls …
   * } finally {
   *   await mcp.close();
   *   await connection.close();
   * }
   * ```
   *
   * @param context The executor's request context.
   * @param eventBus The executor's event bus.
   * @param options The key (or its lookup by the offer's `keyId`) to seal
   * with, or `sealed: false`, as for `openSignaling()`.
   * @param connectionOptions Options of the connection (ICE servers,
   * timeouts); `linger` defaults to 0 and `resume` to what the offer says.
   * @returns The connection; not dialled until its first session starts.
   * @throws {TypeError} As `openSignaling()` does.
   */
  openConnection(
    context: RequestContext,
    eventBus: ExecutionEventBus,
    options: OpenA2ASignalingOptions,
    connectionOptions: Omit<WebRTCConnectionOptions, "signaling" | "initiator"> = {},
  ): WebRTCConnection {
    let first: Signaling | undefined = this.openSignaling(context, eventBus, options);
    let last: Signaling | undefined;
    const resume = a2aMcpOffer(context.userMessage)?.resume === true;
    return new WebRTCConnection({
      linger: 0,
      ...connectionOptions,
      resume: connectionOptions.resume ?? resume,
      signaling: async () => {
        // A new dial means the last one's peer is gone: its signalling (still
        // open, should the desktop say more) closes first.
        await last?.close();
        last = first ?? this.openSignaling(context, eventBus, options);
        first = undefined;
        return last;
      },
    });
  }

  /**
   * Wraps the A2A server's request handler so that the desktop's signalling
   * replies reach the task's signalling (and nothing else); every other
   * request goes to `inner` unchanged.
   *
   * @param inner The request handler, e.g. a `DefaultRequestHandler`.
   * @returns The handler to serve (for example with the SDK's `jsonRpcHandler`).
   */
  wrapRequestHandler(inner: A2ARequestHandler): A2ARequestHandler {
    return new SignalingRequestHandler(
      inner,
      (params, context) => this.#route(params, context),
      (params, context) => this.#admit(params, context),
    );
  }

  /**
   * Wraps a task store so that signalling stays out of what it saves: the
   * messages that carry only signalling are left out of `history`, and a
   * `status.message` that carries only signalling is left out of `status`.
   *
   * @param inner The task store, e.g. an `InMemoryTaskStore`.
   * @returns The store to give the request handler.
   */
  wrapTaskStore(inner: TaskStore): TaskStore {
    return {
      load: (taskId, context) => inner.load(taskId, context),
      list: (params, context) => inner.list(params, context),
      save: (task, context) => inner.save(withoutSignaling(task), context),
    };
  }

  /**
   * Keeps a message that names task `taskId` in `taskId` from the SDK unless
   * it carries `secret`, until the stream of the request that opened the
   * task's signalling ends: given to the SDK, it would run the executor again
   * on the task's event bus and end that stream.
   */
  #guard(id: string, taskId: string, secret: string, bus: ExecutionEventBus): void {
    this.#guarded.set(id, secret);
    const end = () => {
      bus.off("event", watch);
      bus.off("finished", end);
      if (this.#guarded.get(id) === secret) this.#guarded.delete(id);
    };
    const watch = (event: AgentExecutionEvent) => {
      if (endsStream(event, taskId)) end();
    };
    bus.on("event", watch);
    bus.on("finished", end);
  }

  /** Throws if the message names, in `taskId`, a task guarded by a secret the request does not carry. */
  #admit(params: SendMessageRequest, context: ServerCallContext): void {
    const taskId = params.message?.taskId;
    if (!taskId) return;
    const secret = this.#guarded.get(scopedTaskId(context, taskId));
    if (secret === undefined) return;
    const given = signalingSecretOf(params.metadata);
    if (given !== undefined && sameSecret(given, secret)) return;
    throw new TaskNotFoundError(
      `Cannot take the message as task ${taskId} belongs to the desktop whose request opened its signalling, and this request does not carry its secret: until that request's stream ends, only it may send on the task; start a new task (leave taskId empty)`,
    );
  }

  /** Delivers a signalling reply, or returns `undefined` if the request is not one. */
  #route(params: SendMessageRequest, context: ServerCallContext): Message | undefined {
    const message = params.message;
    if (!message?.parts?.some(isSignalingPart)) return undefined;
    let signals: SignalingMessage[];
    try {
      signals = readSignalingParts(message);
    } catch (error) {
      throw new RequestMalformedError((error as Error).message);
    }
    const taskIds = message.taskId ? [message.taskId] : message.referenceTaskIds ?? [];
    if (taskIds.length !== 1 || !taskIds[0]) {
      throw new RequestMalformedError(
        "Cannot deliver signalling as the message does not name exactly one task: put the task's id in referenceTaskIds",
      );
    }
    const taskId = taskIds[0];
    const target = this.#open.get(scopedTaskId(context, taskId));
    const secret = signalingSecretOf(params.metadata);
    if (!target || secret === undefined || !sameSecret(secret, target.secret)) {
      throw new TaskNotFoundError(
        `Cannot deliver signalling as task ${taskId} has no open signalling that this request's secret opens: the connection attempt ended, or the task belongs to someone else`,
      );
    }
    const dial = signalingDialOf(params.metadata);
    if (dial === undefined) {
      throw new RequestMalformedError(
        `Cannot deliver signalling as the dial in the request's metadata is not a positive integer: say which dial of task ${taskId} the reply answers, or leave it out for the first`,
      );
    }
    if (message.contextId && message.contextId !== target.contextId) {
      throw new RequestMalformedError(
        `Cannot deliver signalling as the message's contextId does not match task ${taskId}'s`,
      );
    }
    if (dial > target.dial) {
      throw new RequestMalformedError(
        `Cannot deliver signalling as the request names dial ${dial} of task ${taskId}, which is at dial ${target.dial}: reply to dial ${target.dial} (or to an earlier one, which is ignored)`,
      );
    }
    context.addActivatedExtension(A2A_SIGNALING_EXTENSION_URI);
    // A reply to an earlier dial (its goodbye, crossing the redial) is acknowledged, not delivered.
    if (dial === target.dial) target.deliver(signals);
    return {
      messageId: crypto.randomUUID(),
      contextId: target.contextId,
      taskId: "",
      role: Role.ROLE_AGENT,
      parts: [{
        content: {
          $case: "text",
          value: dial === target.dial
            ? `accepted ${signals.length}`
            : `ignored ${signals.length} of an earlier dial`,
        },
        mediaType: "text/plain",
        filename: "",
        metadata: undefined,
      }],
      metadata: undefined,
      extensions: [A2A_SIGNALING_EXTENSION_URI],
      referenceTaskIds: [taskId],
    };
  }
}
/** The sealing the options say: a key, a lookup, or `false`; a `TypeError` for anything else. */
function sealingOf(options: OpenA2ASignalingOptions): CryptoKey | A2ASignalingKeyLookup | false {
  if (options === undefined || options === null || typeof options !== "object") {
    throw new TypeError(
      "Cannot open signalling as no options were given: pass { key } to seal, or say { sealed: false }",
    );
  }
  if ("key" in options) {
    if (options.sealed !== undefined) {
      throw new TypeError(
        "Cannot open signalling as both 'key' and 'sealed' are given: give the key to seal, or sealed: false without a key",
      );
    }
    return typeof options.key === "function"
      ? options.key
      : checkSignalingKey(options.key, "open signalling");
  }
  if (options.sealed === false) return false;
  throw new TypeError(
    "Cannot open signalling as neither 'key' nor 'sealed: false' is given: pass { key } (or a lookup by the offer's keyId) to seal, or say { sealed: false }",
  );
}

/** The routing key of a task: tenant, user and task id, as the SDK scopes tasks. */
function scopedTaskId(context: ServerCallContext, taskId: string): string {
  return JSON.stringify([context.tenant ?? "", context.user?.userName ?? "", taskId]);
}
