/**
 * The request handler `A2ASignalingRouter.wrapRequestHandler()` returns: it
 * routes signalling replies first, keeps the desktop's secret out of tasks,
 * and shows a task's signalling only on the stream that opened it.
 *
 * @module
 */

import type {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
} from "@a2a-js/sdk";
import { RequestMalformedError } from "@a2a-js/sdk/errors";
import type { A2ARequestHandler, ServerCallContext } from "@a2a-js/sdk/server";
import {
  isSignalingMessage,
  isSignalingPart,
  signalingSecretOf,
  withoutSignalingSecret,
} from "./extension.ts";
import { CALL_STATE_KEY, type CallState } from "./_task_signaling.ts";

/**
 * A request handler that lets `route` answer signalling replies first, lets
 * `admit` refuse a message on a task whose signalling belongs to another
 * request, takes the desktop's secret out of a streaming request, shows a
 * task's signalling only on the stream of the request that opened it, and
 * returns tasks without signalling.
 */
export class SignalingRequestHandler implements A2ARequestHandler {
  readonly #inner: A2ARequestHandler;
  readonly #route: (params: SendMessageRequest, context: ServerCallContext) => Message | undefined;
  readonly #admit: (params: SendMessageRequest, context: ServerCallContext) => void;

  /**
   * @param inner The handler every other request goes to.
   * @param route Answers a signalling reply, or returns `undefined` if the request is not one.
   * @param admit Throws if the message may not reach `inner` (it names a task another request's signalling guards).
   */
  constructor(
    inner: A2ARequestHandler,
    route: (params: SendMessageRequest, context: ServerCallContext) => Message | undefined,
    admit: (params: SendMessageRequest, context: ServerCallContext) => void,
  ) {
    this.#inner = inner;
    this.#route = route;
    this.#admit = admit;
  }

  getAgentCard(): Promise<AgentCard> {
    return this.#inner.getAgentCard();
  }
  getAuthenticatedExtendedAgentCard(
    params: GetExtendedAgentCardRequest,
    context: ServerCallContext,
  ): Promise<AgentCard> {
    return this.#inner.getAuthenticatedExtendedAgentCard(params, context);
  }
  async sendMessage(
    params: SendMessageRequest,
    context: ServerCallContext,
  ): Promise<Message | Task> {
    const answer = this.#route(params, context);
    if (answer) return answer;
    this.#admit(params, context);
    const result = await this.#inner.sendMessage(
      { ...params, metadata: withoutSignalingSecret(params.metadata) },
      context,
    );
    return isTask(result) ? withoutSignaling(result) : result;
  }
  async *sendMessageStream(
    params: SendMessageRequest,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    if (params.message?.parts?.some(isSignalingPart)) {
      throw new RequestMalformedError(
        "Cannot deliver signalling in a streaming request: send it with SendMessage",
      );
    }
    this.#admit(params, context);
    const call: CallState = { secret: signalingSecretOf(params.metadata), published: new Set() };
    context.state.set(CALL_STATE_KEY, call);
    const inner = this.#inner.sendMessageStream(
      { ...params, metadata: withoutSignalingSecret(params.metadata) },
      context,
    );
    for await (const event of inner) {
      const shown = shownTo(event, call.published);
      if (shown) yield shown;
    }
  }
  async getTask(params: GetTaskRequest, context: ServerCallContext): Promise<Task> {
    return withoutSignaling(await this.#inner.getTask(params, context));
  }
  async cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<Task> {
    return withoutSignaling(await this.#inner.cancelTask(params, context));
  }
  createTaskPushNotificationConfig(
    params: TaskPushNotificationConfig,
    context: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    return this.#inner.createTaskPushNotificationConfig(params, context);
  }
  getTaskPushNotificationConfig(
    params: GetTaskPushNotificationConfigRequest,
    context: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    return this.#inner.getTaskPushNotificationConfig(params, context);
  }
  listTaskPushNotificationConfigs(
    params: ListTaskPushNotificationConfigsRequest,
    context: ServerCallContext,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    return this.#inner.listTaskPushNotificationConfigs(params, context);
  }
  deleteTaskPushNotificationConfig(
    params: DeleteTaskPushNotificationConfigRequest,
    context: ServerCallContext,
  ): Promise<void> {
    return this.#inner.deleteTaskPushNotificationConfig(params, context);
  }
  async *resubscribe(
    params: SubscribeToTaskRequest,
    context: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    for await (const event of this.#inner.resubscribe(params, context)) {
      const shown = shownTo(event, NOTHING_PUBLISHED);
      if (shown) yield shown;
    }
  }
  async listTasks(
    params: ListTasksRequest,
    context: ServerCallContext,
  ): Promise<ListTasksResponse> {
    const response = await this.#inner.listTasks(params, context);
    return { ...response, tasks: response.tasks.map(withoutSignaling) };
  }
}

const NOTHING_PUBLISHED: ReadonlySet<string> = new Set();

/**
 * A stream event as a stream may show it: a status update carrying
 * signalling only on the stream whose own signalling `published` it (else
 * `undefined`), a task without signalling.
 */
function shownTo(
  event: StreamResponse,
  published: ReadonlySet<string>,
): StreamResponse | undefined {
  const payload = event.payload;
  if (payload?.$case === "task") {
    return { ...event, payload: { $case: "task", value: withoutSignaling(payload.value) } };
  }
  if (payload?.$case !== "statusUpdate") return event;
  const message = payload.value.status?.message;
  if (!message?.parts?.some(isSignalingPart)) return event;
  return published.has(message.messageId) ? event : undefined;
}

function isTask(result: Message | Task): result is Task {
  return typeof (result as Task).id === "string" && (result as Task).status !== undefined;
}

/** The task without its signalling messages. */
export function withoutSignaling(task: Task): Task {
  const history = task.history?.filter((message) => !isSignalingMessage(message));
  const status = task.status && isSignalingMessage(task.status.message)
    ? { ...task.status, message: undefined }
    : task.status;
  return { ...task, history: history ?? task.history, status };
}
