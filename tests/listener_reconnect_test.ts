/**
 * The desktop's room connection drops and comes back: agents already
 * connected keep their peer-to-peer sessions, and new agents still pair.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { parseTicket, TicketSignaling, WebRTCClientTransport, WebRTCListener } from "../mod.ts";
import { startLocalSignaling } from "../worker/local.ts";
import { createTestServer, LOCAL, until } from "./_helpers.ts";

function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

async function dial(ticket: string): Promise<Client> {
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(
    new WebRTCClientTransport({
      signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
      ...LOCAL,
      connectTimeout: 10_000,
    }),
  );
  return client;
}

Deno.test("WebRTCListener survives a drop of its room: sessions go on and new agents pair", async () => {
  const worker = await startLocalSignaling();
  const listener = await WebRTCListener.listen({
    url: worker.url,
    createServer: () => createTestServer(),
    room: { reconnect: { minDelay: 10, maxDelay: 50 } },
    ...LOCAL,
  });
  try {
    const before = await dial(listener.ticket!);
    const room = listener.hub;
    const dropped = new Promise<Error>((resolve) => (room.onerror = resolve));
    // Every socket of the room is closed by the runtime, as when the edge restarts.
    await worker.miniflare.unsafeEvictDurableObject("mcp-webrtc-signal", "Room", {
      name: parseTicket(listener.ticket!).room,
      webSockets: "close",
    });
    assert.match((await dropped).message, /Lost the signalling room|connection closed/i);
    // The data channel does not depend on the room.
    assert.equal(
      text(await before.callTool({ name: "greet", arguments: { name: "still" } })),
      "Hello, still!",
    );
    // Once the desktop is back in its room, a new agent pairs.
    let after: Client | undefined;
    const deadline = Date.now() + 5_000;
    while (!after && Date.now() < deadline) {
      after = await dial(listener.ticket!).catch(() => undefined);
      if (!after) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(after, "a new agent paired after the room came back");
    assert.equal(
      text(await after.callTool({ name: "greet", arguments: { name: "new" } })),
      "Hello, new!",
    );
    await until(() => listener.sessions.length === 2, 2_000, "both sessions served");
    await after.close();
    await before.close();
  } finally {
    await listener.close();
    await worker.close();
  }
});
