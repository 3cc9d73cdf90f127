/** One peer connection carrying many MCP sessions, between real peers on loopback. */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import { MemorySignaling, type Signaling, WebRTCConnection, WebRTCListener } from "../mod.ts";
import type { SignalingRoom } from "../src/signaling/mod.ts";
import { FRAME_KEEPALIVE, type MemoryBudget } from "../src/framing.ts";
import { CHUNK_SIZE, DEFAULT_KEEPALIVE_INTERVAL, FAIR_WINDOW } from "../src/constants.ts";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import type { WebRTCSessionTransport } from "../mod.ts";
import { useClock } from "../src/_clock.ts";
import { Peer } from "../src/peer.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { blobText, createTestServer, greet, LOCAL, text, until } from "./_helpers.ts";

/** A desktop answering one agent: a fresh test server per session. */
function desktopFor(signaling: Signaling): { desktop: WebRTCConnection; servers: number[] } {
  const desktop = new WebRTCConnection({ signaling, initiator: false, ...LOCAL });
  const servers: number[] = [];
  desktop.ontransport = (transport) => {
    servers.push(servers.length + 1);
    void createTestServer().connect(transport);
  };
  void desktop.connect().catch(() => {});
  return { desktop, servers };
}

Deno.test("WebRTCConnection carries many sessions on one peer connection, a server each, dialled once", async () => {
  const [a, b] = MemorySignaling.createPair();
  const { desktop, servers } = desktopFor(b);
  const agent = new WebRTCConnection({ signaling: a, linger: 0, ...LOCAL });
  const clients = Array.from({ length: 12 }, (_, i) => new Client({ name: `c${i}`, version: "1" }));
  try {
    for (const client of clients) await client.connect(agent.openTransport());
    assert.equal(agent.sessions, 12);
    assert.equal(agent.dials, 1);
    assert.equal(servers.length, 12);
    await Promise.all(clients.map((client, i) => greet(client, `session ${i}`)));
    const path = await agent.getConnectionPath();
    assert.equal(path?.localCandidateType, "host");
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection: closing one session leaves the others working", async () => {
  const [a, b] = MemorySignaling.createPair();
  const { desktop } = desktopFor(b);
  const agent = new WebRTCConnection({ signaling: a, linger: 0, ...LOCAL });
  const one = new Client({ name: "one", version: "1" });
  const two = new Client({ name: "two", version: "1" });
  try {
    await one.connect(agent.openTransport());
    await two.connect(agent.openTransport());
    const closed = new Promise<void>((resolve) => (one.onclose = resolve));
    await one.close();
    await closed;
    assert.equal(agent.sessions, 1);
    assert.ok(agent.connected);
    await greet(two, "still here");
  } finally {
    await two.close();
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection: a large result on one session does not hold up small calls on another", async () => {
  const [a, b] = MemorySignaling.createPair();
  const { desktop } = desktopFor(b);
  const agent = new WebRTCConnection({ signaling: a, linger: 0, ...LOCAL });
  const bulk = new Client({ name: "bulk", version: "1" });
  const small = new Client({ name: "small", version: "1" });
  try {
    await bulk.connect(agent.openTransport());
    await small.connect(agent.openTransport());
    let bulkDone = false;
    const large = bulk.callTool({ name: "blob", arguments: { size: 16 * 1024 * 1024 } })
      .then((result) => {
        bulkDone = true;
        return result;
      });
    // Small calls complete while the large one is still on its way.
    let answeredDuring = 0;
    for (let i = 0; i < 20 && !bulkDone; i++) {
      await greet(small, `call ${i}`);
      if (!bulkDone) answeredDuring++;
    }
    assert.ok(answeredDuring > 0, "no small call completed while the large result was in flight");
    assert.equal(text(await large).length, blobText(16 * 1024 * 1024).length);
  } finally {
    await Promise.all([bulk.close(), small.close()]);
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection: a small message of a busy session arrives behind at most FAIR_WINDOW of another session's large message", async () => {
  const [a, b] = MemorySignaling.createPair();
  const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...LOCAL });
  const served: WebRTCSessionTransport[] = [];
  desktop.ontransport = (transport) => void transport.start().then(() => served.push(transport));
  void desktop.connect().catch(() => {});
  const agent = new WebRTCConnection({
    signaling: a,
    linger: 0,
    maxReceiveSize: 32 << 20,
    ...LOCAL,
  });
  const small = agent.openTransport();
  const bulk = agent.openTransport();
  try {
    await small.start();
    await bulk.start();
    await until(() => served.length === 2, 5_000, "both sessions served");
    const [echo, sender] = served;
    // Bytes of the large message read on the agent; and, per small answer, that count
    // when the desktop handed the answer and when the agent got it.
    let bulkRead = 0;
    const channelOf = (t: WebRTCSessionTransport) =>
      (t as unknown as { channel: EventTarget }).channel;
    channelOf(bulk).addEventListener("message", (event) => {
      const data = (event as MessageEvent).data;
      bulkRead += typeof data === "string" ? data.length : data.byteLength;
    });
    const handedAt = new Map<number, number>();
    echo.onmessage = (message) => {
      const id = (message as { id: number }).id;
      handedAt.set(id, bulkRead);
      void echo.send({ jsonrpc: "2.0", id, result: {} });
    };
    const answers: ((ahead: number) => void)[] = [];
    small.onmessage = (message) => {
      const id = (message as { id: number }).id;
      answers[id]?.(bulkRead - handedAt.get(id)!);
    };
    let bulkArrived = false;
    bulk.onmessage = () => (bulkArrived = true);
    const size = 24 << 20;
    const large: JSONRPCMessage = {
      jsonrpc: "2.0",
      method: "notifications/message",
      params: { data: "x".repeat(size) },
    };
    const sent = sender.send(large);
    // Bytes of the large message that overtook each small answer on its way.
    const ahead: number[] = [];
    for (let id = 0; id < 2_000 && !bulkArrived; id++) {
      const answered = new Promise<number>((resolve) => (answers[id] = resolve));
      await small.send({ jsonrpc: "2.0", id, method: "ping" });
      const bytes = await answered;
      if (!bulkArrived) ahead.push(bytes);
    }
    await sent;
    await until(() => bulkArrived, 30_000, "the large message arrived");
    // The first answers go before any report of what the agent read has come back.
    const steady = ahead.slice(5).sort((x, y) => x - y);
    assert.ok(steady.length >= 10, `only ${ahead.length} small messages went beside the large one`);
    const p90 = steady[Math.floor(steady.length * 0.9)];
    assert.ok(
      p90 <= FAIR_WINDOW + CHUNK_SIZE,
      `90% of the small answers were overtaken by up to ${p90} bytes of the large message (limit ${
        FAIR_WINDOW + CHUNK_SIZE
      }; all: ${steady.join(",")})`,
    );
  } finally {
    await Promise.allSettled([small.close(), bulk.close()]);
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection lingers after its last session, so the next one opens without dialling", async () => {
  const [a, b] = MemorySignaling.createPair();
  const { desktop } = desktopFor(b);
  const agent = new WebRTCConnection({ signaling: a, linger: 60_000, ...LOCAL });
  try {
    const first = new Client({ name: "first", version: "1" });
    await first.connect(agent.openTransport());
    await first.close();
    await until(() => agent.sessions === 0, 5_000, "the first session closed");
    assert.ok(agent.connected);
    const second = new Client({ name: "second", version: "1" });
    await second.connect(agent.openTransport());
    await greet(second, "again");
    assert.equal(agent.dials, 1);
    await second.close();
  } finally {
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection dials again for the next session after the peer connection dropped", async () => {
  const desktops: WebRTCConnection[] = [];
  let dials = 0;
  const agent = new WebRTCConnection({
    ...LOCAL,
    linger: 0,
    signaling: () => {
      dials++;
      const [a, b] = MemorySignaling.createPair();
      desktops.push(desktopFor(b).desktop);
      return a;
    },
  });
  try {
    const first = new Client({ name: "first", version: "1" });
    await first.connect(agent.openTransport());
    const dropped = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
    const firstClosed = new Promise<void>((resolve) => (first.onclose = resolve));
    await desktops[0].close();
    await dropped;
    await firstClosed;
    const second = new Client({ name: "second", version: "1" });
    await second.connect(agent.openTransport());
    await greet(second, "redialled");
    assert.equal(dials, 2);
    assert.equal(agent.dials, 2);
    await second.close();
  } finally {
    await agent.close();
    await Promise.all(desktops.map((desktop) => desktop.close()));
  }
});

Deno.test("WebRTCConnection given one Signaling cannot dial twice and says why", async () => {
  const [a, b] = MemorySignaling.createPair();
  const { desktop } = desktopFor(b);
  const agent = new WebRTCConnection({ signaling: a, linger: 0, ...LOCAL });
  try {
    const first = new Client({ name: "first", version: "1" });
    await first.connect(agent.openTransport());
    await first.close();
    await until(() => !agent.connected, 5_000, "the connection closed with its last session");
    await assert.rejects(
      new Client({ name: "second", version: "1" }).connect(agent.openTransport()),
      /Cannot dial the peer again as the connection was given one Signaling/,
    );
  } finally {
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection: a result over one session's receive cap fails that call only; every session goes on", async () => {
  const [a, b] = MemorySignaling.createPair();
  const { desktop } = desktopFor(b);
  const agent = new WebRTCConnection({
    signaling: a,
    linger: 0,
    maxReceiveSize: 1024 * 1024,
    ...LOCAL,
  });
  const big = new Client({ name: "big", version: "1" });
  const other = new Client({ name: "other", version: "1" });
  try {
    await big.connect(agent.openTransport());
    await other.connect(agent.openTransport());
    await assert.rejects(
      big.callTool({ name: "blob", arguments: { size: 2 * 1024 * 1024 } }),
      /too large|exceeds|larger than/i,
    );
    await greet(other, "unharmed");
    await greet(big, "still open");
    assert.equal(agent.sessions, 2);
  } finally {
    await Promise.all([big.close(), other.close()]);
    await agent.close();
    await desktop.close();
  }
});

Deno.test("WebRTCConnection.close() on a serving side still waiting for its first offer ends at once", async () => {
  const [, b] = MemorySignaling.createPair();
  const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...LOCAL });
  desktop.ontransport = () => {};
  const connecting = assert.rejects(desktop.connect(), /closed/);
  const closed = new Promise<void>((resolve) => (desktop.onclose = resolve));
  // Closing must not wait for an offer that never comes.
  await desktop.close();
  await closed;
  await connecting;
});

Deno.test("WebRTCConnection and WebRTCListener refuse a bad budget option when made, naming it", () => {
  const signaling = () => new MemorySignaling();
  for (const bad of [0, -1, NaN, 1.5, Infinity]) {
    assert.throws(
      () => new WebRTCConnection({ signaling, unfinishedMessageTimeout: bad }),
      (error: Error) =>
        error instanceof RangeError && /'unfinishedMessageTimeout'/.test(error.message),
    );
    assert.throws(
      () =>
        new WebRTCListener({
          hub: {} as SignalingRoom,
          createServer: createTestServer,
          unfinishedMessageTimeout: bad,
        }),
      (error: Error) =>
        error instanceof RangeError && /'unfinishedMessageTimeout'/.test(error.message),
    );
  }
  assert.throws(
    () => new WebRTCConnection({ signaling, unfinishedBudget: 5 as unknown as MemoryBudget }),
    (error: Error) => error instanceof TypeError && /'unfinishedBudget'/.test(error.message),
  );
});

Deno.test("A dialling WebRTCConnection sends no keepalive until the other peer shows it speaks the framing", async () => {
  const [a, b] = MemorySignaling.createPair();
  // A raw answerer: it never sends a keepalive unless told to.
  const frames: (string | number)[] = [];
  const answerer = new Peer({
    signaling: b,
    initiator: false,
    ...LOCAL,
    connectTimeout: 5_000,
    waitForPeer: true,
    onchannel: (channel) => {
      channel.binaryType = "arraybuffer";
      channel.addEventListener("message", (event) => {
        const data = (event as MessageEvent).data;
        frames.push(typeof data === "string" ? data : new Uint8Array(data)[0]);
      });
    },
  });
  const agent = new WebRTCConnection({ signaling: a, linger: 0, ...LOCAL });
  const clock = new ManualClock(0);
  useClock(agent, clock);
  try {
    const answered = answerer.connect();
    const session = agent.openTransport();
    await session.start();
    const { channel } = await answered;
    // Its own channel announces the framing, which says nothing of the other peer.
    await clock.advance(3 * DEFAULT_KEEPALIVE_INTERVAL);
    await session.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    await until(() => frames.length > 0, 5_000, "the notification");
    assert.equal(typeof frames[0], "string", `frames before the notification: ${frames}`);
    // The other peer sends a keepalive: it is answered at once, and every interval after.
    channel.send(new Uint8Array([FRAME_KEEPALIVE]));
    await until(() => frames.includes(FRAME_KEEPALIVE), 5_000, "a keepalive in answer");
    await clock.advance(DEFAULT_KEEPALIVE_INTERVAL);
    await until(() => frames.filter((frame) => frame === FRAME_KEEPALIVE).length === 2);
  } finally {
    await agent.close();
    await answerer.close();
  }
});
