/** Sessions that outlive their peer connection, between real peers on loopback. */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { MemorySignaling, WebRTCConnection } from "../mod.ts";
import { RESUME_BACKOFF_FIRST } from "../src/constants.ts";
import { useClock } from "../src/_clock.ts";
import { deadline } from "../src/_async.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { LOCAL, text } from "./_helpers.ts";
import { gatedServers, resumablePair } from "./_resume_pair.ts";
import { z } from "zod";

const STEP = 10_000;

Deno.test("With resume on, a call in flight when the peer connection is lost completes after the redial, on the same server, without a second initialize", async () => {
  // Each dial of the agent meets the desktop again; the test moves the agent's clock.
  const { agent, desktop, clock } = resumablePair();

  const gated = gatedServers();
  desktop.ontransport = (transport) => void gated.createServer().connect(transport);
  void desktop.connect().catch(() => {});
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "1");

    const call = client.callTool({ name: "slow" });
    await deadline(gated.slowStarted, STEP);
    const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
    // Nothing heard for longer than the idle timeout: the path is lost.
    await clock.advance(9_000);
    await deadline(lost, STEP);
    assert.equal(agent.connected, false);
    desktop.onerror = () => {};
    gated.open();
    // The first redial waits its backoff.
    await clock.advance(RESUME_BACKOFF_FIRST);

    assert.equal(text(await deadline(call, STEP)), "done");
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "2");
    assert.equal(agent.dials, 2);
    const { servers, slowCalls, initializations } = gated.counts;
    assert.deepEqual({ servers, slowCalls, initializations }, {
      servers: 1,
      slowCalls: 1,
      initializations: 1,
    });
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});

Deno.test("With resume on, a lost connection's session is kept for the grace period, then ends as without it", async () => {
  const [a, b] = MemorySignaling.createPair();
  const agent = new WebRTCConnection({ ...LOCAL, linger: 0, resume: true, signaling: a });
  const desktop = new WebRTCConnection({
    ...LOCAL,
    initiator: false,
    resume: true,
    resumeGrace: 60_000,
    signaling: b,
  });
  const agentClock = new ManualClock();
  const desktopClock = new ManualClock();
  useClock(agent, agentClock);
  useClock(desktop, desktopClock);
  let ended!: () => void;
  const serverEnded = new Promise<void>((resolve) => (ended = resolve));
  const errors: string[] = [];
  desktop.ontransport = (transport) => {
    const server = new McpServer({ name: "desktop", version: "1.0.0" });
    server.server.onclose = () => ended();
    server.server.onerror = (error) => errors.push(error.message);
    void server.connect(transport);
  };
  desktop.onerror = () => {};
  void desktop.connect().catch(() => {});
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    const lost = Promise.all(
      [agent, desktop].map((connection) =>
        new Promise<void>((resolve) => (connection.ondisconnect = () => resolve()))
      ),
    );
    await agentClock.advance(9_000);
    await deadline(lost, STEP);
    // The agent's side gives up (its signalling served one dial); the desktop still holds the session.
    let closed = false;
    void serverEnded.then(() => (closed = true));
    await desktopClock.advance(59_999);
    assert.equal(closed, false);
    await desktopClock.advance(1);
    await deadline(serverEnded, STEP);
    assert.match(errors.join("\n"), /not back within 60000 ms \(resumeGrace\)/);
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});

Deno.test("With resume on, a session whose desktop restarted fails at the first redial with an error that says so", async () => {
  const desktops: WebRTCConnection[] = [];
  const agent = new WebRTCConnection({
    ...LOCAL,
    linger: 0,
    resume: true,
    signaling: () => {
      const [a, b] = MemorySignaling.createPair();
      // Each dial meets a new desktop, which holds no session of the one before.
      const desktop = new WebRTCConnection({
        ...LOCAL,
        initiator: false,
        resume: true,
        signaling: b,
      });
      desktop.ontransport = (transport) => {
        const server = new McpServer({ name: "desktop", version: "1.0.0" });
        server.registerTool("count", {}, () => ({ content: [{ type: "text", text: "1" }] }));
        void server.connect(transport);
      };
      desktop.onerror = () => {};
      void desktop.connect().catch(() => {});
      desktops.push(desktop);
      return a;
    },
  });
  const clock = new ManualClock();
  useClock(agent, clock);
  const client = new Client({ name: "agent", version: "1.0.0" });
  const errors: string[] = [];
  client.onerror = (error) => errors.push(error.message);
  const closed = new Promise<void>((resolve) => (client.onclose = resolve));
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "1");
    const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
    await clock.advance(9_000);
    await deadline(lost, STEP);
    // The first desktop is gone for good: a restart.
    await desktops[0].close();
    await clock.advance(RESUME_BACKOFF_FIRST);
    await deadline(closed, STEP);
    assert.equal(agent.dials, 2);
    assert.match(
      errors.join("\n"),
      /Cannot resume the session as the other peer refused the claim of its connection \("unknown connection: the serving side restarted, the grace period passed, or the claim was used before"\)/,
    );
  } finally {
    await client.close();
    await agent.close();
    await Promise.all(desktops.map((desktop) => desktop.close()));
  }
});

Deno.test("With resume on, 1,000 calls with 5 lost connections among them each run once and each result arrives once", async () => {
  const { agent, desktop, clock } = resumablePair();
  desktop.onerror = () => {};
  const runs = new Map<number, number>();
  desktop.ontransport = (transport) => {
    const server = new McpServer({ name: "desktop", version: "1.0.0" });
    server.registerTool("echo", { inputSchema: { n: z.number() } }, ({ n }) => {
      runs.set(n, (runs.get(n) ?? 0) + 1);
      return { content: [{ type: "text", text: String(n) }] };
    });
    void server.connect(transport);
  };
  void desktop.connect().catch(() => {});
  const client = new Client({ name: "agent", version: "1.0.0" });
  const total = 1000;
  const window = 20;
  const cuts = new Set([150, 320, 500, 710, 880]);
  const results: number[] = [];
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    for (let start = 0; start < total; start += window) {
      const calls = Array.from(
        { length: window },
        (_, i) =>
          client.callTool({ name: "echo", arguments: { n: start + i } })
            .then((result) => results.push(Number(text(result)))),
      );
      if ([...cuts].some((cut) => cut >= start && cut < start + window)) {
        // The connection is lost with these calls in flight.
        const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
        await clock.advance(9_000);
        await deadline(lost, STEP);
        await clock.advance(RESUME_BACKOFF_FIRST);
      }
      await deadline(Promise.all(calls), STEP);
    }
    assert.equal(agent.dials, 6);
    assert.deepEqual(
      [...results].sort((x, y) => x - y),
      Array.from({ length: total }, (_, i) => i),
    );
    assert.equal(runs.size, total);
    assert.ok([...runs.values()].every((count) => count === 1));
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});
