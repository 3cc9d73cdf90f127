/**
 * MCP over WebRTC through the signalling worker, running in workerd on
 * 127.0.0.1: the listener on the desktop side, tickets on the agent side.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  ConnectError,
  createGuestTicket,
  createTicket,
  formatTicket,
  parseTicket,
  type Signaling,
  TicketError,
  TicketSignaling,
  WebRTCClientTransport,
} from "../mod.ts";
import { createTestServer, dial, greet, LOCAL, text, until, withDesktop } from "./_helpers.ts";
import { useClock } from "../src/_clock.ts";
import { ManualClock } from "../src/_test_clock.ts";

Deno.test("WebRTCListener serves one agent through the worker with a ticket", async () => {
  await withDesktop({}, async ({ listener, ticket }) => {
    assert.ok(listener.ticket?.startsWith("mcpwebrtc2.guest."));
    const client = await dial(ticket);
    await greet(client, "edge");
    assert.equal(listener.sessions.length, 1);
    await client.close();
    await until(() => listener.sessions.length === 0, 3_000, "session closed on the desktop");
  });
});

Deno.test("WebRTCListener serves three agents at once, each with its own session; one leaving disturbs none", async () => {
  let made = 0;
  const createServer = () => {
    const server = createTestServer();
    const n = ++made;
    server.registerTool(
      "whoami",
      {},
      () => ({ content: [{ type: "text", text: `server ${n}` }] }),
    );
    return server;
  };
  await withDesktop({ createServer }, async ({ listener, ticket }) => {
    const agents = await Promise.all([1, 2, 3].map(() => dial(ticket)));
    const names = await Promise.all(
      agents.map(async (client) => text(await client.callTool({ name: "whoami", arguments: {} }))),
    );
    assert.equal(new Set(names).size, 3, `three distinct servers: ${names}`);
    assert.equal(listener.sessions.length, 3);
    await agents[0].close();
    await until(() => listener.sessions.length === 2, 3_000, "one session gone");
    for (const client of agents.slice(1)) await greet(client, "still");
    await Promise.all(agents.slice(1).map((client) => client.close()));
  });
});

Deno.test("WebRTCListener.close() closes every agent's session", async () => {
  await withDesktop({}, async ({ listener, ticket }) => {
    const agents = await Promise.all([1, 2].map(() => dial(ticket)));
    let closed = 0;
    for (const client of agents) client.onclose = () => closed++;
    await listener.close();
    await until(() => closed === 2, 3_000, "both agents closed");
  });
});

Deno.test("WebRTCListener pairs through a room forced into hibernation between every step", async () => {
  await withDesktop({}, async ({ worker, ticket }) => {
    const room = parseTicket(ticket).room;
    let steps = 0;
    let hibernations = 0;
    // After each call the room is asleep: put to sleep now, or still asleep
    // since the last call (nothing woke it in between).
    const hibernate = async () => {
      steps++;
      if (await worker.hibernate(room)) hibernations++;
    };
    // A signalling wrapper on the agent that forces the room into hibernation
    // before each message it sends and after each one it receives (in order).
    const inner = new TicketSignaling(ticket, { hostTimeout: 5_000 });
    const hibernating: Signaling = {
      start: async () => {
        await hibernate();
        await inner.start();
      },
      send: async (message) => {
        await hibernate();
        await inner.send(message);
      },
      close: () => inner.close(),
    };
    let inbox = Promise.resolve();
    inner.onmessage = (message) => {
      inbox = inbox.then(hibernate).then(() => hibernating.onmessage?.(message));
    };
    inner.onclose = () => hibernating.onclose?.();
    inner.onerror = (error) => hibernating.onerror?.(error);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(
      new WebRTCClientTransport({ signaling: hibernating, ...LOCAL, connectTimeout: 10_000 }),
    );
    await greet(client, "zz");
    // Joining, the offer out and the answer in (each with its candidates):
    // the room slept before each, with its sockets, attachments and verifiers
    // kept.
    assert.ok(steps >= 3, `the room slept before ${steps} steps`);
    assert.ok(hibernations >= 3, `the room was put to sleep ${hibernations} times`);
    await client.close();
  });
});

Deno.test("An agent with a wrong or truncated ticket is refused by the worker and never reaches the host", async () => {
  let made = 0;
  const createServer = () => {
    made++;
    return createTestServer();
  };
  await withDesktop({ createServer }, async ({ worker, listener, ticket }) => {
    const good = parseTicket(ticket);
    // Same room, another secret: the worker refuses the derived key.
    const stranger = await createGuestTicket(await createTicket({ url: worker.url }));
    const forged = formatTicket({ ...stranger, room: good.room });
    const error = await dial(forged).then(() => undefined, (error) => error);
    assert.ok(error instanceof ConnectError, String(error));
    assert.match(error.message, /refused|key/i);
    // A truncated ticket does not even parse.
    assert.throws(() => new TicketSignaling(ticket.slice(0, 40)), TicketError);
    assert.equal(made, 0, "no server was made for a refused agent");
    assert.equal(listener.sessions.length, 0);
    // The rightful agent still gets in.
    const client = await dial(ticket);
    await client.close();
  });
});

Deno.test("WebRTCListener refuses agents after the ticket's expiry", async () => {
  const options = () => ({ expiresAt: new Date(Date.now() + 1_500) });
  await withDesktop(options, async ({ listener, ticket }) => {
    // The agent's clock is moved past the expiry instead of waiting for it.
    const signaling = new TicketSignaling(ticket, { hostTimeout: 5_000 });
    const clock = new ManualClock();
    useClock(signaling, clock);
    await clock.advance(1_600);
    const error = await dial(ticket, { signaling }).then(() => undefined, (error) => error);
    assert.ok(error instanceof Error);
    assert.match(error.message, /expired/);
    assert.equal(listener.sessions.length, 0);
  });
});

Deno.test("WebRTCListener tells an agent over its limit why it was refused, sealed", async () => {
  await withDesktop({ maxAgents: 1 }, async ({ ticket }) => {
    const first = await dial(ticket);
    const started = Date.now();
    const error = await dial(ticket).then(() => undefined, (error) => error);
    assert.ok(error instanceof ConnectError, String(error));
    assert.match(error.message, /maximum of 1 agents/);
    assert.ok(Date.now() - started < 5_000);
    // The first agent is undisturbed.
    await greet(first, "1");
    await first.close();
  });
});

Deno.test("WebRTCClientTransport times out when the signalling never delivers its offer", async () => {
  // A signalling whose send() never settles, like a peer that never answers the hello.
  const stuck: Signaling = {
    start: () => Promise.resolve(),
    send: () => new Promise(() => {}),
    close: () => Promise.resolve(),
  };
  const transport = new WebRTCClientTransport({ signaling: stuck, ...LOCAL, connectTimeout: 500 });
  const started = Date.now();
  const error = await transport.start().then(() => undefined, (error) => error);
  assert.ok(error instanceof ConnectError, String(error));
  assert.equal(error.stage, "signaling");
  assert.ok(Date.now() - started < 2_500, `took ${Date.now() - started} ms`);
});
