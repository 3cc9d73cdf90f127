/** Shared set-up for the tests: real peers on loopback, and the local signalling worker. */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { z } from "zod";
import {
  type ListenOptions,
  MemorySignaling,
  type Signaling,
  type SignalingHub,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
  WebRTCServerTransport,
  type WebRTCTransportOptions,
} from "../mod.ts";
import type { LocalSignaling } from "../worker/local.ts";

/** Peers on one machine: no STUN, only the loopback interface. */
export const LOCAL = {
  iceServers: [],
  rtcConfiguration: { bindAddress: "127.0.0.1" },
} satisfies Partial<WebRTCTransportOptions>;

/** A server with a few tools the tests use. */
export function createTestServer(): McpServer {
  const server = new McpServer({ name: "test-server", version: "1.0.0" }, {
    capabilities: { logging: {} },
  });
  server.registerTool(
    "greet",
    { description: "Greets", inputSchema: { name: z.string() } },
    ({ name }) => ({ content: [{ type: "text", text: `Hello, ${name}!` }] }),
  );
  server.registerTool(
    "blob",
    { description: "Returns a text of the given size", inputSchema: { size: z.number() } },
    ({ size }) => ({ content: [{ type: "text", text: blobText(size) }] }),
  );
  return server;
}

/** A deterministic text of `size` characters with multi-byte characters in it. */
export function blobText(size: number): string {
  const unit = "abcdefghé€😀0123456789";
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

/** Connects a client and a server over a real data channel. */
export async function connectPair(
  server: McpServer = createTestServer(),
  options: Partial<WebRTCTransportOptions> = {},
  client: Client = new Client({ name: "test-client", version: "1.0.0" }),
) {
  const [a, b] = MemorySignaling.createPair();
  const serverTransport = new WebRTCServerTransport({ signaling: b, ...LOCAL, ...options });
  const clientTransport = new WebRTCClientTransport({ signaling: a, ...LOCAL, ...options });
  await server.connect(serverTransport);
  await client.connect(clientTransport);
  return {
    client,
    server,
    clientTransport,
    serverTransport,
    async close() {
      await client.close();
      await server.close();
    },
  };
}

/** Resolves once `condition()` holds, polling every 10 ms, or rejects after `ms`. */
export function until(condition: () => boolean, ms = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`${what} not met within ${ms} ms`));
      setTimeout(check, 10);
    };
    check();
  });
}

/** The text of a tool result's first content item. */
export function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

/** Calls the greeter and checks its answer: proof that MCP works end to end. */
export async function greet(client: Client, name: string): Promise<void> {
  assert.equal(
    text(await client.callTool({ name: "greet", arguments: { name } })),
    `Hello, ${name}!`,
  );
}

/** Dials with a ticket, as an agent does, and returns the connected client. */
export async function dial(
  ticket: string,
  options: Partial<WebRTCTransportOptions> = {},
): Promise<Client> {
  const client = new Client({ name: "agent", version: "1.0.0" });
  const transport = new WebRTCClientTransport({
    signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
    ...LOCAL,
    connectTimeout: 10_000,
    ...options,
  });
  await client.connect(transport);
  return client;
}

/** Runs `fn` with the signalling worker started on 127.0.0.1, then stops the worker. */
export async function withWorker<T>(
  fn: (worker: LocalSignaling) => Promise<T>,
  vars?: Record<string, string>,
): Promise<T> {
  // Loaded here so that the tests that need no worker never load Miniflare.
  const { startLocalSignaling } = await import("../worker/local.ts");
  const worker = await startLocalSignaling({ vars });
  try {
    return await fn(worker);
  } finally {
    await worker.close();
  }
}

/** A desktop for a test: the worker, and a listener with a room on it. */
export interface Desktop {
  worker: LocalSignaling;
  listener: WebRTCListener;
  /** The guest ticket to dial the listener with. */
  ticket: string;
}

/** What {@linkcode withDesktop} passes to `WebRTCListener.listen()`, besides the worker's URL. */
export type DesktopOptions =
  & Omit<ListenOptions, "url" | "createServer">
  & Partial<Pick<ListenOptions, "createServer">>;

/**
 * Runs `fn` with a {@linkcode Desktop}: the worker and a listener made by
 * `WebRTCListener.listen()` on it, with a new ticket, {@linkcode LOCAL} peers
 * and (unless `options` give another) {@linkcode createTestServer}. Closes the
 * listener, then the worker, however `fn` ends.
 *
 * @param options The listener's options, or a function that gives them once
 * the worker is up (for an expiry counted from then, or a ticket of its URL).
 */
export function withDesktop(
  options: DesktopOptions | ((worker: LocalSignaling) => DesktopOptions | Promise<DesktopOptions>),
  fn: (desktop: Desktop) => Promise<void>,
  vars?: Record<string, string>,
): Promise<void> {
  return withWorker(async (worker) => {
    const listener = await WebRTCListener.listen({
      url: worker.url,
      createServer: () => createTestServer(),
      ...LOCAL,
      ...(typeof options === "function" ? await options(worker) : options),
    });
    try {
      await fn({ worker, listener, ticket: listener.ticket! });
    } finally {
      await listener.close();
    }
  }, vars);
}

/** A hub with one peer, on an in-memory signalling pair. */
export class OnePeerHub implements SignalingHub {
  onpeerjoin?: (peer: string) => void;
  onpeerleave?: (peer: string) => void;
  onclose?: (error?: Error) => void;
  readonly #channel: Signaling;
  constructor(channel: Signaling) {
    this.#channel = channel;
  }
  get peers() {
    return ["peer-1"];
  }
  signaling() {
    return this.#channel;
  }
  async close() {
    await this.#channel.close();
    this.onclose?.();
  }
}
