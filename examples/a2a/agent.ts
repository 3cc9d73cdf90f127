/**
 * The cloud agent: an A2A server whose executor, when the user's message
 * offers the desktop's MCP server, connects an MCP client to it over WebRTC
 * (signalling inside the task), reads the file the user asked about, and
 * answers with it.
 *
 * `agent_main.ts` runs it as a process of its own; `main.ts` runs the demo.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import { AGENT_CARD_PATH, type AgentCard, type Message, Role, TaskState } from "@a2a-js/sdk";
import {
  type A2ARequestHandler,
  type AgentExecutionEvent,
  type AgentExecutor,
  DefaultRequestHandler,
  InMemoryTaskStore,
  type TaskStore,
} from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";
import express from "express";
import type { AddressInfo } from "node:net";
import { deriveTicketKeys, parseTicket } from "../../mod.ts";
import { a2aMcpOffer, a2aSignalingExtension, A2ASignalingRouter } from "../../src/a2a/mod.ts";
import { type Log, textOf, textPart } from "./common.ts";

/** Options of {@linkcode startAgent}. */
export interface AgentOptions {
  /** Port on 127.0.0.1; 0 picks a free one. */
  port?: number;
  /** The agent's (guest) ticket paired with the desktop: seals signalling. */
  ticket?: string;
  /** Milliseconds to connect to the desktop. */
  connectTimeout?: number;
  /** Where each step is reported. */
  log?: Log;
  /** Keep signalling in the task store (to show what the default leaves out). */
  keepSignalingInHistory?: boolean;
  /** Serve without wrapping the request handler (an agent that forgot to). */
  withoutRouter?: boolean;
  /** Awaited once the MCP client is connected, before the tool is called (tests hold the task open). */
  afterConnect?: () => Promise<void>;
  /** Every user message the executor is given (tests check that no signalling is among them). */
  onUserMessage?: (message: Message) => void;
}

/** A running agent. */
export interface Agent {
  /** Its base URL (the agent card is under `/.well-known/agent-card.json`). */
  url: string;
  /** Its task store, to inspect what it keeps. */
  taskStore: TaskStore;
  /** Stops serving. */
  close(): Promise<void>;
}

/** Starts the agent on 127.0.0.1. */
export async function startAgent(options: AgentOptions = {}): Promise<Agent> {
  const log = options.log ?? (() => {});
  const key = options.ticket
    ? (await deriveTicketKeys(parseTicket(options.ticket))).signalingKey
    : undefined;
  const router = new A2ASignalingRouter();
  const card: AgentCard = {
    name: "File reader",
    description: "Reads a file on your desktop, over WebRTC, and tells you what it says.",
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
    skills: [{
      id: "read-file",
      name: "Read a file",
      description: "Reads a file from the user's desktop",
      tags: ["files", "mcp"],
      examples: ["What does notes.txt say?"],
      inputModes: [],
      outputModes: [],
      securityRequirements: [],
    }],
    signatures: [],
  };
  const executor: AgentExecutor = {
    async execute(context, bus) {
      const { taskId, contextId } = context;
      const publish = (event: AgentExecutionEvent) => bus.publish(event);
      const finish = (state: TaskState, text: string) =>
        publish({
          kind: "statusUpdate",
          data: {
            taskId,
            contextId,
            status: { state, message: agentMessage(text, taskId, contextId), timestamp: now() },
            metadata: undefined,
          },
        });
      options.onUserMessage?.(context.userMessage);
      log("message received", { text: textOf(context.userMessage) });
      publish({
        kind: "task",
        data: {
          id: taskId,
          contextId,
          status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: now() },
          artifacts: [],
          history: [context.userMessage],
          metadata: undefined,
        },
      });
      if (!a2aMcpOffer(context.userMessage)) {
        finish(TaskState.TASK_STATE_REJECTED, "I read files on your desktop: offer its MCP server");
        return;
      }
      const path = /[\w./-]+\.\w+/.exec(textOf(context.userMessage))?.[0] ?? "notes.txt";
      const mcp = new Client({ name: "cloud-agent", version: "1.0.0" });
      try {
        // Dials again through this task if the path is lost while the user's stream is open.
        const connection = router.openConnection(context, bus, key ? { key } : { sealed: false }, {
          iceServers: [],
          rtcConfiguration: { bindAddress: "127.0.0.1" },
          connectTimeout: options.connectTimeout ?? 10_000,
        });
        connection.onconnectstep = (step) => log(`webrtc ${step}`);
        await mcp.connect(connection.openTransport());
        log("mcp initialized", { server: mcp.getServerVersion()?.name });
        await options.afterConnect?.();
        const { tools } = await mcp.listTools();
        log("tools listed", { tools: tools.map((tool) => tool.name) });
        const result = await mcp.callTool({ name: "read_file", arguments: { path } });
        const text = (result.content as { type: string; text?: string }[])
          .map((part) => part.text ?? "").join("");
        log("tool called", { tool: "read_file", path, bytes: text.length });
        await mcp.close();
        finish(
          result.isError ? TaskState.TASK_STATE_FAILED : TaskState.TASK_STATE_COMPLETED,
          result.isError ? text : `${path} says: ${text}`,
        );
      } catch (error) {
        await mcp.close();
        const { name, message } = error as Error;
        log("failed", { error: `${name}: ${message}` });
        finish(TaskState.TASK_STATE_FAILED, `${name}: ${message}`);
      }
      log("answered");
    },
    cancelTask: () => Promise.resolve(),
  };
  const store = new InMemoryTaskStore();
  const taskStore = options.keepSignalingInHistory ? store : router.wrapTaskStore(store);
  const handler = new DefaultRequestHandler(card, taskStore, executor);
  const requestHandler = options.withoutRouter ? handler : router.wrapRequestHandler(handler);
  const served = await serveAgent(card, requestHandler, options.port);
  return { ...served, taskStore };
}

/**
 * Serves an agent's card and its JSON-RPC endpoint over Express on
 * 127.0.0.1, and adds that endpoint to the card's interfaces.
 *
 * @param card The agent card (its `supportedInterfaces` gets the endpoint).
 * @param requestHandler The request handler, wrapped by an `A2ASignalingRouter` as a rule.
 * @param port The port; 0 picks a free one.
 * @returns The base URL, and a function that stops serving.
 */
export async function serveAgent(
  card: AgentCard,
  requestHandler: A2ARequestHandler,
  port = 0,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: requestHandler }));
  app.use(
    "/a2a/jsonrpc",
    jsonRpcHandler({ requestHandler, userBuilder: UserBuilder.noAuthentication }),
  );
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve, reject) => {
    const listening = app.listen(
      port,
      "127.0.0.1",
      (error?: Error) => error ? reject(error) : resolve(listening),
    );
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  card.supportedInterfaces.push({
    url: `${url}/a2a/jsonrpc`,
    protocolBinding: "JSONRPC",
    tenant: "",
    protocolVersion: "1.0",
  });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function agentMessage(text: string, taskId: string, contextId: string): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId,
    taskId,
    role: Role.ROLE_AGENT,
    parts: [textPart(text)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

function now(): string {
  return new Date().toISOString();
}
