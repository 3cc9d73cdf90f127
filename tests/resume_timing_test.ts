/**
 * How soon a resumable connection notices a lost path and how often it dials
 * again, between real peers on loopback, with the agent's clock moved by the
 * test.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { MemorySignaling, type Signaling, WebRTCConnection } from "../mod.ts";
import { RESUME_BACKOFF_FIRST, RESUME_BACKOFF_MAX, RESUME_IDLE_TIMEOUT } from "../src/constants.ts";
import { useClock } from "../src/_clock.ts";
import { deadline } from "../src/_async.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { LOCAL, text } from "./_helpers.ts";

const STEP = 10_000;

/** An agent and a desktop with resume on, meeting through a new signalling pair at each dial. */
function resumablePair(
  refuse: () => boolean = () => false,
  given: (signaling: Signaling, attempt: number) => Signaling = (signaling) => signaling,
) {
  const ready: Signaling[] = [];
  const waiting: ((signaling: Signaling) => void)[] = [];
  const attempts: number[] = [];
  const clock = new ManualClock();
  const agent = new WebRTCConnection({
    ...LOCAL,
    linger: 0,
    resume: true,
    signaling: () => {
      attempts.push(clock.now());
      // The network is down: the signalling cannot be reached.
      if (refuse()) throw new Error("network unreachable");
      const [a, b] = MemorySignaling.createPair();
      const waiter = waiting.shift();
      if (waiter) waiter(b);
      else ready.push(b);
      return given(a, attempts.length);
    },
  });
  agent.onerror = () => {};
  useClock(agent, clock);
  const desktop = new WebRTCConnection({
    ...LOCAL,
    initiator: false,
    resume: true,
    // Only the agent's clock is moved: the desktop, on real time, must not lose it meanwhile.
    idleTimeout: 60_000,
    signaling: () =>
      ready.length > 0
        ? ready.shift()!
        : new Promise<Signaling>((resolve) => waiting.push(resolve)),
  });
  desktop.onerror = () => {};
  let counter = 0;
  desktop.ontransport = (transport) => {
    const server = new McpServer({ name: "desktop", version: "1.0.0" });
    server.registerTool("count", {}, () => ({
      content: [{ type: "text", text: String(++counter) }],
    }));
    void server.connect(transport);
  };
  void desktop.connect().catch(() => {});
  return { agent, desktop, clock, attempts };
}

Deno.test("With resume on, a peer silent for just over RESUME_IDLE_TIMEOUT is taken as lost", async () => {
  const { agent, desktop, clock } = resumablePair();
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "1");
    let lost = false;
    const disconnected = new Promise<void>((resolve) =>
      agent.ondisconnect = () => {
        lost = true;
        resolve();
      }
    );
    // The agent's clock stands still while frames arrive: the silence counts from now.
    await clock.advance(RESUME_IDLE_TIMEOUT);
    assert.equal(lost, false);
    await clock.advance(1);
    await deadline(disconnected, 2_000);
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});

Deno.test("With resume on, a redial that fails is tried again at most RESUME_BACKOFF_MAX later, however long the outage", async () => {
  let down = false;
  const { agent, desktop, clock, attempts } = resumablePair(() => down);
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "1");
    const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
    // Each attempt after the first hears why the one before it failed.
    const heard: [number, string | undefined][] = [];
    agent.onresumeattempt = (attempt, previous) => heard.push([attempt, previous?.message]);
    down = true;
    await clock.advance(RESUME_IDLE_TIMEOUT + 1);
    await deadline(lost, STEP);
    const lostAt = clock.now();
    // Thirty seconds of outage, moved through in 50 ms steps.
    for (let step = 0; step < 600; step++) await clock.advance(50);
    const redials = attempts.slice(1);
    const gaps = redials.map((at, i) => at - (i === 0 ? lostAt : redials[i - 1]));
    assert.ok(redials.length >= 25, `only ${redials.length} redials in 30 s: ${gaps}`);
    assert.ok(gaps.every((gap) => gap <= RESUME_BACKOFF_MAX + 50), `gaps: ${gaps}`);
    assert.deepEqual(heard[0], [1, undefined]);
    assert.equal(heard.length, redials.length);
    for (const [attempt, why] of heard.slice(1)) {
      assert.match(String(why), /network unreachable/, `attempt ${attempt}`);
    }
    // The network is back: the next redial resumes the session.
    down = false;
    for (let step = 0; step < 40 && agent.dials < 2; step++) await clock.advance(50);
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "2");
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});

/** A signalling that closes (both ends) right after it sent the offer. */
class CutAfterOffer implements Signaling {
  readonly #inner: Signaling;
  constructor(inner: Signaling) {
    this.#inner = inner;
  }
  set onmessage(handler: Signaling["onmessage"]) {
    this.#inner.onmessage = handler;
  }
  set onclose(handler: Signaling["onclose"]) {
    this.#inner.onclose = handler;
  }
  set onerror(handler: Signaling["onerror"]) {
    this.#inner.onerror = handler;
  }
  start(options?: Parameters<NonNullable<Signaling["start"]>>[0]): Promise<void> {
    return this.#inner.start?.(options) ?? Promise.resolve();
  }
  async send(message: Parameters<Signaling["send"]>[0]): Promise<void> {
    await this.#inner.send(message);
    if (message.type === "offer") void this.#inner.close();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

Deno.test("With resume on, the desktop answers the next redial after one that failed once it had begun", async () => {
  // The first redial's signalling closes after its offer: the desktop had begun to answer it.
  const { agent, desktop, clock, attempts } = resumablePair(
    () => false,
    (signaling, attempt) => attempt === 2 ? new CutAfterOffer(signaling) : signaling,
  );
  useClock(desktop, clock);
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    assert.equal(text(await deadline(client.callTool({ name: "count" }), STEP)), "1");
    const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
    await clock.advance(RESUME_IDLE_TIMEOUT + 1);
    await deadline(lost, STEP);
    const call = client.callTool({ name: "count" });
    // Awaited below; should a step before fail, its rejection at close is not left unhandled.
    call.catch(() => {});
    const failed = [agent, desktop].map((side) =>
      new Promise<void>((resolve) => (side.onerror = () => resolve()))
    );
    await clock.advance(RESUME_BACKOFF_FIRST);
    // Both sides' dials of the first redial fail; their waits (the agent's backoff, the
    // desktop's pause before it answers again) are on the clock.
    await deadline(Promise.all(failed), STEP);
    // The waits end as the clock moves; each side's next dial is its third.
    for (let step = 0; step < 40 && (agent.dials < 3 || desktop.dials < 3); step++) {
      await clock.advance(50);
      // A turn of the event loop, for the failed dials' ends to settle.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    assert.equal(text(await deadline(call, STEP)), "2");
    assert.equal(attempts.length, 3);
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});
