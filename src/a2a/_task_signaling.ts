/**
 * One task's signalling, agent side (`A2ATaskSignaling`): what a streaming
 * call carries for the signalling it opens, and the signalling itself, which
 * publishes on the task's event bus and takes the desktop's replies from
 * `A2ASignalingRouter`.
 *
 * @module
 */

import { TaskState } from "@a2a-js/sdk";
import { RequestMalformedError } from "@a2a-js/sdk/errors";
import type { AgentExecutionEvent, ExecutionEventBus } from "@a2a-js/sdk/server";
import { WebRTCTransportError } from "../errors.ts";
import { SignalingBase } from "../signaling/_signaling_base.ts";
import type { SignalingMessage } from "../signaling/signaling.ts";
import {
  A2A_MAX_PENDING_MESSAGES,
  A2A_ROUTED_MARK,
  A2A_SIGNALING_EXTENSION_URI,
  signalingMessage,
} from "./extension.ts";

/** Where the wrapped request handler keeps, in a call's `ServerCallContext.state`, what the call's signalling needs. */
export const CALL_STATE_KEY = `${A2A_SIGNALING_EXTENSION_URI}#call`;

/** What a streaming call through the wrapped handler carries for the signalling it opens. */
export interface CallState {
  /** The desktop's secret, from the request's metadata (kept out of the task). */
  secret?: string;
  /** Ids of the signalling messages this call's signalling published: only this call's stream shows them. */
  published: Set<string>;
  /** How many times this call's signalling was opened: each open is a dial, numbered from 1. */
  dials?: number;
  /** Whether the router guards the call's task (from its first dial to the end of its stream). */
  guarded?: boolean;
}

/** States after which the user's stream is over: no more signalling reaches the desktop. */
const STREAM_ENDING_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
  TaskState.TASK_STATE_INPUT_REQUIRED,
  TaskState.TASK_STATE_AUTH_REQUIRED,
]);

/** Whether `event` on a task's bus ends the user's stream of task `taskId`. */
export function endsStream(event: AgentExecutionEvent, taskId: string): boolean {
  return event.kind === "message" ||
    (event.kind === "statusUpdate" && event.data.taskId === taskId &&
      event.data.status !== undefined && STREAM_ENDING_STATES.has(event.data.status.state));
}

/**
 * One task's signalling, agent side: `send()` publishes a status update on the
 * task's event bus; the router delivers the desktop's replies.
 */
export class A2ATaskSignaling extends SignalingBase {
  readonly #bus: ExecutionEventBus;
  readonly #taskId: string;
  readonly contextId: string;
  /** Which dial of the task this signalling carries, from 1: said in each message, and in each reply it takes. */
  readonly dial: number;
  readonly #onclosed: () => void;
  readonly #call: Required<Pick<CallState, "secret" | "published">>;
  readonly #watch: (event: AgentExecutionEvent) => void;
  readonly #finished: () => void;

  constructor(
    bus: ExecutionEventBus,
    ids: { taskId: string; contextId: string },
    call: Required<Pick<CallState, "secret" | "published">>,
    dial: number,
    onclosed: () => void,
  ) {
    super(A2A_MAX_PENDING_MESSAGES);
    this.dial = dial;
    this.#call = call;
    this.#bus = bus;
    this.#taskId = ids.taskId;
    this.contextId = ids.contextId;
    this.#onclosed = onclosed;
    this.#watch = (event) => {
      if (endsStream(event, this.#taskId)) void this.close();
    };
    this.#finished = () => void this.close();
    bus.on("event", this.#watch);
    bus.on("finished", this.#finished);
  }

  /** The desktop's secret: only replies that carry it are delivered. */
  get secret(): string {
    return this.#call.secret;
  }

  send(message: SignalingMessage): Promise<void> {
    if (this.closing) {
      return Promise.reject(
        new WebRTCTransportError(
          "Cannot send signalling message as the task's stream to the desktop has ended",
        ),
      );
    }
    const status = signalingMessage("agent", [message], {
      contextId: this.contextId,
      taskId: this.#taskId,
    }, { [A2A_SIGNALING_EXTENSION_URI]: { ...A2A_ROUTED_MARK, dial: this.dial } });
    // Only the stream of the request that opened this signalling shows it.
    this.#call.published.add(status.messageId);
    this.#bus.publish({
      kind: "statusUpdate",
      data: {
        taskId: this.#taskId,
        contextId: this.contextId,
        status: {
          state: TaskState.TASK_STATE_WORKING,
          message: status,
          timestamp: new Date().toISOString(),
        },
        metadata: undefined,
      },
    });
    return Promise.resolve();
  }

  /**
   * Takes the desktop's messages, in order.
   *
   * @throws {RequestMalformedError} If too many already wait for `start()`.
   */
  deliver(messages: SignalingMessage[]): void {
    if (this.closing) return;
    if (this.waiting + messages.length > A2A_MAX_PENDING_MESSAGES) {
      throw new RequestMalformedError(
        `Cannot deliver signalling as ${this.waiting} signalling messages already wait for the agent's transport to start: send fewer`,
      );
    }
    for (const message of messages) this.accept(message);
  }

  /** Stops watching the task's bus, and stops routing the desktop's replies here. */
  protected override closeCarrier(): void {
    this.#bus.off("event", this.#watch);
    this.#bus.off("finished", this.#finished);
    this.#onclosed();
  }
}
