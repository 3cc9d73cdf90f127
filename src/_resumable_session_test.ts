import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { ResumableSession } from "./_resumable_session.ts";
import { deadline } from "./_async.ts";
import { DataChannelTransport } from "./data_channel_transport.ts";
import { createLinkedChannelPair, type MemoryChannel } from "./testing.ts";
import { MAX_EARLY_MESSAGES } from "./constants.ts";
import { MemoryBudget } from "./framing.ts";
import { StuckChannel } from "./_test_stuck_channel.ts";

/** How long any one step may take before the test fails instead of hanging. */
const STEP = 5_000;

/** A started channel transport at each end of a new in-memory channel pair. */
async function channelPair(started: [boolean, boolean] = [true, true]): Promise<
  { ends: [DataChannelTransport, DataChannelTransport]; channels: [MemoryChannel, MemoryChannel] }
> {
  const channels = createLinkedChannelPair();
  const ends = channels.map((channel) =>
    new DataChannelTransport(channel, { keepaliveInterval: 0 })
  ) as [DataChannelTransport, DataChannelTransport];
  await Promise.all(ends.filter((_, i) => started[i]).map((end) => end.start()));
  return { ends, channels };
}

/** A server with state (a counter), a call that waits for a gate, and a count of initializations. */
function statefulServer() {
  const server = new McpServer({ name: "desktop", version: "1.0.0" });
  let counter = 0;
  let slowCalls = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let started!: () => void;
  const slowStarted = new Promise<void>((resolve) => (started = resolve));
  server.registerTool(
    "count",
    {},
    () => ({ content: [{ type: "text", text: String(++counter) }] }),
  );
  server.registerTool("slow", {}, async () => {
    slowCalls++;
    started();
    await gate;
    return { content: [{ type: "text", text: "done" }] };
  });
  let initializations = 0;
  server.server.oninitialized = () => initializations++;
  return {
    server,
    open: () => open(),
    slowStarted,
    stats: () => ({ slowCalls, initializations }),
  };
}

function text(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0].text;
}

Deno.test("A call in flight when its channel is lost completes once the session is bound to a new channel, on the same server, without a second initialize", async () => {
  const held = new Map<string, ResumableSession>();
  const desktop = statefulServer();
  const first = await channelPair();
  const agentSession = new ResumableSession();
  await agentSession.bind(first.ends[0]);
  const accepted = await ResumableSession.accept(first.ends[1], (id) => held.get(id));
  assert.ok(accepted?.created);
  const desktopSession = accepted.session;
  held.set(desktopSession.id, desktopSession);
  assert.equal(desktopSession.id, agentSession.id);
  await desktop.server.connect(desktopSession);
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(agentSession);
  assert.equal(text(await client.callTool({ name: "count" })), "1");

  // The call is under way on the server when the channel goes, with what is in flight.
  const call = client.callTool({ name: "slow" });
  await deadline(desktop.slowStarted, STEP);
  const suspended = Promise.all(
    [agentSession, desktopSession].map((session) =>
      new Promise<void>((resolve) => (session.onsuspend = resolve))
    ),
  );
  first.channels[0].close();
  await deadline(suspended, STEP);
  assert.equal(agentSession.bound, false);
  assert.equal(desktopSession.bound, false);
  // The result is made while no channel is there; a call is sent meanwhile too.
  desktop.open();
  const meanwhile = client.callTool({ name: "count" });

  const second = await channelPair();
  const [bound, again] = await deadline(
    Promise.all([
      agentSession.bind(second.ends[0]),
      ResumableSession.accept(second.ends[1], (id) => held.get(id)),
    ]),
    STEP,
  );
  assert.equal(bound, undefined);
  assert.equal(again?.session, desktopSession);
  assert.equal(again?.created, false);

  assert.equal(text(await deadline(call, STEP)), "done");
  assert.equal(text(await deadline(meanwhile, STEP)), "2");
  assert.equal(text(await client.callTool({ name: "count" })), "3");
  assert.deepEqual(desktop.stats(), { slowCalls: 1, initializations: 1 });
  assert.equal(agentSession.bindings, 2);
  const closed = new Promise<void>((resolve) => (desktopSession.onclose = resolve));
  await client.close();
  // The agent's end tells the desktop, which does not hold the session then.
  await deadline(closed, STEP);
});

Deno.test("A claim for a session the other side does not hold is refused at once, with an error that says why", async () => {
  const session = new ResumableSession();
  const first = await channelPair();
  await session.bind(first.ends[0]);
  assert.ok(await ResumableSession.accept(first.ends[1], () => undefined));
  const suspended = new Promise<void>((resolve) => (session.onsuspend = resolve));
  first.channels[0].close();
  await deadline(suspended, STEP);
  // The serving side restarted: it holds nothing.
  const second = await channelPair();
  const errors: Error[] = [];
  session.onerror = (error) => errors.push(error);
  const closed = new Promise<void>((resolve) => (session.onclose = resolve));
  const [bound, accepted] = await Promise.allSettled([
    session.bind(second.ends[0]),
    ResumableSession.accept(second.ends[1], () => undefined),
  ]);
  assert.equal(bound.status, "rejected");
  assert.match(
    String((bound as PromiseRejectedResult).reason),
    /Cannot resume the session as the other peer refused it \("unknown session: the serving side restarted, or the grace period passed"\)/,
  );
  assert.deepEqual(accepted, { status: "fulfilled", value: undefined });
  await deadline(closed, STEP);
  assert.equal(errors.length, 1);
});

Deno.test("A claim naming a session id already in use, or a malformed one, is refused", async () => {
  const held = new ResumableSession();
  for (
    const [claim, reason] of [
      [{ session: held.id, received: 0, resume: false }, /in use/],
      [{ session: "short", received: 0, resume: true }, /malformed/],
      [{ session: held.id, received: -1, resume: true }, /malformed/],
    ] as const
  ) {
    const { ends } = await channelPair();
    const answer = new Promise<unknown>((resolve) => (ends[0].onmessage = resolve));
    const accepted = ResumableSession.accept(ends[1], () => held);
    await ends[0].send({ jsonrpc: "2.0", method: "mcp-webrtc/resume", params: claim });
    assert.equal(await accepted, undefined);
    const refused = await answer as { method: string; params: { reason: string } };
    assert.equal(refused.method, "mcp-webrtc/refused");
    assert.match(refused.params.reason, reason);
    await ends[0].close();
  }
  await held.close();
});

Deno.test("A session whose other side does not speak the protocol runs as a plain session", async () => {
  const desktop = statefulServer();
  const { ends } = await channelPair([true, false]);
  // The serving side is a plain MCP server on the channel: it ignores the claim.
  await desktop.server.connect(ends[1]);
  const session = new ResumableSession();
  await session.bind(ends[0]);
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(session);
  assert.equal(text(await client.callTool({ name: "count" })), "1");
  assert.equal(text(await client.callTool({ name: "count" })), "2");
  const closed = new Promise<void>((resolve) => (ends[1].onclose = resolve));
  await client.close();
  await deadline(closed, STEP);

  // And a plain client on the opening side: the accepting side runs its session plain.
  const other = await channelPair([false, true]);
  const second = statefulServer();
  const accepted = ResumableSession.accept(other.ends[1], () => undefined);
  const plainClient = new Client({ name: "plain", version: "1.0.0" });
  const connecting = plainClient.connect(other.ends[0]);
  const result = await accepted;
  assert.ok(result?.created);
  await second.server.connect(result.session);
  await connecting;
  assert.equal(text(await plainClient.callTool({ name: "count" })), "1");
  const ended = new Promise<void>((resolve) => (result.session.onclose = resolve));
  await plainClient.close();
  await ended;
});

/** `inner`, with each message handed on `ms` later and its close at once. */
function lagging(inner: Transport, ms: number): Transport {
  const wrapper: Transport = {
    start: () => inner.start(),
    send: (message, options) => inner.send(message, options),
    close: () => inner.close(),
  };
  inner.onmessage = (message, extra) =>
    void setTimeout(() => wrapper.onmessage?.(message, extra), ms);
  inner.onclose = () => wrapper.onclose?.();
  inner.onerror = (error) => wrapper.onerror?.(error);
  return wrapper;
}

Deno.test("A session ended on one side ends on the other though the channel's close reaches it before the end: the side that ends first closes the channel only once answered", async () => {
  // node-datachannel hands a channel's close and its last messages to JavaScript apart.
  const { ends } = await channelPair();
  const agentSession = new ResumableSession();
  await agentSession.bind(ends[0]);
  const accepted = await ResumableSession.accept(lagging(ends[1], 50), () => undefined);
  const desktopSession = accepted!.session;
  await new McpServer({ name: "desktop", version: "1.0.0" }).connect(desktopSession);
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(agentSession);
  let suspended = false;
  desktopSession.onsuspend = () => (suspended = true);
  const closed = new Promise<void>((resolve) => (desktopSession.onclose = resolve));
  await client.close();
  await deadline(closed, STEP);
  assert.equal(suspended, false);
});

Deno.test("A session holds at most MAX_EARLY_MESSAGES of the other side's messages before its server starts; past that it ends with an error that says why", async () => {
  const { ends } = await channelPair([true, true]);
  const accepted = ResumableSession.accept(ends[1], () => undefined);
  // A peer that sends far more than an initialize before the session's server started.
  await ends[0].send({ jsonrpc: "2.0", id: 0, method: "initialize", params: {} });
  const result = await deadline(accepted, STEP);
  assert.ok(result?.created);
  const errors: Error[] = [];
  result.session.onerror = (error) => errors.push(error);
  const ended = new Promise<void>((resolve) => (result.session.onclose = resolve));
  for (let id = 1; id <= MAX_EARLY_MESSAGES + 5; id++) {
    await ends[0].send({ jsonrpc: "2.0", id, method: "ping" }).catch(() => {});
  }
  await deadline(ended, STEP);
  assert.equal(errors.length, 1);
  assert.match(
    errors[0]!.message,
    new RegExp(`more than ${MAX_EARLY_MESSAGES} messages .* before its server started`),
  );
  // Within the bound, every early message is delivered, in order, once the server starts.
  const calm = await channelPair([true, true]);
  const second = ResumableSession.accept(calm.ends[1], () => undefined);
  await calm.ends[0].send({ jsonrpc: "2.0", id: 0, method: "initialize", params: {} });
  const held = await deadline(second, STEP);
  assert.ok(held?.created);
  for (let id = 1; id < MAX_EARLY_MESSAGES; id++) {
    await calm.ends[0].send({ jsonrpc: "2.0", id, method: "ping" });
  }
  const got: unknown[] = [];
  const all = new Promise<void>((resolve) => {
    held.session.onmessage = (message) => {
      got.push((message as { id: number }).id);
      if (got.length === MAX_EARLY_MESSAGES) resolve();
    };
  });
  // Each ping is through the channel once the next send resolved; the last one may still be on its way.
  await held.session.start();
  await deadline(all, STEP);
  assert.deepEqual(got, Array.from({ length: MAX_EARLY_MESSAGES }, (_, i) => i));
  await held.session.close();
  await calm.ends[0].close();
});

Deno.test("A session whose channel refuses a message for its queue budget (the other peer stopped reading) ends, naming the budget, rather than waiting for a resume that may not come", async () => {
  const channel = new StuckChannel();
  const inner = new DataChannelTransport(channel, {
    keepalive: false,
    queueBudget: new MemoryBudget("maxQueuedBytes", 3_000_000),
  });
  await inner.start();
  const accepting = ResumableSession.accept(inner, () => undefined);
  channel.deliver(JSON.stringify({
    jsonrpc: "2.0",
    method: "mcp-webrtc/resume",
    params: { session: "stuck-session-00000000", received: 0, resume: false },
  }));
  const accepted = await deadline(accepting, STEP);
  assert.ok(accepted?.created);
  const session = accepted.session;
  const errors: Error[] = [];
  session.onerror = (error) => errors.push(error);
  await session.start();
  // The first fills the channel's buffer; two wait behind it; the next does not fit.
  const big = (n: number) => ({
    jsonrpc: "2.0" as const,
    method: "notifications/message",
    params: { level: "info", data: "x".repeat(n) },
  });
  for (const size of [5_000_000, 1_200_000, 1_200_000, 1_200_000]) {
    void session.send(big(size)).catch(() => {});
  }
  await deadline(session.closed, STEP);
  assert.ok(errors.some((error) => /'maxQueuedBytes'/.test(error.message)), errors.join("\n"));
});
