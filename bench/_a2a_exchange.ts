/**
 * The A2A part of the founding scenario's connect, alone: the desktop's
 * streaming request, the agent's offer on that request's stream, and the
 * desktop's reply carrying an answer, through the same A2A SDK, Express and
 * signalling router as `examples/a2a`, with no peer connection on either
 * side. The agent's executor publishes the task as the example's does, opens
 * the task's signalling, sends an offer of a real offer's size and waits for
 * the answer. What this takes is what any connect costs on this SDK in which
 * the agent makes the offer and the desktop answers it: the WebRTC work of
 * the connect comes on top.
 *
 * @module
 */
import { type AgentCard, type Message, Role, TaskState } from "@a2a-js/sdk";
import type { Client as A2AClient } from "@a2a-js/sdk/client";
import { type AgentExecutor, DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server";
import { A2AClientSignaling, a2aSignalingExtension, A2ASignalingRouter } from "../src/a2a/mod.ts";
import { textPart } from "../examples/a2a/common.ts";
import { serveAgent } from "../examples/a2a/agent.ts";

/** An SDP of the size a loopback offer of this module has (about 600 bytes). */
const SDP = `v=0\r\n${"a=x-filler:0123456789abcdef0123456789abcdef\r\n".repeat(14)}`;

/** Longest the agent waits for the desktop's answer before it gives up on one exchange. */
const ANSWER_TIMEOUT = 10_000;

/** An agent whose executor only exchanges an offer and an answer through the task. */
export interface ExchangeAgent {
  url: string;
  /** When (on `performance.now()`) the agent last received an answer. */
  readonly answeredAt: number;
  close(): Promise<void>;
}

/** Starts the signalling-only agent on 127.0.0.1. */
export async function startExchangeAgent(): Promise<ExchangeAgent> {
  const router = new A2ASignalingRouter();
  let answeredAt = 0;
  const card: AgentCard = {
    name: "Exchange",
    description: "Exchanges one offer and one answer through the task, nothing else.",
    supportedInterfaces: [],
    provider: undefined,
    version: "1.0.0",
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extensions: [a2aSignalingExtension()],
    },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [],
    signatures: [],
  };
  const executor: AgentExecutor = {
    async execute(context, bus) {
      const { taskId, contextId } = context;
      const status = (state: TaskState) => ({ state, message: undefined, timestamp: "" });
      bus.publish({
        kind: "task",
        data: {
          id: taskId,
          contextId,
          status: status(TaskState.TASK_STATE_WORKING),
          artifacts: [],
          history: [context.userMessage],
          metadata: undefined,
        },
      });
      const signaling = router.openSignaling(context, bus, { sealed: false });
      const answered = Promise.withResolvers<void>();
      const timer = setTimeout(() => answered.reject(new Error("no answer")), ANSWER_TIMEOUT);
      signaling.onmessage = (message) => {
        if (message.type !== "answer") return;
        answeredAt = performance.now();
        answered.resolve();
      };
      let state = TaskState.TASK_STATE_COMPLETED;
      try {
        await signaling.start?.();
        await signaling.send({ type: "offer", sdp: SDP });
        await answered.promise;
      } catch {
        state = TaskState.TASK_STATE_FAILED;
      } finally {
        clearTimeout(timer);
        await signaling.close();
      }
      bus.publish({
        kind: "statusUpdate",
        data: { taskId, contextId, status: status(state), metadata: undefined },
      });
    },
    cancelTask: () => Promise.resolve(),
  };
  const handler = router.wrapRequestHandler(
    new DefaultRequestHandler(card, router.wrapTaskStore(new InMemoryTaskStore()), executor),
  );
  const { url, close } = await serveAgent(card, handler);
  return {
    url,
    get answeredAt() {
      return answeredAt;
    },
    close,
  };
}

/**
 * One exchange, the desktop's side: sends the user's message offering the MCP
 * server, answers the agent's offer, reads the stream to its end. Resolves
 * with the ms from the message's sending to the answer's arrival at the agent.
 */
export async function exchange(client: A2AClient, agent: ExchangeAgent): Promise<number> {
  const signaling = new A2AClientSignaling(client);
  signaling.onmessage = (message) => {
    if (message.type === "offer") void signaling.send({ type: "answer", sdp: SDP });
  };
  const message: Message = {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts: [textPart("exchange")],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
  const params = signaling.offer(
    { tenant: "", message, configuration: undefined, metadata: undefined },
    { version: 2, sealed: false },
  );
  await signaling.start();
  const before = agent.answeredAt;
  const started = performance.now();
  try {
    for await (const event of client.sendMessageStream(params)) signaling.receive(event);
  } finally {
    await signaling.close();
  }
  if (agent.answeredAt === before) throw new Error("The A2A exchange ended without an answer");
  return agent.answeredAt - started;
}
