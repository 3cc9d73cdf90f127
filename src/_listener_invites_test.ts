import assert from "node:assert/strict";
import { createInviteTicket, createTicket, formatTicket } from "./ticket.ts";
import { readInviteRecord } from "./_listener_invites.ts";

Deno.test("readInviteRecord() takes an invite of the host ticket's room and refuses one whose host verifier differs", async () => {
  const host = await createTicket({ url: "wss://signal.example.com" });
  const invite = await createInviteTicket(host);
  const read = await readInviteRecord({ name: "laptop", ticket: formatTicket(invite) }, host);
  assert.equal(read.name, "laptop");
  const other = await createTicket({ url: "wss://signal.example.com" });
  for (
    const ticket of [
      { ...invite, hostVerifier: other.hostVerifier },
      { ...invite, hostVerifier: undefined },
    ]
  ) {
    await assert.rejects(
      readInviteRecord({ name: "laptop", ticket: formatTicket(ticket) }, host),
      /is not a guest ticket of this room/,
    );
  }
});
