/**
 * The threat model of `docs/SECURITY.md`, end to end: real peers on loopback,
 * the real worker in Miniflare on 127.0.0.1, and tickets. A compromised relay
 * is played by a {@linkcode Tap} below `AuthenticatedSignaling`, on the sealed
 * envelopes, where a signalling service sits.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  AuthenticationError,
  ConnectError,
  createGuestTicket,
  createTicket,
  deriveTicketKeys,
  formatTicket,
  MemorySignaling,
  parseTicket,
  type SignalingMessage,
  SignalingRoomError,
  TicketError,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
  WebRTCServerTransport,
} from "../mod.ts";
import {
  AuthenticatedSignaling,
  createRoomKey,
  keyVerifier,
  roomUrl,
  SignalingRoom,
  type WebSocketConstructor,
  WebSocketSignaling,
} from "../src/signaling/mod.ts";
import { decodeBase64Url, encodeBase64Url } from "../src/_base64url.ts";
import { useClock } from "../src/_clock.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { createInviteTicket } from "../src/ticket.ts";
import {
  createTestServer,
  dial,
  greet,
  LOCAL,
  text,
  until,
  withDesktop,
  withWorker,
} from "./_helpers.ts";
import {
  alterFingerprint,
  randomMac,
  recordingServers,
  sealedType,
  type Tap,
  tappedAgent,
  withAlteredFingerprint,
  withTappedDesktop,
} from "./_security_helpers.ts";

/** How long an agent waits for a connection that a refusal will never let happen. */
const REFUSED_TIMEOUT = 3_000;

function authErrors(errors: Error[]): AuthenticationError[] {
  return errors.filter((error): error is AuthenticationError =>
    error instanceof AuthenticationError
  );
}

/** A candidate line for 127.0.0.1 (the discard port), as a relay might inject. */
const FORGED_CANDIDATE = {
  candidate: "candidate:1 1 UDP 2122317823 127.0.0.1 9 typ host",
  sdpMid: "0",
  sdpMLineIndex: 0,
};

Deno.test("A relay that rewrites the DTLS fingerprint in the sealed answer is refused by the agent, which names the failed check; the server never sees a message", async () => {
  const log = recordingServers();
  await withDesktop({ createServer: log.createServer }, async ({ listener, ticket }) => {
    const agent = await tappedAgent(ticket, REFUSED_TIMEOUT);
    let altered = 0;
    agent.tap.rewrite = (message) => {
      if (sealedType(message) !== "answer") return [message];
      const forged = withAlteredFingerprint(message);
      assert.ok(forged, "the answer carries a fingerprint");
      altered++;
      return [forged];
    };
    const client = new Client({ name: "agent", version: "1.0.0" });
    const error = await client.connect(agent.transport).then(() => undefined, (error) => error);
    assert.equal(altered, 1);
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.stage, "signaling");
    assert.match(error.message, /refused .*authentication code does not match/);
    assert.ok(error.cause instanceof AuthenticationError, String(error.cause));
    assert.equal(authErrors(agent.errors).length, 1, agent.errors.map(String).join("\n"));
    // The agent was let into the room (it holds the key), but never connected:
    // servers are made per MCP session, so none was made, and no message got through.
    assert.equal(log.servers.length, 0);
    await until(() => listener.sessions.length === 0, 3_000, "the refused session ended");
    assert.equal(log.total(), 0);
  });
});

Deno.test("A relay that rewrites the DTLS fingerprint in the sealed offer is refused by the desktop with an AuthenticationError; the server never sees a message", async () => {
  const log = recordingServers();
  let altered = 0;
  const configure = (tap: Tap) => {
    tap.rewrite = (message) => {
      if (sealedType(message) !== "offer") return [message];
      altered++;
      return [withAlteredFingerprint(message)!];
    };
  };
  await withTappedDesktop(
    { createServer: log.createServer, configure },
    async ({ listener, ticket, errors }) => {
      const error = await dial(ticket, { connectTimeout: REFUSED_TIMEOUT }).then(
        () => undefined,
        (error) => error,
      );
      assert.equal(altered, 1);
      // The desktop does not answer an altered offer, so the agent only sees no answer.
      assert.ok(error instanceof ConnectError, String(error));
      assert.equal(error.stage, "signaling");
      const refused = authErrors(errors);
      assert.equal(refused.length, 1, errors.map(String).join("\n"));
      assert.match(refused[0]!.message, /authentication code does not match/);
      assert.equal(log.servers.length, 0, "no connection, so no session and no server");
      await until(() => listener.sessions.length === 0, 3_000, "the refused session ended");
      assert.equal(log.total(), 0);
    },
  );
});

Deno.test("Forged, unsealed and duplicated messages injected mid-handshake are dropped on both sides, and the real pairing still succeeds", async () => {
  const log = recordingServers();
  const configure = (tap: Tap) => {
    tap.rewrite = (message) =>
      sealedType(message) === "offer"
        ? [
          // The relay's own offer, then a candidate, unsealed; then a sealed-looking forgery.
          { type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 00:11\r\n" },
          { type: "candidate", candidate: FORGED_CANDIDATE },
          {
            ...message,
            body: JSON.stringify({ type: "candidate", candidate: FORGED_CANDIDATE }),
            mac: randomMac(),
          },
          message,
        ]
        : [message];
  };
  await withTappedDesktop(
    { createServer: log.createServer, configure },
    async ({ ticket, errors: hostErrors }) => {
      const agent = await tappedAgent(ticket);
      agent.tap.rewrite = (message) =>
        sealedType(message) === "answer"
          ? [
            { type: "candidate", candidate: FORGED_CANDIDATE },
            {
              ...message,
              seq: (message.seq as number) + 1,
              body: JSON.stringify({ type: "candidate", candidate: FORGED_CANDIDATE }),
              mac: randomMac(),
            },
            message,
            message, // a duplicate: its sequence number is not above the last one
          ]
          : [message];
      const client = new Client({ name: "agent", version: "1.0.0" });
      await client.connect(agent.transport);
      await greet(client, "through the noise");
      const agentRefused = authErrors(agent.errors).map((error) => error.message);
      assert.equal(agentRefused.length, 3, agent.errors.map(String).join("\n"));
      assert.match(agentRefused[0]!, /not sealed/);
      assert.match(agentRefused[1]!, /authentication code does not match/);
      assert.match(agentRefused[2]!, /sequence number/);
      const hostRefused = authErrors(hostErrors).map((error) => error.message);
      assert.equal(hostRefused.length, 3, hostErrors.map(String).join("\n"));
      assert.match(hostRefused[0]!, /not sealed/);
      assert.match(hostRefused[1]!, /not sealed/);
      assert.match(hostRefused[2]!, /authentication code does not match/);
      assert.equal(log.servers.length, 1);
      assert.ok(log.total() > 0);
      await client.close();
    },
  );
});

Deno.test("A sealed offer replayed from an earlier connection is refused by the desktop, and the new connection still works", async () => {
  const log = recordingServers();
  let recorded: SignalingMessage[] = [];
  let replayed = 0;
  let connections = 0;
  const configure = (tap: Tap) => {
    if (++connections !== 2) return;
    // Connection 2: right after its first real message, the relay replays all of connection 1.
    tap.rewrite = (message) => {
      if (replayed > 0) return [message];
      replayed = recorded.length;
      return [message, ...recorded];
    };
  };
  await withTappedDesktop(
    { createServer: log.createServer, configure },
    async ({ listener, ticket, hub, errors }) => {
      const first = await dial(ticket);
      await greet(first, "one");
      await first.close();
      await until(() => listener.sessions.length === 0, 3_000, "connection 1 closed");
      recorded = [...hub.taps[0]!.received];
      assert.ok(recorded.some((envelope) => sealedType(envelope) === "offer"));
      const bodies = recorded.filter((envelope) => envelope.body !== undefined).length;

      const second = await dial(ticket);
      await greet(second, "two");
      assert.equal(replayed, recorded.length);
      // Every replayed envelope that carries a message (the offer, candidates, the bye) is refused.
      const refused = authErrors(errors).filter((error) =>
        /another connection/.test(error.message)
      );
      assert.ok(refused.length >= bodies, errors.map(String).join("\n"));
      assert.equal(log.servers.length, 2);
      // The second server saw its own client's messages and nothing else.
      assert.deepEqual(
        log.servers[1]!.map((message) => "method" in message ? message.method : "response"),
        ["initialize", "notifications/initialized", "tools/call"],
      );
      await second.close();
    },
  );
});

Deno.test("An earlier connection replayed as a new agent, with the guest key the relay saw, gets its server no message", async () => {
  const log = recordingServers();
  await withTappedDesktop(
    { createServer: log.createServer, connectTimeout: 1_000 },
    async ({ listener, ticket, hub, errors }) => {
      const guestTicket = parseTicket(ticket);
      const first = await dial(ticket);
      await greet(first, "one");
      await first.close();
      await until(() => listener.sessions.length === 0, 3_000, "connection 1 closed");
      const recorded = [...hub.taps[0]!.received];
      // Its hellos bind nothing and are answered; every message it carried is refused.
      const bound =
        recorded.filter((envelope) =>
          envelope.peerNonce !== undefined && envelope.body !== undefined
        ).length;

      // The relay knows the guest key (it checks it), so it can come back as a new guest.
      const { guestKey } = await deriveTicketKeys(guestTicket);
      const replayer = await SignalingRoom.join(roomUrl(guestTicket), {
        role: "guest",
        key: guestKey,
        reconnect: false,
      });
      try {
        const toHost = replayer.signaling("host");
        await toHost.start?.();
        for (const envelope of recorded) await toHost.send(envelope);
        await until(
          () => authErrors(errors).length >= bound,
          3_000,
          "every replayed message bound to connection 1 refused",
        );
        // The replayer cannot complete a connection: no session, so no server; its
        // connection gives its slot back after the connect timeout, although the
        // replayer stays in the room.
        assert.equal(log.servers.length, 1, "only the first agent's session got a server");
        await until(() => listener.agents.length === 0, 3_000, "the replayer's slot given back");
        assert.equal(log.servers.length, 1, "still no server for the replayer");
      } finally {
        await replayer.close();
      }
    },
  );
});

Deno.test("A stranger with the room id but not the secret is refused by the worker (key_refused) before the desktop hears of it", async () => {
  const log = recordingServers();
  await withDesktop({ createServer: log.createServer }, async ({ worker, listener }) => {
    const errors: Error[] = [];
    listener.onerror = (error) => errors.push(error);
    const ticket = parseTicket(listener.ticket!);
    // A random key, and the room id itself presented as a key.
    for (const key of [createRoomKey(), ticket.room]) {
      const error = await WebSocketSignaling.connect(roomUrl(ticket), { key, hostTimeout: 2_000 })
        .then(async (signaling) => {
          await signaling.close();
          return undefined;
        }, (error) => error);
      assert.ok(error instanceof SignalingRoomError, String(error));
      assert.equal(error.code, "key_refused");
    }
    // A ticket of the same room with another secret: the agent is told why.
    const stranger = await createGuestTicket(await createTicket({ url: worker.url }));
    const error = await dial(formatTicket({ ...stranger, room: ticket.room })).then(
      () => undefined,
      (error) => error,
    );
    assert.ok(error instanceof ConnectError, String(error));
    assert.ok(error.cause instanceof SignalingRoomError, String(error.cause));
    assert.equal(error.cause.code, "key_refused");
    // The refusal awaited above is the room's, at the WebSocket upgrade: the
    // stranger never joined, so nothing was on its way to the desktop.
    assert.equal(log.servers.length, 0, "createServer was never called");
    assert.deepEqual(errors, []);
    assert.equal(listener.sessions.length, 0);
  });
});

Deno.test("Neither a stranger's key nor the guest key can take the host's place in a room the desktop holds (key_refused)", async () => {
  const log = recordingServers();
  await withDesktop({ createServer: log.createServer }, async ({ listener, ticket }) => {
    // The host ticket the listener opened its room with.
    const hostTicket = parseTicket(listener.hostTicket!);
    const guest = await deriveTicketKeys(parseTicket(ticket));
    const attempts = [
      { key: createRoomKey(), guestVerifier: await keyVerifier(createRoomKey()) },
      { key: guest.guestKey, guestVerifier: guest.guestVerifier },
    ];
    for (const { key, guestVerifier } of attempts) {
      const error = await SignalingRoom.join(roomUrl(hostTicket), {
        role: "host",
        key,
        guestVerifier,
        reconnect: false,
      }).then(async (room) => {
        await room.close();
        return undefined;
      }, (error) => error);
      assert.ok(error instanceof SignalingRoomError, String(error));
      assert.equal(error.code, "key_refused");
    }
    // The desktop still holds the room: the rightful agent reaches it.
    const client = await dial(ticket);
    await greet(client, "still here");
    assert.equal(log.servers.length, 1);
    await client.close();
  });
});

Deno.test({
  name:
    "The worker refuses a host key that does not make a ticket's room id, so nobody can claim the room before its desktop, not even its agent",
  // A ticket's room id binds keyVerifier(hostKey) and the guest verifier: the
  // worker lets only that key open the room, so a stranger who learns the id
  // cannot claim it first (or after it expired) and lock the desktop out; nor
  // can the agent, who knows both verifiers (the ticket's host verifier, and
  // its own key's) but not the host key.
  fn: async () => {
    await withWorker(async (worker) => {
      const hostTicket = await createTicket({ url: worker.url });
      const guestTicket = await createGuestTicket(hostTicket);
      const { guestKey, guestVerifier } = await deriveTicketKeys(guestTicket);
      const attempts = [
        { key: createRoomKey(), guestVerifier: await keyVerifier(createRoomKey()) },
        { key: createRoomKey(), guestVerifier },
        { key: guestKey, guestVerifier },
        { key: guestTicket.hostVerifier!, guestVerifier },
      ];
      for (const attempt of attempts) {
        const error = await SignalingRoom.join(roomUrl(hostTicket), {
          role: "host",
          ...attempt,
          reconnect: false,
        }).then(async (room) => {
          await room.close();
          return undefined;
        }, (error) => error);
        assert.ok(error instanceof SignalingRoomError, `a stranger claimed the room: ${error}`);
        assert.equal(error.code, "key_refused");
      }
      const listener = await WebRTCListener.listen({
        hostTicket,
        createServer: () => createTestServer(),
        ...LOCAL,
      });
      await listener.close();
    });
  },
});

Deno.test("An expired ticket is refused before any network use, by the agent and by the desktop", async () => {
  let sockets = 0;
  const CountingWebSocket = function () {
    sockets++;
    throw new Error("no socket should be opened");
  } as unknown as WebSocketConstructor;
  const hostTicket = await createTicket({
    url: "ws://127.0.0.1:9",
    expiresAt: new Date(Date.now() - 60_000),
  });
  const guestTicket = formatTicket(await createGuestTicket(hostTicket));

  const signaling = new TicketSignaling(guestTicket, { WebSocket: CountingWebSocket });
  await assert.rejects(signaling.start(), (error) => {
    assert.ok(error instanceof TicketError, String(error));
    assert.match(error.message, /expired/);
    return true;
  });

  const transport = new WebRTCClientTransport({
    signaling: new TicketSignaling(guestTicket, { WebSocket: CountingWebSocket }),
    ...LOCAL,
    connectTimeout: 2_000,
  });
  const error = await new Client({ name: "agent", version: "1.0.0" }).connect(transport).then(
    () => undefined,
    (error) => error,
  );
  assert.ok(error instanceof ConnectError, String(error));
  assert.ok(error.cause instanceof TicketError, String(error.cause));

  await assert.rejects(
    WebRTCListener.listen({
      hostTicket,
      createServer: () => createTestServer(),
      room: { WebSocket: CountingWebSocket },
    }),
    TicketError,
  );
  assert.equal(sockets, 0);
});

Deno.test("An agent that pushed its ticket's expiry forward is still refused by the desktop after the real expiry, with the sealed reason", async () => {
  const log = recordingServers();
  let expiresAt = new Date();
  const options = () => {
    expiresAt = new Date(Date.now() + 1_000);
    return { expiresAt, createServer: log.createServer };
  };
  await withDesktop(options, async ({ listener }) => {
    // The desktop's clock is moved past the real expiry instead of waiting for it.
    const clock = new ManualClock();
    useClock(listener, clock);
    const errors: Error[] = [];
    listener.onerror = (error) => errors.push(error);
    // The expiry is in the ticket in clear and covered by no key: a holder can change it.
    const extended = formatTicket({
      ...parseTicket(listener.ticket!),
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    await clock.advance(expiresAt.getTime() - clock.now() + 100);
    const error = await dial(extended).then(() => undefined, (error) => error);
    assert.ok(error instanceof ConnectError, String(error));
    assert.match(error.message, /the ticket expired/);
    assert.equal(log.servers.length, 0, "createServer was never called");
    assert.ok(errors.some((error) => /Refused agent .*expired/.test(error.message)));
  });
});

Deno.test("Every sealed envelope is checked with crypto.subtle.verify on the code received; codes are only computed to send", async () => {
  const subtle = crypto.subtle;
  const { sign, verify } = subtle;
  let signs = 0;
  const verified: string[] = [];
  subtle.sign = function (...args: Parameters<SubtleCrypto["sign"]>) {
    if (args[0] === "HMAC") signs++;
    return sign.apply(subtle, args);
  };
  subtle.verify = function (...args: Parameters<SubtleCrypto["verify"]>) {
    if (args[0] === "HMAC") verified.push(encodeBase64Url(new Uint8Array(args[2] as ArrayBuffer)));
    return verify.apply(subtle, args);
  };
  const log = recordingServers();
  try {
    await withTappedDesktop({ createServer: log.createServer }, async ({ ticket, hub }) => {
      const agent = await tappedAgent(ticket);
      const client = new Client({ name: "agent", version: "1.0.0" });
      await client.connect(agent.transport);
      await greet(client, "verified");
      const taps = [agent.tap, ...hub.taps];
      const sent = () => taps.reduce((sum, tap) => sum + tap.sent.length, 0);
      const received = () => taps.flatMap((tap) => tap.received);
      await until(
        () => signs === sent() && verified.length === received().length,
        3_000,
        "one sign() per envelope sent, one verify() per envelope received",
      );

      // The offer and the answer at least (each end's candidates may ride in its SDP, and a
      // hello left in the room may be the only one); every envelope is counted as it came.
      const types = received().flatMap((envelope) =>
        typeof envelope.body === "string" ? [String(JSON.parse(envelope.body).type)] : []
      );
      assert.ok(
        types.includes("offer") && types.includes("answer"),
        `the offer and the answer were among the envelopes received: ${types.join(", ")}`,
      );
      // verify() was handed exactly the codes that arrived, each once.
      assert.deepEqual(
        [...verified].sort(),
        received().map((envelope) => {
          const mac = decodeBase64Url(envelope.mac as string)!;
          return encodeBase64Url(mac);
        }).sort(),
      );
      await client.close();
    });
  } finally {
    subtle.sign = sign;
    subtle.verify = verify;
  }
});

Deno.test("Without sealing, an altered DTLS fingerprint still stops the channel: the DTLS handshake checks it", async () => {
  // What the sealing protects: a relay that could rewrite the fingerprint
  // could put its own certificate in and sit in the middle. Here an unsealed
  // relay only alters it; the same relay passing it unchanged is the control.
  const throughRelay = async (alter: boolean) => {
    const [clientSide, relayOut] = MemorySignaling.createPair();
    const [relayIn, serverSide] = MemorySignaling.createPair();
    let altered = 0;
    relayOut.onmessage = (message) => void relayIn.send(message).catch(() => {});
    relayIn.onmessage = (message) => {
      if (alter && message.type === "answer") {
        message = { ...message, sdp: alterFingerprint(message.sdp as string) };
        altered++;
      }
      void relayOut.send(message).catch(() => {});
    };
    await Promise.all([relayOut.start(), relayIn.start()]);
    const log = recordingServers();
    const server = log.createServer();
    await server.connect(new WebRTCServerTransport({ signaling: serverSide, ...LOCAL }));
    const client = new Client({ name: "agent", version: "1.0.0" });
    try {
      const error = await client.connect(
        new WebRTCClientTransport({ signaling: clientSide, ...LOCAL, connectTimeout: 5_000 }),
      ).then(() => undefined, (error) => error);
      if (!alter) {
        assert.equal(error, undefined);
        await greet(client, "control");
        return;
      }
      // Refused, tried once more with a new offer (both peers are this
      // module's), altered again and refused again.
      assert.equal(altered, 2);
      assert.ok(error instanceof ConnectError, String(error));
      // Either end may notice first: this one, or the other, which then says it gave up.
      assert.doesNotMatch(error.message, /did not complete within/);
      assert.equal(log.total(), 0);
    } finally {
      await client.close();
      await server.close();
    }
  };
  await throughRelay(false);
  await throughRelay(true);
});

Deno.test("T13: agents with invites of their own cannot pose as the desktop to each other, even if a relay routes them to each other", async () => {
  // The same relay as in the shared-ticket case below, but each agent holds
  // its own invite of the room: the impostor seals as "host" with its own
  // signalling key, which the victim's does not verify.
  const host = await createTicket({ url: "wss://signal.test" });
  const impostorKey = (await deriveTicketKeys(await createInviteTicket(host))).signalingKey;
  const victimKey = (await deriveTicketKeys(await createInviteTicket(host))).signalingKey;
  const [relayToImpostor, relayToVictim] = MemorySignaling.createPair();
  const impostor = createTestServer();
  impostor.registerTool("whoami", {}, () => ({ content: [{ type: "text", text: "impostor" }] }));
  const impostorSignaling = new AuthenticatedSignaling(relayToImpostor, {
    key: impostorKey,
    role: "host",
  });
  await impostor.connect(new WebRTCServerTransport({ signaling: impostorSignaling, ...LOCAL }));
  const victimSignaling = new AuthenticatedSignaling(relayToVictim, {
    key: victimKey,
    role: "guest",
  });
  const victim = new Client({ name: "agent", version: "1.0.0" });
  try {
    const transport = new WebRTCClientTransport({
      signaling: victimSignaling,
      ...LOCAL,
      connectTimeout: REFUSED_TIMEOUT,
    });
    const error = await victim.connect(transport).then(() => undefined, (error) => error);
    assert.ok(error instanceof ConnectError, String(error));
    assert.match(error.message, /did not complete|authentication code does not match/);
  } finally {
    await victim.close();
    await impostor.close();
  }
});

Deno.test("Known limitation of a shared ticket: a holder of the guest ticket can pose as the desktop to another holder, if a relay routes them to each other", async () => {
  // Both ends of AuthenticatedSignaling share one symmetric key, and `role` is
  // only a sealed field: whoever holds the guest ticket can seal as "host". The
  // worker never routes a guest to a guest (worker/tests/room_test.ts), so this
  // takes a compromised relay; one ticket per agent removes it.
  const guestTicket = await createGuestTicket(await createTicket({ url: "wss://signal.test" }));
  const { signalingKey } = await deriveTicketKeys(guestTicket);
  const [relayToImpostor, relayToVictim] = MemorySignaling.createPair();
  const impostor = createTestServer();
  impostor.registerTool("whoami", {}, () => ({ content: [{ type: "text", text: "impostor" }] }));
  await impostor.connect(
    new WebRTCServerTransport({
      signaling: new AuthenticatedSignaling(relayToImpostor, { key: signalingKey, role: "host" }),
      ...LOCAL,
    }),
  );
  const victim = new Client({ name: "agent", version: "1.0.0" });
  try {
    await victim.connect(
      new WebRTCClientTransport({
        signaling: new AuthenticatedSignaling(relayToVictim, { key: signalingKey, role: "guest" }),
        ...LOCAL,
        connectTimeout: 10_000,
      }),
    );
    assert.equal(text(await victim.callTool({ name: "whoami", arguments: {} })), "impostor");
  } finally {
    await victim.close();
    await impostor.close();
  }
});
