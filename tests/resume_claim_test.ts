/** The claim that binds a redial to the lost connection's sessions, between real peers on loopback. */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import { MemorySignaling, WebRTCConnection } from "../mod.ts";
import { INCOMING_CHANNEL_OPEN_TIMEOUT, RESUME_BACKOFF_FIRST } from "../src/constants.ts";
import { deadline } from "../src/_async.ts";
import { SYSTEM_CLOCK } from "../src/_clock.ts";
import { Peer } from "../src/peer.ts";
import {
  askOnChannel,
  type Claim,
  CLAIM_LABEL,
  type ClaimProbe,
  claimProbes,
  makeClaim,
} from "../src/_resume_claim.ts";
import { createTestServer, LOCAL, text } from "./_helpers.ts";
import { gatedServers, resumablePair } from "./_resume_pair.ts";

const STEP = 10_000;

/** An agent and a desktop with resume on; each dial of the agent meets the desktop again. */
function pair() {
  const { agent, desktop, clock } = resumablePair();
  desktop.onerror = () => {};
  const probe: ClaimProbe = { grants: [], claims: [] };
  claimProbes.set(agent, probe);
  const gated = gatedServers();
  desktop.ontransport = (transport) => void gated.createServer().connect(transport);
  void desktop.connect().catch(() => {});
  const client = new Client({ name: "agent", version: "1.0.0" });
  const errors: string[] = [];
  client.onerror = (error) => errors.push(error.message);
  const closed = new Promise<void>((resolve) => (client.onclose = resolve));
  /** Loses the agent's path (silence past the idle timeout) and lets the first redial go. */
  const lose = async () => {
    const lost = new Promise<void>((resolve) => (agent.ondisconnect = () => resolve()));
    await clock.advance(9_000);
    await deadline(lost, STEP);
    await clock.advance(RESUME_BACKOFF_FIRST);
  };
  /** Connects the client and waits for the desktop's first grant. */
  const connect = async () => {
    await deadline(client.connect(agent.openTransport()), STEP);
    await granted(probe);
  };
  /** Calls `slow`, which the test expects refused, and waits until the desktop holds it. */
  const callSlow = async () => {
    const call = client.callTool({ name: "slow" });
    call.catch(() => {});
    await deadline(gated.slowStarted, STEP);
    return { call };
  };
  const stop = async () => {
    gated.open();
    await client.close();
    await agent.close();
    await desktop.close();
  };
  return {
    agent,
    desktop,
    client,
    probe,
    errors,
    closed,
    lose,
    connect,
    callSlow,
    stop,
    open: gated.open,
    slowStarted: () => deadline(gated.slowStarted, STEP),
    counts: () => ({ servers: gated.counts.servers, slowCalls: gated.counts.slowCalls }),
  };
}

/** Waits until the agent holds its `count`-th grant from the desktop. */
function granted(probe: ClaimProbe, count = 1): Promise<void> {
  if (probe.grants.length >= count) return Promise.resolve();
  return deadline(
    new Promise<void>((resolve) => {
      probe.ongrant = () => {
        if (probe.grants.length >= count) resolve();
      };
    }),
    STEP,
  );
}

/** Checks the refusal ended the session with the claim's reason, and nothing resumed. */
async function assertRefused(
  t: ReturnType<typeof pair>,
  call: Promise<unknown>,
  reason: RegExp,
): Promise<void> {
  await assert.rejects(deadline(call, STEP));
  await deadline(t.closed, STEP);
  assert.match(
    t.errors.join("\n"),
    /Cannot resume the session as the other peer refused the claim of its connection/,
  );
  assert.match(t.errors.join("\n"), reason);
  assert.deepEqual(t.counts(), { servers: 1, slowCalls: 1 });
}

Deno.test("A claim with a wrong code is refused, and the session in flight ends with that error instead of resuming", async () => {
  const t = pair();
  try {
    await t.connect();
    const { call } = await t.callSlow();
    t.probe.forge = (claim) => ({
      ...claim,
      mac: claim.mac.startsWith("A") ? "B" + claim.mac.slice(1) : "A" + claim.mac.slice(1),
    });
    await t.lose();
    await assertRefused(t, call, /wrong claim code/);
  } finally {
    await t.stop();
  }
});

Deno.test("A claim sent again after it was accepted is refused: the accepted claim's connection id is forgotten", async () => {
  const t = pair();
  try {
    await t.connect();
    // The honest resume works, and its claim is kept.
    const first = t.client.callTool({ name: "count" });
    await t.lose();
    assert.equal(text(await deadline(first, STEP)), "1");
    assert.equal(t.probe.claims.length, 1);
    await granted(t.probe, 2);
    const accepted = t.probe.claims[0];
    const { call } = await t.callSlow();
    t.probe.forge = () => accepted;
    await t.lose();
    await assertRefused(t, call, /unknown connection/);
  } finally {
    await t.stop();
  }
});

Deno.test("A claim made for another connection's fingerprints is refused, though it names a live connection id", async () => {
  const t = pair();
  try {
    await t.connect();
    const { call } = await t.callSlow();
    const fingerprint = Array.from({ length: 32 }, () => "AB").join(":");
    t.probe.forge = (_claim: Claim, grant) =>
      makeClaim(grant, { dialling: fingerprint, serving: fingerprint });
    await t.lose();
    await assertRefused(t, call, /wrong claim code/);
  } finally {
    await t.stop();
  }
});

Deno.test("A session is not resumed on a connection that made no claim, though the session's id is right", async () => {
  const t = pair();
  try {
    await t.connect();
    const { call } = await t.callSlow();
    t.probe.withhold = true;
    await t.lose();
    await assert.rejects(deadline(call, STEP));
    await deadline(t.closed, STEP);
    assert.match(
      t.errors.join("\n"),
      /refused it \("no accepted claim binds this connection to the session's"\)/,
    );
    assert.deepEqual(t.counts(), { servers: 1, slowCalls: 1 });
  } finally {
    await t.stop();
  }
});

Deno.test("An honest claim resumes the session in flight, and each redial gets a new connection id", async () => {
  const t = pair();
  try {
    await t.connect();
    const call = t.client.callTool({ name: "slow" });
    await t.slowStarted();
    await t.lose();
    await granted(t.probe, 2);
    t.open();
    assert.equal(text(await deadline(call, STEP)), "done");
    assert.equal(text(await deadline(t.client.callTool({ name: "count" }), STEP)), "1");
    assert.notEqual(t.probe.grants[0].connection, t.probe.grants[1].connection);
    assert.equal(t.probe.claims[0].connection, t.probe.grants[0].connection);
    assert.deepEqual(t.counts(), { servers: 1, slowCalls: 1 });
  } finally {
    await t.stop();
  }
});

Deno.test("A serving connection answers one claim channel per peer connection: one on which nothing comes is closed after INCOMING_CHANNEL_OPEN_TIMEOUT, and another is then closed unanswered", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  const desktop = new WebRTCConnection({
    ...LOCAL,
    signaling: desktopSide,
    initiator: false,
    resume: true,
  });
  desktop.onerror = () => {};
  desktop.ontransport = (transport) => void createTestServer().connect(transport);
  void desktop.connect().catch(() => {});
  // An agent that speaks the claim protocol by hand.
  const agent = new Peer({
    ...LOCAL,
    signaling: agentSide,
    initiator: true,
    connectTimeout: STEP,
    waitForPeer: false,
  });
  try {
    await deadline(agent.connect(), STEP);
    // A claim channel that says nothing is closed once nothing came on it in time.
    const since = Date.now();
    const silent = agent.createChannel(CLAIM_LABEL);
    await deadline(
      new Promise<void>((resolve) => silent.addEventListener("close", () => resolve())),
      INCOMING_CHANNEL_OPEN_TIMEOUT + STEP,
    );
    assert.ok(Date.now() - since >= INCOMING_CHANNEL_OPEN_TIMEOUT - 100, "closed by the timeout");
    // The dial had its claim channel: another is closed at once, unanswered.
    const asked = Date.now();
    const answer = await askOnChannel(
      agent.createChannel(CLAIM_LABEL),
      { t: "hello" },
      SYSTEM_CLOCK,
      STEP,
    );
    assert.equal(answer, undefined, "a second claim channel gets no answer");
    assert.ok(Date.now() - asked < STEP / 2, "it is closed, not left to time out");
  } finally {
    await agent.close();
    await desktop.close();
  }
});
