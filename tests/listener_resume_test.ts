/** A listener keeps a lost agent's sessions for the agent's redial, through the local signalling worker. */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  type Agent,
  type ListenOptions,
  TicketSignaling,
  WebRTCConnection,
  WebRTCListener,
} from "../mod.ts";
import { RESUME_BACKOFF_FIRST } from "../src/constants.ts";
import { useClock } from "../src/_clock.ts";
import { deadline } from "../src/_async.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { LOCAL, text, withWorker } from "./_helpers.ts";
import { gatedServers } from "./_resume_pair.ts";

const STEP = 10_000;

/** An agent that dials the ticket for each dial, with resume on and a clock the test moves. */
function agentOf(ticket: string, options: { relayAfter?: number } = {}) {
  const connection = new WebRTCConnection({
    ...LOCAL,
    ...options,
    linger: 0,
    resume: true,
    connectTimeout: 10_000,
    signaling: () => new TicketSignaling(ticket, { hostTimeout: 5_000 }),
  });
  const clock = new ManualClock();
  useClock(connection, clock);
  const client = new Client({ name: "agent", version: "1.0.0" });
  const errors: string[] = [];
  client.onerror = (error) => errors.push(error.message);
  const closed = new Promise<void>((resolve) => (client.onclose = resolve));
  /** Loses the agent's path (silence past the idle timeout); the redial waits its backoff. */
  const lose = async () => {
    const lost = new Promise<void>((resolve) => (connection.ondisconnect = () => resolve()));
    await clock.advance(9_000);
    await deadline(lost, STEP);
  };
  /** Lets the first redial go. */
  const redial = () => clock.advance(RESUME_BACKOFF_FIRST);
  /** Connects the agent's client over a transport of the connection. */
  const connect = () => deadline(client.connect(connection.openTransport()), STEP);
  return { connection, client, errors, closed, lose, redial, connect };
}

type Desktop = ReturnType<typeof gatedServers>;
type ResumingAgent = ReturnType<typeof agentOf>;

/**
 * Runs `body` with a listener on the local worker that serves a desktop's
 * `gatedServers()`. `agent()` makes an agent (as `agentOf`) and `listen()` another
 * listener; whatever way `body` ends, every agent is closed, then every listener.
 */
async function withListener(
  options: Omit<ListenOptions, "createServer" | "url" | "hostTicket">,
  body: (scene: {
    listener: WebRTCListener;
    desktop: Desktop;
    agent: (ticket: string, options?: { relayAfter?: number }) => ResumingAgent;
    listen: (
      desktop: Desktop,
      options: Omit<ListenOptions, "createServer">,
    ) => Promise<WebRTCListener>;
  }) => Promise<void>,
): Promise<void> {
  await withWorker(async (worker) => {
    const agents: ResumingAgent[] = [];
    const listeners: WebRTCListener[] = [];
    const listen = async (desktop: Desktop, options: Omit<ListenOptions, "createServer">) => {
      const listener = await WebRTCListener.listen({
        ...options,
        createServer: desktop.createServer,
        ...LOCAL,
      });
      listeners.push(listener);
      return listener;
    };
    const agent = (ticket: string, options?: { relayAfter?: number }) => {
      const made = agentOf(ticket, options);
      agents.push(made);
      return made;
    };
    const desktop = gatedServers();
    const listener = await listen(desktop, { ...options, url: worker.url });
    try {
      await body({ listener, desktop, agent, listen });
    } finally {
      for (const made of agents) {
        await made.client.close();
        await made.connection.close();
      }
      for (const made of listeners) await made.close();
    }
  });
}

Deno.test("WebRTCListener binds an agent's redial to its lost connection's sessions: the call in flight completes on the same server, without a second initialize", async () => {
  await withListener({}, async ({ listener, desktop, agent: agentFor }) => {
    const agent = agentFor(listener.ticket!);
    const left: Agent[] = [];
    listener.onagentleave = (gone) => left.push(gone);
    listener.onerror = () => {};
    await agent.connect();
    assert.equal(text(await deadline(agent.client.callTool({ name: "count" }), STEP)), "1");
    const call = agent.client.callTool({ name: "slow" });
    await deadline(desktop.slowStarted, STEP);
    await agent.lose();
    await agent.redial();
    desktop.open();
    assert.equal(text(await deadline(call, STEP)), "done");
    assert.equal(text(await deadline(agent.client.callTool({ name: "count" }), STEP)), "2");
    assert.deepEqual(desktop.counts, {
      servers: 1,
      slowCalls: 1,
      initializations: 1,
      closed: 0,
    });
    assert.equal(agent.connection.dials, 2);
    // The lost connection is let go; the new one serves the session.
    assert.equal(listener.agents.length, 1);
    assert.equal(listener.sessions.length, 1);
    assert.equal(left.length, 0);
  });
});

Deno.test("WebRTCListener: a redial to a restarted desktop fails at once with an error that says the connection is unknown", async () => {
  await withListener({}, async ({ listener: first, agent: agentFor, listen }) => {
    const hostTicket = first.hostTicket!;
    const agent = agentFor(first.ticket!);
    await agent.connect();
    assert.equal(text(await deadline(agent.client.callTool({ name: "count" }), STEP)), "1");
    await agent.lose();
    // The desktop restarts with the same room and invites, and holds nothing.
    await first.close();
    const second = gatedServers();
    const listener = await listen(second, { hostTicket });
    listener.onerror = () => {};
    await agent.redial();
    await deadline(agent.closed, STEP);
    assert.match(
      agent.errors.join("\n"),
      /refused the claim of its connection \("unknown connection: the serving side restarted/,
    );
    assert.equal(second.counts.servers, 0);
  });
});

Deno.test("WebRTCListener ends a lost agent's sessions once resumeGrace passes without its redial", async () => {
  await withListener({ resumeGrace: 300 }, async ({ listener, desktop, agent: agentFor }) => {
    listener.onerror = () => {};
    const agent = agentFor(listener.ticket!);
    const leave = new Promise<Error | undefined>((resolve) =>
      listener.onagentleave = (_agent, error) => resolve(error)
    );
    const sessionClosed = new Promise<void>((
      resolve,
    ) => (listener.onsessionclose = () => resolve()));
    await agent.connect();
    assert.equal(text(await deadline(agent.client.callTool({ name: "count" }), STEP)), "1");
    // Lost, and no redial (the agent's backoff never passes).
    await agent.lose();
    await deadline(sessionClosed, STEP);
    assert.match(String((await deadline(leave, STEP))?.message), /resumeGrace/);
    assert.equal(desktop.counts.closed, 1);
    assert.equal(listener.agents.length, 0);
    assert.equal(listener.sessions.length, 0);
  });
});

Deno.test("WebRTCListener binds a redial over the room's relay to the lost connection's sessions: the claim is bound to the relay link's keys", async () => {
  await withListener({}, async ({ listener, desktop, agent: agentFor }) => {
    listener.onerror = () => {};
    const agent = agentFor(listener.ticket!, { relayAfter: 0 });
    const resumed = new Promise<{ path?: { localCandidateType?: string }; ms: number }>((
      resolve,
    ) => listener.onagentresume = (_agent, _was, info) => resolve(info));
    await agent.connect();
    assert.equal(
      (await agent.connection.getConnectionPath())?.localCandidateType,
      "relay-ws",
    );
    const call = agent.client.callTool({ name: "slow" });
    await deadline(desktop.slowStarted, STEP);
    await agent.lose();
    await agent.redial();
    desktop.open();
    assert.equal(text(await deadline(call, STEP)), "done");
    assert.equal(text(await deadline(agent.client.callTool({ name: "count" }), STEP)), "1");
    assert.equal((await deadline(resumed, STEP)).path?.localCandidateType, "relay-ws");
    assert.deepEqual(desktop.counts, {
      servers: 1,
      slowCalls: 1,
      initializations: 1,
      closed: 0,
    });
  });
});

Deno.test("WebRTCListener.revoke() ends the sessions it holds for a lost agent of that invite at once", async () => {
  await withListener({ guestTicket: false }, async ({ listener, desktop, agent: agentFor }) => {
    listener.onerror = () => {};
    const agent = agentFor(await listener.invite({ name: "laptop" }));
    const lost = new Promise<void>((resolve) => (listener.onagentlost = () => resolve()));
    const sessionClosed = new Promise<void>((
      resolve,
    ) => (listener.onsessionclose = () => resolve()));
    await agent.connect();
    assert.equal(text(await deadline(agent.client.callTool({ name: "count" }), STEP)), "1");
    await agent.lose();
    await deadline(lost, STEP);
    assert.deepEqual(await listener.revoke("laptop"), { name: "laptop", closed: 1 });
    await deadline(sessionClosed, STEP);
    assert.equal(desktop.counts.closed, 1);
    assert.equal(listener.sessions.length, 0);
  });
});

Deno.test("WebRTCListener holds at most maxAgents lost connections: past it a lost agent's sessions end at once, naming the limit", async () => {
  await withListener({ maxAgents: 1 }, async ({ listener, desktop, agent: agentFor }) => {
    const errors: string[] = [];
    listener.onerror = (error) => errors.push(error.message);
    const first = agentFor(listener.ticket!);
    const second = agentFor(listener.ticket!);
    const held = new Promise<void>((resolve) => (listener.onagentlost = () => resolve()));
    const left = new Promise<Error | undefined>((resolve) =>
      listener.onagentleave = (_agent, error) => resolve(error)
    );
    await first.connect();
    await first.lose();
    await deadline(held, STEP);
    // The held connection is not an agent: another one is served.
    await second.connect();
    assert.equal(text(await deadline(second.client.callTool({ name: "count" }), STEP)), "1");
    await second.lose();
    await deadline(left, STEP);
    assert.match(errors.join("\n"), /as 1 lost agents are held already \(maxAgents\)/);
    assert.equal(desktop.counts.closed, 1);
  });
});
