/**
 * `WebRTCListener` and the room's waiting hellos, through the local worker:
 * each agent takes the sealed hello the desktop left in the room for its
 * invite (the ticket's own, or one of `invite()`), and the desktop leaves a
 * fresh one (a new nonce) for that invite's next agent.
 */
import assert from "node:assert/strict";
import {
  type Agent,
  createTicket,
  deriveTicketKeys,
  MemorySignaling,
  type SignalingHub,
  WebRTCListener,
} from "../mod.ts";
import { AuthenticatedSignaling } from "../src/signaling/authenticated_signaling.ts";
import { resolvePeerConnection } from "../src/runtime.ts";
import { SignalingRoom } from "../src/signaling/signaling_room.ts";
import type { SignalingMessage } from "../src/signaling/signaling.ts";
import { createTestServer, dial, greet, LOCAL, until, withWorker } from "./_helpers.ts";

/** A hello the listener left with its room, and the invite it was left for. */
interface Left {
  hello: SignalingMessage;
  invite: string | undefined;
}

/**
 * Runs `test` with a listener on the local worker, recording every hello its
 * room client leaves with the room.
 */
async function withListener(
  test: (listener: WebRTCListener, room: SignalingRoom, left: Left[]) => Promise<void>,
): Promise<void> {
  const left: Left[] = [];
  const leaveHello = SignalingRoom.prototype.leaveHello;
  SignalingRoom.prototype.leaveHello = function (hello, invite) {
    left.push({ hello, invite });
    return leaveHello.call(this, hello, invite);
  };
  try {
    await withWorker(async (worker) => {
      const listener = await WebRTCListener.listen({
        url: worker.url,
        ...LOCAL,
        connectTimeout: 5_000,
        createServer: () => createTestServer(),
      });
      try {
        await test(listener, listener.hub as SignalingRoom, left);
      } finally {
        await listener.close();
      }
    });
  } finally {
    SignalingRoom.prototype.leaveHello = leaveHello;
  }
}

Deno.test("The listener serves two agents in a row, each on the hello waiting for it, and leaves a hello with a new nonce after each", async () => {
  await withListener(async (listener, room, left) => {
    const took: boolean[] = [];
    const agents: Agent[] = [];
    listener.onagent = (agent) => {
      agents.push(agent);
      took.push(room.tookHello(agent.peer));
    };
    const errors: Error[] = [];
    listener.onerror = (error) => errors.push(error);
    await until(() => left.length === 1, 5_000, "the first hello left");
    for (const name of ["first", "second"]) {
      const client = await dial(listener.ticket!);
      await greet(client, name);
      await client.close();
      await until(() => left.length === agents.length + 1, 5_000, "a new hello left");
    }
    assert.deepEqual(took, [true, true]);
    const nonces = left.map(({ hello }) => hello.nonce);
    assert.equal(new Set(nonces).size, 3, JSON.stringify(nonces));
    assert.deepEqual(errors, []);
  });
});

Deno.test("The listener leaves a hello for each invite: an invite's agent connects on its invite's hello, and a new one is left for that invite", async () => {
  await withListener(async (listener, room, left) => {
    const took: [string | undefined, boolean][] = [];
    listener.onagent = (agent) => took.push([agent.name, room.tookHello(agent.peer)]);
    const errors: Error[] = [];
    listener.onerror = (error) => errors.push(error);
    const forCi = () => left.filter(({ invite }) => invite === "ci");
    const ticket = await listener.invite({ name: "ci" });
    await until(() => forCi().length === 1, 5_000, "a hello left for ci");
    const client = await dial(ticket);
    await greet(client, "ci's agent");
    await client.close();
    await until(() => forCi().length === 2, 5_000, "a new hello left for ci");
    assert.deepEqual(took, [["ci", true]]);
    assert.notEqual(forCi()[0]!.hello.nonce, forCi()[1]!.hello.nonce);
    // Revoking the invite its hello waits for raises no error in the room or here
    // (a connect that libdatachannel's DTLS race made retry says so, and is no error of this).
    await listener.revoke("ci");
    assert.deepEqual(
      errors.filter((error) => !/trying once more with a new offer/.test(error.message)),
      [],
    );
  });
});

/** The one agent of the stub rooms below: it takes the waiting hello with its welcome. */
const TAKER = "0123456789abcdef";

/**
 * A room stub that hands the listener `signaling` for its agent, records
 * each hello left with it (as `record` makes it), and says that only
 * {@linkcode TAKER} took one.
 */
function stubRoom<T>(
  signaling: SignalingHub["signaling"],
  record: (hello: SignalingMessage) => T,
): {
  hub: SignalingHub & {
    leaveHello(hello: SignalingMessage): boolean;
    tookHello(peer: string): boolean;
  };
  left: T[];
} {
  const left: T[] = [];
  return {
    left,
    hub: {
      peers: [],
      signaling,
      close: () => Promise.resolve(),
      leaveHello(hello) {
        left.push(record(hello));
        return true;
      },
      tookHello: (peer) => peer === TAKER,
    },
  };
}

Deno.test("The listener leaves a new hello for an invite whose agent took the last one and was gone before it could be served", async () => {
  const { signalingKey } = await deriveTicketKeys(
    await createTicket({ url: "wss://signal.example.com" }),
  );
  // The agent took the hello with its welcome, then left before the listener got to it.
  const { hub, left } = stubRoom((peer) => {
    throw new Error(`peer ${peer} is not in the room`);
  }, (hello) => hello);
  const listener = new WebRTCListener({
    hub,
    signalingKey,
    ...LOCAL,
    createServer: () => createTestServer(),
  });
  const errors: Error[] = [];
  listener.onerror = (error) => errors.push(error);
  await until(() => left.length === 1, 5_000, "the first hello left");
  hub.onpeerjoin!(TAKER);
  await until(() => left.length === 2, 5_000, "a new hello left after the taker was gone");
  assert.notEqual(left[0].nonce, left[1].nonce);
  assert.match(errors.map(String).join("\n"), /is not in the room/);
  await listener.close();
});

Deno.test("The listener leaves the next hello once it answered the agent that took the last one, while that agent is still connecting", async () => {
  const { signalingKey } = await deriveTicketKeys(
    await createTicket({ url: "wss://signal.example.com" }),
  );
  const [desktopSide, agentSide] = MemorySignaling.createPair();
  // What the desktop had sent (the types of its sealed bodies) at each hello it left.
  const sent: string[] = [];
  const send = desktopSide.send.bind(desktopSide);
  desktopSide.send = (message) => {
    if (typeof message.body === "string") sent.push(JSON.parse(message.body).type);
    return send(message);
  };
  const { hub, left } = stubRoom(() => desktopSide, (hello) => ({ hello, sentBefore: [...sent] }));
  const listener = new WebRTCListener({
    hub,
    signalingKey,
    ...LOCAL,
    connectTimeout: 60_000,
    createServer: () => createTestServer(),
  });
  // The agent offers with no candidates, so that its connect cannot complete.
  const agent = new AuthenticatedSignaling(agentSide, { key: signalingKey, role: "guest" });
  const answers: SignalingMessage[] = [];
  agent.onmessage = (message) => message.type === "answer" && answers.push(message);
  const pc = new (await resolvePeerConnection())({ iceServers: [], ...LOCAL.rtcConfiguration });
  let channel: { close(): void } | undefined;
  try {
    await until(() => left.length === 1, 5_000, "the first hello left");
    hub.onpeerjoin!(TAKER);
    await desktopSide.send(left[0]!.hello); // as the room hands it with the agent's welcome
    await agent.start();
    channel = pc.createDataChannel("mcp") as { close(): void };
    const offer = await pc.createOffer();
    const sdp = offer.sdp!.split("\r\n").filter((line) => !line.startsWith("a=candidate")).join(
      "\r\n",
    );
    await agent.send({ type: "offer", sdp });
    await until(() => left.length === 2, 5_000, "the next hello left");
    await until(() => answers.length === 1, 5_000, "the desktop's answer at the agent");
    assert.ok(left[1]!.sentBefore.includes("answer"), JSON.stringify(left[1]!.sentBefore));
    assert.equal(left[0]!.sentBefore.length, 0);
    assert.notEqual(left[0]!.hello.nonce, left[1]!.hello.nonce);
    // Still connecting: the listener has not reported the agent.
    assert.deepEqual(listener.agents.map((agent) => agent.peer), [TAKER]);
  } finally {
    channel?.close();
    pc.close();
    await listener.close();
    await agent.close();
  }
});
