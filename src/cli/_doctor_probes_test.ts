import assert from "node:assert/strict";
import { startLocalSignaling } from "../../worker/local.ts";
import { createTicket, deriveTicketKeys } from "../ticket.ts";
import { roomUrl } from "../signaling/room_protocol.ts";
import { joinRoom } from "./_doctor_probes.ts";

Deno.test("joinRoom() says a room that refuses a new ticket's host key is an older worker's, and what to do", async () => {
  const worker = await startLocalSignaling();
  try {
    const ticket = await createTicket({ url: worker.url });
    const { hostKey, guestVerifier } = await deriveTicketKeys(ticket);
    const joined = await joinRoom(roomUrl(ticket), hostKey!, guestVerifier);
    assert.equal(joined.websocket.ok, true);
    await joined.host?.close();
    // What a worker that reads only version 1 tickets answers a version 2 host.
    const other = await deriveTicketKeys(await createTicket({ url: worker.url }));
    const refused = await joinRoom(roomUrl(ticket), other.hostKey!, guestVerifier);
    assert.equal(refused.websocket.ok, false);
    assert.match(
      refused.websocket.error ?? "",
      /older than this version.*deploy this version's worker/,
    );
  } finally {
    await worker.close();
  }
});
