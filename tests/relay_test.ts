/**
 * The relay path through the signalling room, end to end on loopback: a
 * desktop's listener, an agent's connection, the worker in Miniflare.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  MemorySignaling,
  RelayError,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCConnection,
} from "../mod.ts";
import { blobText, greet, LOCAL, text, withDesktop } from "./_helpers.ts";

/** An agent's connection to a ticket's desktop. */
function agent(ticket: string, relayAfter: number | false, extra: Record<string, unknown> = {}) {
  return new WebRTCConnection({
    signaling: () => new TicketSignaling(ticket, { hostTimeout: 5_000 }),
    ...LOCAL,
    connectTimeout: 10_000,
    linger: 0,
    relayAfter,
    ...extra,
  });
}

Deno.test("WebRTCConnection asked to relay reaches the desktop through the room, and says so in its path", async () => {
  await withDesktop({}, async ({ ticket, listener }) => {
    const connection = agent(ticket, 0);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    await greet(client, "relay");
    assert.deepEqual(await connection.getConnectionPath(), {
      localCandidateType: "relay-ws",
      remoteCandidateType: "relay-ws",
    });
    const paths = await Promise.all(
      listener.agents.map((agent) => agent.connection.getConnectionPath()),
    );
    assert.deepEqual(paths.map((path) => path?.localCandidateType), ["relay-ws"]);
    // A second session opens a second relayed channel on the same connection.
    const second = new Client({ name: "agent-2", version: "1.0.0" });
    await second.connect(connection.openTransport());
    await greet(second, "second");
    assert.equal(connection.sessions, 2);
    await second.close();
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCConnection over the relay carries a 3 MB tool result whole", async () => {
  await withDesktop({}, async ({ ticket }) => {
    const connection = agent(ticket, 0);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    const result = await client.callTool({ name: "blob", arguments: { size: 3_000_000 } });
    assert.equal(text(result), blobText(3_000_000));
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCClientTransport asked to relay reaches the desktop through the room", async () => {
  await withDesktop({}, async ({ ticket }) => {
    const transport = new WebRTCClientTransport({
      signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
      ...LOCAL,
      relayAfter: 0,
    });
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(transport);
    await greet(client, "single");
    assert.equal((await transport.getConnectionPath())?.localCandidateType, "relay-ws");
    await client.close();
  });
});

Deno.test("WebRTCConnection takes the direct path by default when ICE finds one", async () => {
  await withDesktop({}, async ({ ticket }) => {
    const connection = agent(ticket, 3_000);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    await greet(client, "direct");
    assert.equal((await connection.getConnectionPath())?.localCandidateType, "host");
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCConnection refuses the relay over signalling that is not authenticated, with a clear error", async () => {
  const [a, b] = await MemorySignaling.createMemorySignalingPair();
  const connection = new WebRTCConnection({ signaling: a, ...LOCAL, relayAfter: 0, linger: 0 });
  await assert.rejects(connection.connect(), (error: Error) => {
    assert.ok(error instanceof RelayError, String(error));
    assert.match(error.message, /signalling is not authenticated/);
    assert.match(error.message, /ticket/);
    return true;
  });
  await connection.close();
  await Promise.all([a.close(), b.close()]);
});
