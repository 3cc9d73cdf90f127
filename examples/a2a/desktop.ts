/**
 * The desktop: an A2A client that asks the cloud agent a question, and an MCP
 * server with read-only file tools that the agent reaches over WebRTC while it
 * answers. No port is opened on the desktop: the signalling travels in the
 * task's own A2A messages.
 *
 * `desktop_main.ts` runs it as a process of its own; `main.ts` runs the demo.
 *
 * @module
 */
import {
  type Message,
  Role,
  type SendMessageRequest,
  type StreamResponse,
  TaskState,
} from "@a2a-js/sdk";
import { type Client as A2AClient, ClientFactory } from "@a2a-js/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { z } from "zod";
import {
  deriveTicketKeys,
  parseTicket,
  WebRTCServerTransport,
  type WebRTCTransportOptions,
} from "../../mod.ts";
import {
  A2AClientSignaling,
  type McpChannelEvent,
  sendMessageOfferingMcp,
} from "../../src/a2a/mod.ts";
import { type Log, textOf, textPart } from "./common.ts";

/** Largest file `read_file` returns. */
const MAX_FILE_SIZE = 1024 * 1024;

/**
 * An MCP server with two read-only tools over the files under `root`:
 * `list_files` and `read_file`. Paths that leave `root` are refused.
 */
export function createFileServer(root: string): McpServer {
  const server = new McpServer({ name: "desktop-files", version: "1.0.0" });
  const inside = async (path: string) => {
    const base = await realpath(root);
    const full = await realpath(resolve(base, path)).catch(() => undefined);
    if (!full || (full !== base && !full.startsWith(base + sep))) {
      throw new Error(`Cannot read "${path}" as it is not a file under the shared folder`);
    }
    return full;
  };
  server.registerTool(
    "list_files",
    { description: "Lists the files in the shared folder", inputSchema: {} },
    async () => {
      const names = await readdir(await realpath(root), { recursive: true });
      return { content: [{ type: "text", text: names.sort().join("\n") }] };
    },
  );
  server.registerTool(
    "read_file",
    {
      description: "Reads a text file from the shared folder",
      inputSchema: { path: z.string().describe("Path relative to the shared folder") },
    },
    async ({ path }) => {
      try {
        const full = await inside(path);
        const info = await stat(full);
        if (!info.isFile()) throw new Error(`Cannot read "${path}" as it is not a file`);
        if (info.size > MAX_FILE_SIZE) {
          throw new Error(`Cannot read "${path}" as it is over ${MAX_FILE_SIZE} bytes`);
        }
        return { content: [{ type: "text", text: await readFile(full, "utf8") }] };
      } catch (error) {
        return { content: [{ type: "text", text: (error as Error).message }], isError: true };
      }
    },
  );
  return server;
}

/** Options of {@linkcode askAgent}. */
export interface AskOptions {
  /** The folder the file tools share. */
  root: string;
  /** The desktop's (host) ticket paired with the agent: seals signalling. */
  ticket?: string;
  /** Where each step is reported. */
  log?: Log;
  /** The A2A client to use (one from `ClientFactory` by default). */
  client?: A2AClient;
  /** How the desktop's replies reach the agent (for tests that change them). */
  replies?: Pick<A2AClient, "sendMessage">;
}

/** What the agent answered, and what happened on the desktop's side. */
export interface AskResult {
  /** The task's last state. */
  state?: TaskState;
  /** The text of the task's last status message. */
  answer: string;
  /** Why the MCP channel failed, if it did (from the stream's `mcpChannel` event). */
  errors: Error[];
  /** Whether the agent reached the MCP server (the stream's `mcpChannel` event said "open"). */
  connected: boolean;
  /** The task's id. */
  taskId?: string;
}

/** Asks the agent at `agentUrl` a question, serving the file tools while it answers. */
export async function askAgent(
  agentUrl: string,
  question: string,
  options: AskOptions,
): Promise<AskResult> {
  const log = options.log ?? (() => {});
  const ticket = options.ticket ? parseTicket(options.ticket) : undefined;
  const key = ticket ? (await deriveTicketKeys(ticket)).signalingKey : undefined;
  const client = options.client ?? await new ClientFactory().createFromUrl(agentUrl);
  log("agent card read", { agent: (await client.getAgentCard()).name });
  const result: AskResult = { answer: "", errors: [], connected: false };
  const message: Message = {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts: [textPart(question)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
  const params: SendMessageRequest = {
    tenant: "",
    message,
    configuration: undefined,
    metadata: undefined,
  };
  const transportOptions = {
    iceServers: [],
    rtcConfiguration: { bindAddress: "127.0.0.1" },
    connectTimeout: 10_000,
  };
  const createServer = () => {
    log("agent asks for the MCP server");
    return createFileServer(options.root);
  };
  log("message sent", { text: question });
  const replies = options.replies;
  const events = replies
    ? streamWithReplies(client, replies, params, createServer, transportOptions)
    : sendMessageOfferingMcp(client, params, {
      createServer,
      ...(key ? { key, keyId: ticket?.room } : { sealed: false as const }),
      transportOptions,
    });
  for await (const event of events) {
    const payload = event.payload;
    if (payload?.$case === "task") {
      result.taskId = payload.value.id;
      log("task created", { state: TaskState[payload.value.status?.state ?? 0] });
    } else if (payload?.$case === "statusUpdate") {
      result.state = payload.value.status?.state;
      const text = textOf(payload.value.status?.message);
      if (text) result.answer = text;
      log("task status", { state: TaskState[result.state ?? 0], text });
    } else if (payload?.$case === "mcpChannel") {
      const status = payload.value;
      if (status.state === "open") {
        result.connected = true;
        log("mcp channel open");
      } else {
        result.errors.push(status.error);
        log("mcp channel failed", { error: `${status.error.name}: ${status.error.message}` });
      }
    }
  }
  log("done");
  return result;
}

/**
 * A bare `sendMessageOfferingMcp`, with the replies sent through `replies`
 * (tests use it to send them as an ill-behaved client would).
 */
async function* streamWithReplies(
  client: A2AClient,
  replies: Pick<A2AClient, "sendMessage">,
  params: SendMessageRequest,
  createServer: () => McpServer,
  transportOptions: Omit<WebRTCTransportOptions, "signaling">,
): AsyncGenerator<StreamResponse | McpChannelEvent> {
  const signaling = new A2AClientSignaling(replies);
  let server: McpServer | undefined;
  let opened: WebRTCServerTransport | undefined;
  try {
    const offered = signaling.offer(params, { version: 2, sealed: false });
    for await (const event of client.sendMessageStream(offered)) {
      if (!signaling.receive(event)) {
        yield event;
        continue;
      }
      if (!server) {
        server = createServer();
        const transport = new WebRTCServerTransport({ ...transportOptions, signaling });
        transport.onconnectstep = (step) => {
          if (step === "channel") opened = transport;
        };
        await server.connect(transport);
      }
    }
  } finally {
    await signaling.close();
  }
  if (opened) {
    yield { payload: { $case: "mcpChannel", value: { state: "open", transport: opened } } };
  }
}
