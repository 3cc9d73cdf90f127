/**
 * A peer that closes says goodbye through signalling, which may arrive before
 * its last messages on the data channels: the other peer still reads them,
 * and a session closed on purpose ends instead of waiting for a redial.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { MemorySignaling, SignalingRoomError, WebRTCConnection } from "../mod.ts";
import { deadline } from "../src/_async.ts";
import { LOCAL } from "./_helpers.ts";
import { resolvePeerConnection } from "../src/runtime.ts";

const STEP = 10_000;

for (const [resume, late] of [[true, false], [false, false], [true, true], [false, true]]) {
  Deno.test(
    `${
      resume ? "With" : "Without"
    } resume, an agent that closes its session at once after its last message: the desktop reads it, and its server ends at once though ${
      late ? "the connection closed before the goodbye came" : "the goodbye came first"
    }`,
    async () => {
      // MemorySignaling hands the goodbye over within the turn: it always
      // arrives before what the data channel still carries. Held back, the
      // goodbye comes after the peer connection's close.
      const [a, b] = MemorySignaling.createPair();
      // What the desktop says after the agent's goodbye: nothing (the agent has left).
      const saidAfterBye: string[] = [];
      let agentSaidBye = false;
      const agentSend = a.send.bind(a);
      a.send = async (message) => {
        if (message.type === "bye") {
          if (late) await new Promise((resolve) => setTimeout(resolve, 300));
          agentSaidBye = true;
        }
        return agentSend(message);
      };
      const desktopSend = b.send.bind(b);
      b.send = (message) => {
        if (agentSaidBye) saidAfterBye.push(message.type);
        return desktopSend(message);
      };
      const agent = new WebRTCConnection({ ...LOCAL, linger: 0, resume, signaling: a });
      const desktop = new WebRTCConnection({
        ...LOCAL,
        initiator: false,
        resume,
        resumeGrace: 60_000,
        signaling: b,
      });
      const methods: string[] = [];
      let ended!: () => void;
      const serverEnded = new Promise<void>((resolve) => (ended = resolve));
      desktop.ontransport = async (transport) => {
        const server = new McpServer({ name: "desktop", version: "1.0.0" });
        server.server.onclose = () => ended();
        await server.connect(transport);
        const deliver = transport.onmessage!;
        transport.onmessage = (message, extra) => {
          if ("method" in message) methods.push(message.method);
          deliver(message, extra);
        };
      };
      const errors: string[] = [];
      desktop.onerror = (error) => errors.push(error.message);
      void desktop.connect().catch(() => {});
      const client = new Client({ name: "agent", version: "1.0.0" }, {
        capabilities: { roots: { listChanged: true } },
      });
      try {
        await deadline(client.connect(agent.openTransport()), STEP);
        // The last message, then the close, in the same turn.
        void client.notification({ method: "notifications/roots/list_changed" });
        await client.close();
        // Well within the grace period (60 s) and the idle timeouts.
        await deadline(serverEnded, 2_000);
        assert.ok(
          methods.includes("notifications/roots/list_changed"),
          `the desktop read ${JSON.stringify(methods)}`,
        );
        assert.deepEqual(errors.filter((message) => /resumeGrace/.test(message)), []);
        await desktop.close();
        // Told first, it says nothing back.
        if (!late) {
          assert.ok(agentSaidBye);
          assert.deepEqual(saidAfterBye, []);
        }
      } finally {
        await agent.close();
        await desktop.close();
      }
    },
  );
}

Deno.test("A peer that closed does not report what signalling says of its last frames: a goodbye refused because the other peer left is no error", async () => {
  const [a, b] = MemorySignaling.createPair();
  // The agent's goodbye is late: the desktop sees the connection close first and says its own,
  // which a room refuses, as the agent has left.
  const agentSend = a.send.bind(a);
  a.send = async (message) => {
    if (message.type === "bye") await new Promise((resolve) => setTimeout(resolve, 300));
    return agentSend(message);
  };
  let refusedAfterClose = 0;
  const desktopSend = b.send.bind(b);
  b.send = (message) => {
    if (message.type === "bye") {
      refusedAfterClose++;
      setTimeout(() =>
        b.onerror?.(
          new SignalingRoomError(
            "frame_refused",
            "Signalling room refused a frame: That peer is not in the room: wait for its join frame (unknown_peer)",
          ),
        ), 0);
    }
    return desktopSend(message);
  };
  const agent = new WebRTCConnection({ ...LOCAL, linger: 0, signaling: a });
  const desktop = new WebRTCConnection({ ...LOCAL, initiator: false, signaling: b });
  const errors: string[] = [];
  desktop.onerror = (error) => errors.push(error.message);
  const disconnected = new Promise<void>((resolve) => (desktop.ondisconnect = () => resolve()));
  desktop.ontransport = (transport) =>
    void new McpServer({ name: "desktop", version: "1.0.0" }).connect(transport);
  void desktop.connect().catch(() => {});
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    await client.close();
    await deadline(disconnected, STEP);
    await deadline(agent.close(), STEP);
    // The refusal's turn has passed.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(refusedAfterClose, 1, "the desktop said goodbye before the agent's came");
    // A connect that met libdatachannel's DTLS race says so as it tries again (see
    // docs/DESIGN.md); nothing else may be reported.
    assert.deepEqual(
      errors.filter((error) => !/trying once more with a new offer/.test(error)),
      [],
    );
  } finally {
    await agent.close();
    await desktop.close();
  }
});

Deno.test("Without resume, a desktop told of its peer connection's close before a channel's last message still reads that message", async () => {
  // node-datachannel calls the connection's state change and a channel's
  // messages back on queues of their own: the close may come first.
  const Base = await resolvePeerConnection();
  const made: (InstanceType<typeof Base> & EventTarget)[] = [];
  const Recorded = class extends (Base as unknown as new (...args: unknown[]) => EventTarget) {
    constructor(...args: unknown[]) {
      super(...args);
      made.push(this as unknown as InstanceType<typeof Base> & EventTarget);
    }
  } as unknown as typeof Base;
  const [a, b] = MemorySignaling.createPair();
  const agent = new WebRTCConnection({ ...LOCAL, linger: 0, resume: false, signaling: a });
  const desktop = new WebRTCConnection({
    ...LOCAL,
    initiator: false,
    resume: false,
    signaling: b,
    RTCPeerConnection: Recorded,
  });
  const methods: string[] = [];
  desktop.ontransport = async (transport) => {
    await new McpServer({ name: "desktop", version: "1.0.0" }).connect(transport);
    const deliver = transport.onmessage!;
    transport.onmessage = (message, extra) => {
      if ("method" in message) methods.push(message.method);
      deliver(message, extra);
    };
  };
  const disconnected = new Promise<void>((resolve) => (desktop.ondisconnect = () => resolve()));
  void desktop.connect().catch(() => {});
  const client = new Client({ name: "agent", version: "1.0.0" }, {
    capabilities: { roots: { listChanged: true } },
  });
  try {
    await deadline(client.connect(agent.openTransport()), STEP);
    assert.equal(made.length, 1);
    // The last message leaves; the close is told before it is read.
    void client.notification({ method: "notifications/roots/list_changed" });
    Object.defineProperty(made[0], "connectionState", { value: "closed", configurable: true });
    made[0].dispatchEvent(new Event("connectionstatechange"));
    await deadline(disconnected, STEP);
    assert.ok(
      methods.includes("notifications/roots/list_changed"),
      `the desktop read ${JSON.stringify(methods)}`,
    );
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
});
