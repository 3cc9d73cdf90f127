/**
 * `WebRTCListener`'s invites through the local worker: each agent's own
 * ticket, its name on every event, revocation that takes effect at once, and
 * a room that lies about which invite a guest came with.
 */
import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client";
import {
  type Agent,
  type AgentSession,
  createGuestTicket,
  createTicket,
  formatTicket,
  MemorySignaling,
  parseTicket,
  type SignalingHub,
  SignalingRoomError,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCConnection,
  WebRTCListener,
} from "../mod.ts";
import { MAX_INVITE_TOOLS, RESUME_BACKOFF_FIRST } from "../src/constants.ts";
import { createInviteTicket } from "../src/ticket.ts";
import { useClock } from "../src/_clock.ts";
import { deadline } from "../src/_async.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { createTestServer, dial, greet, LOCAL, text, until, withWorker } from "./_helpers.ts";
import { gatedServers } from "./_resume_pair.ts";

/** A listener on the local worker that records who its servers serve. */
async function listening(url: string, guestTicket = false) {
  const served: AgentSession[] = [];
  const errors: Error[] = [];
  const left: { agent: Agent; error?: Error }[] = [];
  const listener = await WebRTCListener.listen({
    url,
    ...LOCAL,
    connectTimeout: 5_000,
    guestTicket,
    createServer: (agent) => {
      served.push(agent);
      return createTestServer();
    },
  });
  listener.onerror = (error) => errors.push(error);
  listener.onagentleave = (agent, error) => left.push({ agent, error });
  return { listener, served, errors, left };
}

Deno.test("listen(): an invite connects at once, its sessions carry its name and tools, and revoke() ends its connection within a second while another invite's agent goes on", async () => {
  await withWorker(async (worker) => {
    const { listener, served, left } = await listening(worker.url);
    let alice: Client | undefined;
    let bob: Client | undefined;
    try {
      assert.equal(listener.ticket, undefined);
      const aliceTicket = await listener.invite({ name: "alice", tools: ["greet"] });
      const bobTicket = await listener.invite({ name: "bob" });
      assert.notEqual(parseTicket(aliceTicket).secret, parseTicket(bobTicket).secret);
      alice = await dial(aliceTicket);
      bob = await dial(bobTicket);
      await greet(alice, "alice");
      await greet(bob, "bob");
      // The listener enforces each invite's tools.
      assert.deepEqual((await alice.listTools()).tools.map(({ name }) => name), ["greet"]);
      assert.deepEqual((await bob.listTools()).tools.map(({ name }) => name), ["greet", "blob"]);
      assert.deepEqual(
        served.map(({ agent: { name, tools }, session }) => ({ name, tools, session })),
        [{ name: "alice", tools: ["greet"], session: 1 }, {
          name: "bob",
          tools: undefined,
          session: 1,
        }],
      );
      assert.deepEqual(listener.agents.map(({ name }) => name).sort(), ["alice", "bob"]);
      assert.deepEqual(
        listener.invites.map(({ name, tools, connected }) => ({ name, tools, connected })),
        [{ name: "alice", tools: ["greet"], connected: true }, {
          name: "bob",
          tools: undefined,
          connected: true,
        }],
      );

      const aliceClosed = new Promise<number>((
        resolve,
      ) => (alice!.onclose = () => resolve(Date.now())));
      const started = Date.now();
      assert.deepEqual(await listener.revoke("alice"), { name: "alice", closed: 1 });
      const closedIn = (await aliceClosed) - started;
      assert.ok(closedIn < 1_000, `alice's session closed ${closedIn} ms after revoke() began`);
      assert.equal(left.length, 1);
      assert.equal(left[0].agent.name, "alice");
      assert.match(String(left[0].error), /its invite "alice" was revoked/);
      assert.deepEqual(listener.invites.map(({ name }) => name), ["bob"]);
      // Bob goes on.
      await greet(bob, "bob again");
      // Alice's next dial is refused by the room.
      const again = await dial(aliceTicket, { connectTimeout: 3_000 }).then(
        (client) => client.close().then(() => undefined),
        (error: Error) => error,
      );
      assert.ok(again instanceof Error);
      assert.match(again.message, /key was refused/);
      await assert.rejects(
        () => listener.revoke("alice"),
        /Cannot revoke invite "alice" as there is no invite of that name: the invites are bob/,
      );
    } finally {
      await alice?.close();
      await bob?.close();
      await listener.close();
    }
  });
});

Deno.test("A room that names another invite for a guest gets it refused: its hello does not open with that invite's key, and no server is made for it", async () => {
  await withWorker(async (worker) => {
    const { listener, served, errors } = await listening(worker.url);
    try {
      const aliceTicket = await listener.invite({ name: "alice" });
      await listener.invite({ name: "bob", tools: ["greet"] });
      // A compromised room: it says every guest came with bob's invite.
      const hub = listener.hub as SignalingHub & { inviteOf(peer: string): string | undefined };
      const inviteOf = hub.inviteOf.bind(hub);
      hub.inviteOf = (peer) => inviteOf(peer) === undefined ? undefined : "bob";
      const error = await dial(aliceTicket, { connectTimeout: 3_000 }).then(
        (client) => client.close().then(() => undefined),
        (error: Error) => error,
      );
      assert.ok(error instanceof Error, "alice connected under bob's name");
      assert.deepEqual(served, []);
      await until(
        () => errors.some((error) => /authentication code does not match/.test(error.message)),
        5_000,
        "the desktop's refusal of the hello",
      );
    } finally {
      await listener.close();
    }
  });
});

Deno.test("invite() refuses a malformed or taken name, too many tools and a past expiry, and says why", async () => {
  await withWorker(async (worker) => {
    const { listener } = await listening(worker.url, true);
    try {
      await assert.rejects(() => listener.invite({ name: "a b" }), /1 to 64 letters/);
      await assert.rejects(
        () => listener.invite({ name: "guest" }),
        /an invite of that name exists/,
      );
      await assert.rejects(
        () =>
          listener.invite({
            name: "many",
            tools: Array.from({ length: MAX_INVITE_TOOLS + 1 }, (_, i) => `t${i}`),
          }),
        /MAX_INVITE_TOOLS/,
      );
      await assert.rejects(
        () => listener.invite({ name: "late", expiresAt: new Date(Date.now() - 1_000) }),
        /has passed/,
      );
      assert.deepEqual(listener.invites.map(({ name }) => name), ["guest"]);
    } finally {
      await listener.close();
    }
  });
});

Deno.test("An invite's expiry is enforced by the desktop: an agent that pushed it forward in its ticket is refused with the sealed reason, and no server is made", async () => {
  await withWorker(async (worker) => {
    const host = await createTicket({ url: worker.url });
    // An invite that expired a minute ago, kept from an earlier run.
    const expired = await createInviteTicket(host, { expiresAt: new Date(Date.now() - 60_000) });
    const served: AgentSession[] = [];
    const errors: Error[] = [];
    const listener = await WebRTCListener.listen({
      hostTicket: host,
      ...LOCAL,
      guestTicket: false,
      invites: [{ name: "late", ticket: formatTicket(expired) }],
      createServer: (agent) => {
        served.push(agent);
        return createTestServer();
      },
    });
    listener.onerror = (error) => errors.push(error);
    try {
      assert.deepEqual(
        listener.invites.map(({ name, expiresAt }) => ({ name, expiresAt })),
        [{ name: "late", expiresAt: expired.expiresAt }],
      );
      // The expiry is written in clear: the holder moves it a day ahead.
      const edited = formatTicket({ ...expired, expiresAt: new Date(Date.now() + 86_400_000) });
      const error = await dial(edited, { connectTimeout: 5_000 }).then(
        (client) => client.close().then(() => undefined),
        (error: Error) => error,
      );
      assert.ok(error instanceof Error, "the agent of an expired invite was served");
      assert.match(error.message, /the invite "late" expired/);
      assert.deepEqual(served, []);
      assert.ok(errors.some((error) => /Refused agent .*"late" expired/.test(error.message)));
    } finally {
      await listener.close();
    }
  });
});

Deno.test("A desktop that serves no guest ticket has the room refuse it: the version 2 ticket's room would admit it by its id alone", async () => {
  await withWorker(async (worker) => {
    const host = await createTicket({ url: worker.url });
    const invite = await createInviteTicket(host);
    const listener = await WebRTCListener.listen({
      hostTicket: host,
      ...LOCAL,
      guestTicket: false,
      invites: [{ name: "laptop", ticket: formatTicket(invite) }],
      createServer: () => createTestServer(),
    });
    try {
      const ticket = formatTicket(await createGuestTicket(host));
      const error = await dial(ticket, { connectTimeout: 5_000 }).then(
        (client) => client.close().then(() => undefined),
        (error: Error) => error,
      );
      const cause = (error as Error | undefined)?.cause;
      assert.ok(cause instanceof SignalingRoomError, String(error));
      assert.equal(cause.code, "key_refused");
      // The invite's agent is served.
      const client = await dial(formatTicket(invite));
      await greet(client, "laptop");
      await client.close();
    } finally {
      await listener.close();
    }
  });
});

for (const how of ["revoked", "never served"]) {
  Deno.test(`A desktop whose guest ticket is ${how} serves no peer the room names no invite for: it has no key to open its hello with`, async () => {
    await withWorker(async (worker) => {
      const { listener, served, errors } = await listening(worker.url, how === "revoked");
      const client = new McpClient({ name: "intruder", version: "1.0.0" });
      try {
        await listener.invite({ name: "bob", tools: ["greet"] });
        if (how === "revoked") await listener.revoke("guest");
        // A room that lies (or names no invites) announces a peer with no invite,
        // which holds no ticket and speaks plain signalling.
        const hub = listener.hub as SignalingHub & { inviteOf(peer: string): string | undefined };
        const [intruder, desktop] = MemorySignaling.createPair();
        const signaling = hub.signaling.bind(hub);
        hub.inviteOf = () => undefined;
        hub.signaling = (peer) => (peer === "intruder" ? desktop : signaling(peer));
        hub.onpeerjoin!("intruder");
        const error = await client.connect(
          new WebRTCClientTransport({ signaling: intruder, ...LOCAL, connectTimeout: 4_000 }),
        ).then(() => undefined, (error: Error) => error);
        assert.ok(error, "a peer with no ticket was served");
        assert.match(error.message, /names no invite for it/);
        assert.equal(served.length, 0);
        assert.ok(
          errors.some((error) => /Refused agent intruder: .*names no invite/.test(error.message)),
          errors.map(String).join("; "),
        );
      } finally {
        await client.close().catch(() => {});
        await listener.close();
      }
    });
  });
}

/** Asserts that the room refuses `ticket`'s key (`why` names the moment). */
async function refusedByRoom(ticket: string, why: string): Promise<void> {
  const error = await dial(ticket, { connectTimeout: 5_000 }).then(
    (client) => client.close().then(() => undefined),
    (error: Error) => error,
  );
  const cause = (error as Error | undefined)?.cause;
  assert.ok(cause instanceof SignalingRoomError, `${why}: ${error}`);
  assert.equal(cause.code, "key_refused", why);
}

/** Closes `first` and listens again on its room with its invites' records, as documented. */
async function restart(first: WebRTCListener): Promise<WebRTCListener> {
  const records = first.invites.map(({ name, ticket, tools }) => ({ name, ticket, tools }));
  const hostTicket = first.hostTicket!;
  await first.close();
  return await WebRTCListener.listen({
    hostTicket,
    invites: records,
    ...LOCAL,
    connectTimeout: 5_000,
    createServer: () => createTestServer(),
  });
}

Deno.test("A revoked guest ticket stays revoked after a restart with the kept invite records, and while the room reconnects", async () => {
  await withWorker(async (worker) => {
    const first = await WebRTCListener.listen({
      url: worker.url,
      ...LOCAL,
      connectTimeout: 5_000,
      room: { reconnect: { minDelay: 10, maxDelay: 50 } },
      createServer: () => createTestServer(),
    });
    first.onerror = () => {};
    const guest = first.ticket!;
    const kept = await first.invite({ name: "kept" });
    await first.revoke("guest");
    await refusedByRoom(guest, "after the revoke");
    // The room's socket drops and the desktop joins again: its join must not admit the guest anew.
    await worker.miniflare.unsafeEvictDurableObject("mcp-webrtc-signal", "Room", {
      name: parseTicket(guest).room,
      webSockets: "close",
    });
    // Once the desktop is back in its room, the kept invite connects, and the guest still does not.
    let client: Client | undefined;
    const stop = Date.now() + 5_000;
    while (!client && Date.now() < stop) {
      client = await dial(kept, { connectTimeout: 3_000 }).catch(() => undefined);
      if (!client) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(client, "the kept invite connected after the room came back");
    await client.close();
    await refusedByRoom(guest, "after the room reconnected");
    // As documented: keep the records, restart with them.
    assert.deepEqual(first.invites.map(({ name }) => name), ["kept"]);
    const second = await restart(first);
    try {
      assert.equal(second.ticket, undefined);
      assert.deepEqual(second.invites.map(({ name }) => name), ["kept"]);
      await refusedByRoom(guest, "after the restart");
      const again = await dial(kept);
      await greet(again, "kept");
      await again.close();
    } finally {
      await second.close();
    }
  });
});

Deno.test("A redial with another invite's ticket cannot claim an agent's sessions: the claim is refused, and revoke() still finds every session of the invite", async () => {
  await withWorker(async (worker) => {
    const desktop = gatedServers();
    const listener = await WebRTCListener.listen({
      url: worker.url,
      ...LOCAL,
      guestTicket: false,
      createServer: desktop.createServer,
    });
    const errors: string[] = [];
    listener.onerror = (error) => errors.push(error.message);
    const resumed: string[] = [];
    listener.onagentresume = (agent, was) => resumed.push(`${was.name} -> ${agent.name}`);
    const tickets = [
      await listener.invite({ name: "a", tools: ["count"] }),
      await listener.invite({ name: "b" }),
    ];
    let dials = 0;
    const connection = new WebRTCConnection({
      ...LOCAL,
      linger: 0,
      resume: true,
      connectTimeout: 10_000,
      // The first dial with a's ticket, every later one with b's.
      signaling: () => new TicketSignaling(tickets[Math.min(dials++, 1)], { hostTimeout: 5_000 }),
    });
    const clock = new ManualClock();
    useClock(connection, clock);
    const client = new McpClient({ name: "agent", version: "1.0.0" });
    client.onerror = () => {};
    const closed = new Promise<void>((resolve) => (client.onclose = resolve));
    try {
      await deadline(client.connect(connection.openTransport()), 10_000);
      assert.equal(text(await deadline(client.callTool({ name: "count" }), 10_000)), "1");
      // The path is lost; the redial goes with b's ticket and claims a's sessions.
      const lost = new Promise<void>((resolve) => (connection.ondisconnect = () => resolve()));
      await clock.advance(9_000);
      await deadline(lost, 10_000);
      await clock.advance(RESUME_BACKOFF_FIRST);
      await deadline(closed, 10_000);
      assert.deepEqual(resumed, []);
      assert.ok(
        errors.some((error) => /claim .*invite "a".* invite "b"/.test(error)),
        errors.join("; "),
      );
      // a's session ended on the desktop as on the agent: no server of a is left.
      await until(
        () => listener.sessions.every((s) => s.agent.name !== "a"),
        5_000,
        "a's sessions end",
      );
      assert.equal((await listener.revoke("a")).closed, 0);
    } finally {
      desktop.open();
      await client.close().catch(() => {});
      await connection.close();
      await listener.close();
    }
  });
});

Deno.test("One invite holds at most maxAgentsPerInvite agents: one more of it is refused with the sealed reason, while another invite's agent connects", async () => {
  await withWorker(async (worker) => {
    const errors: Error[] = [];
    const listener = await WebRTCListener.listen({
      url: worker.url,
      ...LOCAL,
      connectTimeout: 5_000,
      guestTicket: false,
      maxAgentsPerInvite: 1,
      createServer: () => createTestServer(),
    });
    listener.onerror = (error) => errors.push(error);
    const clients: Client[] = [];
    try {
      const ci = await listener.invite({ name: "ci" });
      const other = await listener.invite({ name: "other" });
      clients.push(await dial(ci));
      const error = await dial(ci, { connectTimeout: 5_000 }).then(
        (client) => {
          clients.push(client);
          return undefined;
        },
        (error: Error) => error,
      );
      assert.ok(error, "a second agent of the invite was served");
      assert.match(
        error.message,
        /the invite "ci" has 1 agents connected, the most one invite may have \(maxAgentsPerInvite\)/,
      );
      clients.push(await dial(other));
      await greet(clients.at(-1)!, "other");
      assert.deepEqual(listener.agents.map((agent) => agent.name).sort(), ["ci", "other"]);
      assert.ok(errors.some((error) => /maxAgentsPerInvite/.test(error.message)));
    } finally {
      for (const client of clients) await client.close();
      await listener.close();
    }
  });
});

Deno.test("WebRTCListener refuses a maxAgentsPerInvite that is not a positive integer", () => {
  const hub: SignalingHub = {
    peers: [],
    signaling: (peer) => {
      throw new Error(`no peer ${peer}`);
    },
    close: () => Promise.resolve(),
  };
  for (const maxAgentsPerInvite of [0, 1.5, -1]) {
    assert.throws(
      () => new WebRTCListener({ hub, maxAgentsPerInvite, createServer: () => createTestServer() }),
      /maxAgentsPerInvite/,
    );
  }
});

Deno.test("A revoked guest ticket stays revoked after a restart whose kept records are none (no other invite was made)", async () => {
  await withWorker(async (worker) => {
    const first = await WebRTCListener.listen({
      url: worker.url,
      ...LOCAL,
      connectTimeout: 5_000,
      createServer: () => createTestServer(),
    });
    const guest = first.ticket!;
    await first.revoke("guest");
    assert.deepEqual(first.invites, []);
    const second = await restart(first);
    try {
      assert.equal(second.ticket, undefined);
      await refusedByRoom(guest, "after the restart");
    } finally {
      await second.close();
    }
  });
});
