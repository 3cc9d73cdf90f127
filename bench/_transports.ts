/**
 * The transports the benchmark compares, each behind the same shape: set up
 * once, connect an MCP client to a fresh MCP server as often as asked, tear
 * down. Everything listens and connects on 127.0.0.1 only.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";
import {
  type ConnectStep,
  MemorySignaling,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
  WebRTCServerTransport,
} from "../mod.ts";
import { BareTransport, nativePair, rawTransfer } from "./_native.ts";

/**
 * The transports compared, in table order. `floor` is node-datachannel's
 * native API with nothing of this module (`bench/_native.ts`): the SDK over a
 * bare transport for connect and round trip, raw bytes for the results.
 */
export const TRANSPORT_IDS = [
  "floor",
  "webrtc",
  "webrtc-worker",
  "in-memory",
  "streamable-http",
] as const;

/** One of {@linkcode TRANSPORT_IDS}. */
export type TransportId = typeof TRANSPORT_IDS[number];

/** A connected client and how to end its session (both sides). */
export interface Session {
  client: Client;
  close(): Promise<void>;
  /**
   * Moves `bytes` by other means than a tool result (the floor's raw
   * channel); resolves with the milliseconds it took.
   */
  transfer?(bytes: number): Promise<number>;
}

/**
 * When each step of a WebRTC connect happened, in ms after the connect
 * started, as the client transport reported it (`onconnectstep`):
 * `signaling` (started: for a room, joined with the host there and the
 * hello handed over), `offer` (the offer handed over, which sealed
 * signalling does once the host's hello opened), `answer` (applied), `ice`,
 * `dtls`, `channel` (the `mcp` channel open).
 */
export type ConnectSteps = Partial<Record<ConnectStep, number>>;

/** A transport under test. */
export interface Bench {
  /** Connects a client to a fresh server; times construct transports → initialized. */
  connect(): Promise<{ session: Session; ms: number; steps?: ConnectSteps }>;
  /** Stops whatever `connect()` relied on (the HTTP listener). */
  teardown(): Promise<void>;
}

/**
 * Peers on one machine: no STUN server and only the loopback interface, so no
 * other address is ever contacted.
 */
const LOOPBACK = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

/**
 * The receive cap for the WebRTC peers. The default (64 MiB) counts the whole
 * JSON-RPC message, so a 64 MiB tool result plus its envelope would be dropped;
 * the other transports have no cap.
 */
const MAX_RECEIVE_SIZE = 128 * 1024 * 1024;

/** The options every WebRTC peer of the benchmark shares. */
const PEER = { maxReceiveSize: MAX_RECEIVE_SIZE, ...LOOPBACK };

const blobs = new Map<number, string>();

/**
 * Builds (once) the `blob` tool's text of `bytes` ASCII bytes, so that making
 * it is not part of a timed transfer nor of its memory increase.
 */
export function prepareBlob(bytes: number): string {
  let text = blobs.get(bytes);
  if (text === undefined) {
    // A flat one-byte string, unlike "x".repeat(n)'s tree of halves.
    text = new TextDecoder().decode(new Uint8Array(bytes).fill(0x78));
    blobs.set(bytes, text);
  }
  return text;
}

/** An MCP server with an `echo` tool and a `blob` tool returning N bytes of text. */
export function createServer(): McpServer {
  const server = new McpServer({ name: "bench", version: "1.0.0" });
  server.registerTool(
    "echo",
    { description: "Returns its text", inputSchema: { text: z.string() } },
    ({ text }) => ({ content: [{ type: "text", text }] }),
  );
  server.registerTool(
    "blob",
    {
      description: "Returns a text result of the given number of bytes",
      inputSchema: { bytes: z.number().int().nonnegative() },
    },
    ({ bytes }) => ({ content: [{ type: "text", text: prepareBlob(bytes) }] }),
  );
  return server;
}

function createClient(): Client {
  return new Client({ name: "bench-client", version: "1.0.0" });
}

/**
 * What `connect()` returns once `client` is initialized: the time since
 * `started`, and a session that `close` ends.
 */
function connected(
  started: number,
  client: Client,
  close: () => Promise<void>,
): { session: Session; ms: number } {
  const ms = performance.now() - started;
  return { ms, session: { client, close } };
}

/** Records when each step of the transport's connect happened, in ms after `started`. */
function timeSteps(transport: WebRTCClientTransport, started: number): ConnectSteps {
  const steps: ConnectSteps = {};
  transport.onconnectstep = (step) => void (steps[step] = performance.now() - started);
  return steps;
}

/** Closes the client, then its server. */
async function closeBoth(client: Client, server: McpServer): Promise<void> {
  await client.close();
  await server.close();
}

/** This module's transports over a real data channel, with in-memory signalling. */
function webrtc(): Bench {
  return {
    async connect() {
      const client = createClient();
      const started = performance.now();
      // Made inside the timer, as webrtc-worker's listener and Streamable
      // HTTP make theirs: per session, once the session's first request came.
      const server = createServer();
      const [clientSignaling, serverSignaling] = MemorySignaling.createPair();
      await server.connect(new WebRTCServerTransport({ signaling: serverSignaling, ...PEER }));
      const transport = new WebRTCClientTransport({ signaling: clientSignaling, ...PEER });
      const steps = timeSteps(transport, started);
      await client.connect(transport);
      return { ...connected(started, client, () => closeBoth(client, server)), steps };
    },
    async teardown() {},
  };
}

/** The SDK's linked in-memory pair: no serialisation at all, the floor. */
function inMemory(): Bench {
  return {
    async connect() {
      const server = createServer();
      const client = createClient();
      const started = performance.now();
      const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
      await server.connect(serverTransport);
      await client.connect(clientTransport);
      return connected(started, client, () => closeBoth(client, server));
    },
    async teardown() {},
  };
}

/**
 * The SDK's Streamable HTTP transport (web-standard server transport on
 * `Deno.serve`), stateful: one server and transport per session, as a
 * deployment serving several clients would run it.
 */
function streamableHttp(): Bench {
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  const servers = new Set<McpServer>();
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: (addr) => listening.resolve(addr) },
    async (request) => {
      const id = request.headers.get("mcp-session-id");
      if (id !== null) {
        const transport = sessions.get(id);
        if (transport === undefined) return new Response("Unknown session", { status: 404 });
        return await transport.handleRequest(request);
      }
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => crypto.randomUUID(),
        onsessioninitialized: (sessionId) => void sessions.set(sessionId, transport),
        onsessionclosed: (sessionId) => void sessions.delete(sessionId),
      });
      const server = createServer();
      servers.add(server);
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
        servers.delete(server);
      };
      await server.connect(transport);
      return await transport.handleRequest(request);
    },
  );
  return {
    async connect() {
      const { port } = await listening.promise;
      const client = createClient();
      const started = performance.now();
      const transport = new StreamableHTTPClientTransport(
        new URL(`http://127.0.0.1:${port}/mcp`),
      );
      await client.connect(transport);
      return connected(started, client, async () => {
        // DELETE ends the server's session (and its open GET stream).
        await transport.terminateSession();
        await client.close();
      });
    },
    async teardown() {
      await Promise.all([...servers].map((server) => server.close()));
      await http.shutdown();
    },
  };
}

/**
 * This module as deployed: a {@linkcode WebRTCListener} with a ticket on the
 * signalling worker (Miniflare on 127.0.0.1), one agent after another dialing
 * it with {@linkcode TicketSignaling} (signalling sealed end to end). The
 * timer runs from the agent joining the room to `initialize` done; the worker
 * and the listener's room are set up before.
 */
function webrtcWorker(): Bench {
  const setUp = (async () => {
    // Loaded here so that the other transports' processes never load Miniflare.
    const { startLocalSignaling } = await import("../worker/local.ts");
    const worker = await startLocalSignaling();
    try {
      const listener = await WebRTCListener.listen({
        url: worker.url,
        createServer,
        ...PEER,
      });
      return { worker, listener };
    } catch (error) {
      await worker.close();
      throw error;
    }
  })();
  return {
    async connect() {
      const { listener } = await setUp;
      const client = createClient();
      const started = performance.now();
      const transport = new WebRTCClientTransport({
        signaling: new TicketSignaling(listener.ticket!, { hostTimeout: 5_000 }),
        ...PEER,
      });
      const steps = timeSteps(transport, started);
      await client.connect(transport);
      const measured = connected(started, client, async () => {
        await client.close();
        // Let the desktop end its side too, so the next agent meets an idle listener.
        const until = performance.now() + 2_000;
        while (listener.sessions.length > 0 && performance.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      });
      return { ...measured, steps };
    },
    async teardown() {
      const { worker, listener } = await setUp.catch(() => ({ worker: null, listener: null }));
      await listener?.close();
      await worker?.close();
    },
  };
}

/**
 * The floor: a native channel pair negotiated in-process (no signalling, no
 * framing), the SDK over a bare transport on it; results as raw bytes.
 */
function floor(): Bench {
  return {
    async connect() {
      const server = createServer();
      const client = createClient();
      const started = performance.now();
      const pair = await nativePair();
      await server.connect(new BareTransport(pair.answerer));
      await client.connect(new BareTransport(pair.offerer));
      const { session, ms } = connected(started, client, async () => {
        await closeBoth(client, server);
        await pair.close();
      });
      // From the server's side to the client's, as a tool result goes.
      const transfer = (bytes: number) => rawTransfer(pair.answerer, pair.offerer, bytes);
      return { ms, session: { ...session, transfer } };
    },
    async teardown() {},
  };
}

/** Sets up the transport named `id`. */
export function createBench(id: TransportId): Bench {
  switch (id) {
    case "floor":
      return floor();
    case "webrtc":
      return webrtc();
    case "webrtc-worker":
      return webrtcWorker();
    case "in-memory":
      return inMemory();
    case "streamable-http":
      return streamableHttp();
  }
}
