/**
 * What one agent can make a listener hold through resumable sessions: the
 * sessions it keeps for a resume, and what they keep for a resend. The agent
 * here speaks the resume protocol by hand, as a hostile one would.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import {
  MemorySignaling,
  type Signaling,
  type SignalingHub,
  WebRTCConnection,
  WebRTCListener,
} from "../mod.ts";
import { RESUME_BACKOFF_FIRST, SESSION_LIMIT_REACHED } from "../src/constants.ts";
import { deadline } from "../src/_async.ts";
import { useClock } from "../src/_clock.ts";
import { type ClaimProbe, claimProbes } from "../src/_resume_claim.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { heldSessions } from "../src/webrtc_connection.ts";
import { createTestServer, LOCAL, OnePeerHub, until } from "./_helpers.ts";

/** A session id as the resume protocol takes one (22 base64url characters). */
function sessionId(n: number): string {
  return `session-${String(n).padStart(14, "0")}`;
}

/**
 * Opens a channel of `agent`, starts session `id` on it by hand and sends a
 * ping; resolves with the ping's answer (a result, or the error of a refused
 * session) and the channel's transport.
 */
async function startSession(agent: WebRTCConnection, id: string) {
  const transport = agent.openTransport();
  const received: JSONRPCMessage[] = [];
  /** Resolves with the answer to request `id`. */
  const answer = async (id: number) => {
    const find = () => received.find((message) => "id" in message && message.id === id);
    await until(() => find() !== undefined, 10_000, `the answer to request ${id}`);
    return find()!;
  };
  transport.onmessage = (message) => void received.push(message);
  await transport.start();
  await transport.send({
    jsonrpc: "2.0",
    method: "mcp-webrtc/resume",
    params: { session: id, received: 0, resume: false },
  });
  await transport.send({ jsonrpc: "2.0", id: 1, method: "ping" });
  return { transport, answer: await answer(1), received, answerTo: answer };
}

Deno.test("WebRTCListener counts a session its agent left for a resume (its channel closed without an end) against maxSessionsPerAgent until the session ends", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  let created = 0;
  const listener = new WebRTCListener({
    hub: new OnePeerHub(desktopSide),
    ...LOCAL,
    maxSessionsPerAgent: 2,
    // Slots alone are measured here, not the start rate.
    sessionStartsPerSecond: 1_000,
    resumeGrace: 1_000,
    createServer: () => {
      created++;
      return createTestServer();
    },
  });
  const errors: string[] = [];
  listener.onerror = (error) => errors.push(error.message);
  let ended = 0;
  listener.onsessionclose = () => void ended++;
  const connected = new Promise<WebRTCConnection>((resolve) =>
    listener.onagent = (agent) => resolve(agent.connection)
  );
  const agent = new WebRTCConnection({ signaling: agentSide, resume: false, ...LOCAL });
  try {
    for (const n of [1, 2]) {
      const { transport, answer } = await startSession(agent, sessionId(n));
      assert.ok("result" in answer, `session ${n} is served: ${JSON.stringify(answer)}`);
      // Closed without an end: the desktop keeps the session for a resume.
      await transport.close();
    }
    const desktop = await connected;
    await until(() => heldSessions(desktop) === 2, 10_000, "both sessions held for a resume");
    assert.equal(created, 2);
    // Both are still the agent's: a third session is refused, naming the limit.
    const third = await startSession(agent, sessionId(3));
    assert.ok(
      "error" in third.answer,
      `a third session is refused: ${JSON.stringify(third.answer)}`,
    );
    assert.equal(third.answer.error.code, SESSION_LIMIT_REACHED);
    assert.match(third.answer.error.message, /has 2 open/);
    assert.equal(created, 2);
    assert.ok(errors.some((message) => /\(maxSessionsPerAgent\)/.test(message)), errors.join("\n"));
    // Once resumeGrace ends the two held sessions, their slots are the agent's again.
    await until(() => ended === 2, 10_000, "the held sessions ended by resumeGrace");
    const fourth = await startSession(agent, sessionId(4));
    assert.ok(
      "result" in fourth.answer,
      `a session is served again: ${JSON.stringify(fourth.answer)}`,
    );
    assert.equal(created, 3);
  } finally {
    await agent.close();
    await listener.close();
  }
});

Deno.test("WebRTCListener bounds what an agent that never acknowledges makes its sessions keep for a resend, by maxUnacknowledgedBytesPerAgent across its sessions: the session whose message does not fit ends, naming it", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  const listener = new WebRTCListener({
    hub: new OnePeerHub(desktopSide),
    ...LOCAL,
    maxUnacknowledgedBytesPerAgent: 3 * 1024 * 1024,
    createServer: createTestServer,
  });
  const errors: string[] = [];
  listener.onerror = (error) => errors.push(error.message);
  let ended = 0;
  listener.onsessionclose = () => void ended++;
  // Plain sessions: this agent never acknowledges what it reads.
  const agent = new WebRTCConnection({ signaling: agentSide, resume: false, ...LOCAL });
  try {
    const sessions = [
      await startSession(agent, sessionId(1)),
      await startSession(agent, sessionId(2)),
    ];
    // Results of a million characters, two on each session: the fourth does not fit 3 MiB.
    let id = 1;
    for (const [n, session] of [0, 1, 0, 1].entries()) {
      id++;
      await sessions[session].transport.send({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "blob", arguments: { size: 1_000_000 } },
      });
      if (n < 3) {
        const result = await sessions[session].answerTo(id);
        assert.ok(
          "result" in result,
          `result ${n + 1} is sent: ${JSON.stringify(result).slice(0, 200)}`,
        );
      }
    }
    await until(() => ended === 1, 10_000, "the session over the budget ended");
    assert.ok(
      errors.some((message) => /'maxUnacknowledgedBytesPerAgent' \(3145728 bytes/.test(message)),
      errors.join("\n"),
    );
    // The other session goes on.
    await sessions[0].transport.send({ jsonrpc: "2.0", id: 100, method: "ping" });
    assert.ok("result" in await sessions[0].answerTo(100));
  } finally {
    await agent.close();
    await listener.close();
  }
});

Deno.test("WebRTCListener refuses a budget of unacknowledged bytes that is not a positive integer, naming it", () => {
  const [, desktopSide] = MemorySignaling.createPair();
  for (const name of ["maxUnacknowledgedBytesPerAgent", "maxUnacknowledgedBytes"]) {
    assert.throws(
      () =>
        new WebRTCListener({
          hub: new OnePeerHub(desktopSide),
          ...LOCAL,
          [name]: 0,
          createServer: createTestServer,
        }),
      new RegExp(`'${name}' must be a positive integer: received 0`),
    );
  }
});

/** A host's hub in which each dial of the agent is a new peer, on in-memory signalling. */
class DialHub implements SignalingHub {
  onpeerjoin?: (peer: string) => void;
  onpeerleave?: (peer: string) => void;
  onclose?: (error?: Error) => void;
  readonly #ends = new Map<string, Signaling>();
  #dials = 0;
  get peers(): string[] {
    return [];
  }
  signaling(peer: string): Signaling {
    return this.#ends.get(peer)!;
  }
  /** The agent's end of its next dial. */
  dial(): Signaling {
    const [agent, desktop] = MemorySignaling.createPair();
    const peer = `peer-${++this.#dials}`;
    this.#ends.set(peer, desktop);
    queueMicrotask(() => this.onpeerjoin?.(peer));
    return agent;
  }
  async close(): Promise<void> {
    for (const end of this.#ends.values()) await end.close().catch(() => {});
    this.onclose?.();
  }
}

const STEP = 10_000;

/**
 * A listener at `maxSessionsPerAgent: max` and an agent with resume on, whose
 * path `lose()` takes away (silence past its idle timeout on a clock the test
 * moves); its claim waits for `letClaim()` when `holdClaim` is set.
 */
function redialScene(max: number, holdClaim = false, startsPerSecond = 1_000) {
  const hub = new DialHub();
  let created = 0;
  const listener = new WebRTCListener({
    hub,
    ...LOCAL,
    maxSessionsPerAgent: max,
    sessionStartsPerSecond: startsPerSecond,
    createServer: () => {
      created++;
      return createTestServer();
    },
  });
  const errors: string[] = [];
  listener.onerror = (error) => errors.push(error.message);
  let ended = 0;
  listener.onsessionclose = () => void ended++;
  let resumed = 0;
  listener.onagentresume = () => void resumed++;
  const agent = new WebRTCConnection({
    ...LOCAL,
    linger: 0,
    resume: true,
    connectTimeout: STEP,
    signaling: () => hub.dial(),
  });
  agent.onerror = () => {};
  const clock = new ManualClock();
  useClock(agent, clock);
  // The agent's keepalives go while the test does not hold the clock still.
  let ticking = true;
  const ticker = setInterval(() => ticking && void clock.advance(50), 50);
  const claim = Promise.withResolvers<void>();
  const probe: ClaimProbe = {
    grants: [],
    claims: [],
    ...(holdClaim && { forge: async (made) => (await claim.promise, made) }),
  };
  claimProbes.set(agent, probe);
  const clients: Client[] = [];
  return {
    listener,
    errors,
    created: () => created,
    ended: () => ended,
    resumed: () => resumed,
    letClaim: () => claim.resolve(),
    /** A new session of the agent, initialized. */
    async open(): Promise<Client> {
      const client = new Client({ name: "agent", version: "1.0.0" });
      client.onerror = () => {};
      await deadline(client.connect(agent.openTransport()), STEP);
      clients.push(client);
      return client;
    },
    /** Takes the agent's path away; it redials and makes its claim. */
    async lose(): Promise<void> {
      await until(() => probe.grants.length >= 1, STEP, "the desktop's grant");
      const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
      ticking = false;
      await clock.advance(9_000);
      await deadline(lost, STEP);
      await clock.advance(RESUME_BACKOFF_FIRST);
      ticking = true;
      await until(() => probe.claims.length >= 1, STEP, "the redial's claim");
    },
    async stop(): Promise<void> {
      clearInterval(ticker);
      for (const client of clients) await client.close().catch(() => {});
      await agent.close();
      await listener.close();
    },
  };
}

Deno.test("WebRTCListener resumes every session of an agent at maxSessionsPerAgent after its redial: a channel that resumes a session takes no slot", async () => {
  const scene = redialScene(2);
  try {
    const sessions = [await scene.open(), await scene.open()];
    await scene.lose();
    await until(() => scene.resumed() === 1, STEP, "the lost sessions resumed");
    for (const session of sessions) await deadline(session.ping(), STEP);
    assert.equal(scene.created(), 2);
    assert.deepEqual(scene.errors.filter((message) => /maxSessionsPerAgent/.test(message)), []);
  } finally {
    await scene.stop();
  }
});

Deno.test("WebRTCListener resumes every session of an agent that lost its path right after opening them at the start rate: the redial's resume channels draw on the redial's starts, not the lost connection's spent ones", async () => {
  const scene = redialScene(2, false, 1);
  try {
    const sessions = [await scene.open(), await scene.open()];
    await scene.lose();
    await until(() => scene.resumed() === 1, STEP, "the lost sessions resumed");
    for (const session of sessions) await deadline(session.ping(), STEP);
    assert.deepEqual(scene.errors.filter((message) => /sessionStartsPerSecond/.test(message)), []);
    assert.equal(scene.created(), 2);
  } finally {
    await scene.stop();
  }
});

Deno.test("WebRTCListener counts the sessions an agent opens on its redial before its claim with those the claim would take over: a claim that would bring it past maxSessionsPerAgent is refused, naming it", async () => {
  const scene = redialScene(3, true);
  try {
    await scene.open();
    await scene.open();
    await scene.lose();
    // Before the claim: the redial's connection serves two sessions of its own.
    await scene.open();
    await scene.open();
    scene.letClaim();
    await until(
      () =>
        scene.errors.some((message) => /Refused a claim.*\(maxSessionsPerAgent\)/.test(message)),
      STEP,
      "the claim refused",
    );
    assert.equal(scene.resumed(), 0);
    assert.equal(scene.created(), 4);
    // The agent ends the sessions of the refused claim: so does the desktop, at once.
    await until(() => scene.ended() === 2, STEP, "the lost connection's sessions ended");
  } finally {
    await scene.stop();
  }
});

Deno.test("WebRTCListener counts every channel an agent opens against sessionStartsPerSecond, whatever its first message: a loop of refused resume claims is refused at the rate", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  const listener = new WebRTCListener({
    hub: new OnePeerHub(desktopSide),
    ...LOCAL,
    maxSessionsPerAgent: 2,
    sessionStartsPerSecond: 1,
    createServer: createTestServer,
  });
  const errors: string[] = [];
  listener.onerror = (error) => errors.push(error.message);
  const agent = new WebRTCConnection({ signaling: agentSide, resume: false, ...LOCAL });
  const rateRefusals = () => errors.filter((message) => /sessionStartsPerSecond/.test(message));
  try {
    // Twenty channels at once, each a malformed claim the desktop refuses: a
    // burst of two, then one a second, so the others are refused at the rate.
    const ended: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const transport = agent.openTransport();
      const done = Promise.withResolvers<void>();
      transport.onclose = () => done.resolve();
      await transport.start();
      await transport.send({
        jsonrpc: "2.0",
        method: "mcp-webrtc/resume",
        params: { session: "malformed", received: 0 },
      });
      ended.push(done.promise);
    }
    await deadline(Promise.all(ended), STEP);
    assert.ok(rateRefusals().length >= 15, `${rateRefusals().length} refused at the rate`);
  } finally {
    await agent.close();
    await listener.close();
  }
});

Deno.test("WebRTCConnection refuses a budget option that is not a MemoryBudget, naming it", () => {
  const [signaling] = MemorySignaling.createPair();
  for (const name of ["unfinishedBudget", "unacknowledgedBudget", "queuedBudget"]) {
    assert.throws(
      () => new WebRTCConnection({ signaling, ...LOCAL, [name]: 1024 }),
      new RegExp(`'${name}' is not a MemoryBudget`),
    );
  }
});
