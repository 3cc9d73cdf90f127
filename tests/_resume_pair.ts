/** Two `WebRTCConnection`s with resume on, on loopback, for the resume tests. */
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { MemorySignaling, type Signaling, WebRTCConnection } from "../mod.ts";
import { useClock } from "../src/_clock.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { LOCAL } from "./_helpers.ts";

/**
 * An agent and a desktop with resume on: each dial of the agent makes a
 * signalling pair, and the desktop answers on its other end. The agent's
 * liveness reads `clock`, so its path is lost when the test moves it.
 */
export function resumablePair(): {
  agent: WebRTCConnection;
  desktop: WebRTCConnection;
  clock: ManualClock;
} {
  const ready: Signaling[] = [];
  const waiting: ((signaling: Signaling) => void)[] = [];
  const agent = new WebRTCConnection({
    ...LOCAL,
    linger: 0,
    resume: true,
    signaling: () => {
      const [a, b] = MemorySignaling.createPair();
      const waiter = waiting.shift();
      if (waiter) waiter(b);
      else ready.push(b);
      return a;
    },
  });
  const desktop = new WebRTCConnection({
    ...LOCAL,
    initiator: false,
    resume: true,
    signaling: () =>
      ready.length > 0
        ? ready.shift()!
        : new Promise<Signaling>((resolve) => waiting.push(resolve)),
  });
  const clock = new ManualClock();
  useClock(agent, clock);
  return { agent, desktop, clock };
}

/**
 * A desktop's servers for the resume tests: each has a `count` tool and a
 * `slow` tool held by a gate until `open()`, and `counts` tells how many
 * servers were made, slow calls started, sessions initialized and closed;
 * `closed` resolves when the first server closes.
 */
export function gatedServers(): {
  counts: { servers: number; slowCalls: number; initializations: number; closed: number };
  createServer: () => McpServer;
  open: () => void;
  slowStarted: Promise<void>;
  closed: Promise<void>;
} {
  const counts = { servers: 0, slowCalls: 0, initializations: 0, closed: 0 };
  let counter = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let started!: () => void;
  const slowStarted = new Promise<void>((resolve) => (started = resolve));
  let firstClosed!: () => void;
  const closed = new Promise<void>((resolve) => (firstClosed = resolve));
  const createServer = () => {
    counts.servers++;
    const server = new McpServer({ name: "desktop", version: "1.0.0" });
    server.registerTool("count", {}, () => ({
      content: [{ type: "text", text: String(++counter) }],
    }));
    server.registerTool("slow", {}, async () => {
      counts.slowCalls++;
      started();
      await gate;
      return { content: [{ type: "text", text: "done" }] };
    });
    server.server.oninitialized = () => counts.initializations++;
    server.server.onclose = () => {
      counts.closed++;
      firstClosed();
    };
    return server;
  };
  return { counts, createServer, open: () => open(), slowStarted, closed };
}
