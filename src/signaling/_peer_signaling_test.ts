import assert from "node:assert/strict";
import { PeerSignaling } from "./_peer_signaling.ts";
import { RoomRelayPipe } from "../relay/room_pipe.ts";

Deno.test("A room's view of a peer that leaves tells its relay pipe's close after the messages that came before: a goodbye and the leaving read in one turn keep their order", async () => {
  const pipe = new RoomRelayPipe("guest-1", () => undefined, true);
  const view = new PeerSignaling("guest-1", () => Promise.resolve(), pipe);
  const events: string[] = [];
  view.onmessage = (message) => events.push(`message ${message.type}`);
  pipe.listen({
    message: () => {},
    error: () => {},
    close: () => events.push("pipe closed"),
  });
  await view.start();
  // The room's goodbye frame and its leave frame, dispatched in one turn.
  view.receive({ type: "bye", reason: "refused a frame" });
  const closed = view.close();
  await closed;
  assert.deepEqual(events, ["message bye", "pipe closed"]);
});
