/**
 * What one agent can make a listener hold through resumable sessions: the
 * sessions it keeps for a resume, and what they keep for a resend. The agent
 * here speaks the resume protocol by hand, as a hostile one would.
 */
import assert from "node:assert/strict";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import { MemorySignaling, WebRTCConnection, WebRTCListener } from "../mod.ts";
import { SESSION_LIMIT_REACHED } from "../src/constants.ts";
import { heldSessions } from "../src/webrtc_connection.ts";
import { createTestServer, LOCAL, OnePeerHub, until } from "./_helpers.ts";

/** A session id as the resume protocol takes one (22 base64url characters). */
function sessionId(n: number): string {
  return `session-${String(n).padStart(14, "0")}`;
}

/**
 * Opens a channel of `agent`, starts session `id` on it by hand and sends a
 * ping; resolves with the ping's answer (a result, or the error of a refused
 * session) and the channel's transport.
 */
async function startSession(agent: WebRTCConnection, id: string) {
  const transport = agent.openTransport();
  const received: JSONRPCMessage[] = [];
  /** Resolves with the answer to request `id`. */
  const answer = async (id: number) => {
    const find = () => received.find((message) => "id" in message && message.id === id);
    await until(() => find() !== undefined, 10_000, `the answer to request ${id}`);
    return find()!;
  };
  transport.onmessage = (message) => void received.push(message);
  await transport.start();
  await transport.send({
    jsonrpc: "2.0",
    method: "mcp-webrtc/resume",
    params: { session: id, received: 0, resume: false },
  });
  await transport.send({ jsonrpc: "2.0", id: 1, method: "ping" });
  return { transport, answer: await answer(1), received, answerTo: answer };
}

Deno.test("WebRTCListener counts a session its agent left for a resume (its channel closed without an end) against maxSessionsPerAgent until the session ends", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  let created = 0;
  const listener = new WebRTCListener({
    hub: new OnePeerHub(desktopSide),
    ...LOCAL,
    maxSessionsPerAgent: 2,
    // Slots alone are measured here, not the start rate.
    sessionStartsPerSecond: 1_000,
    resumeGrace: 1_000,
    createServer: () => {
      created++;
      return createTestServer();
    },
  });
  const errors: string[] = [];
  listener.onerror = (error) => errors.push(error.message);
  let ended = 0;
  listener.onsessionclose = () => void ended++;
  const connected = new Promise<WebRTCConnection>((resolve) =>
    listener.onagent = (agent) => resolve(agent.connection)
  );
  const agent = new WebRTCConnection({ signaling: agentSide, resume: false, ...LOCAL });
  try {
    for (const n of [1, 2]) {
      const { transport, answer } = await startSession(agent, sessionId(n));
      assert.ok("result" in answer, `session ${n} is served: ${JSON.stringify(answer)}`);
      // Closed without an end: the desktop keeps the session for a resume.
      await transport.close();
    }
    const desktop = await connected;
    await until(() => heldSessions(desktop) === 2, 10_000, "both sessions held for a resume");
    assert.equal(created, 2);
    // Both are still the agent's: a third session is refused, naming the limit.
    const third = await startSession(agent, sessionId(3));
    assert.ok(
      "error" in third.answer,
      `a third session is refused: ${JSON.stringify(third.answer)}`,
    );
    assert.equal(third.answer.error.code, SESSION_LIMIT_REACHED);
    assert.match(third.answer.error.message, /has 2 open/);
    assert.equal(created, 2);
    assert.ok(errors.some((message) => /\(maxSessionsPerAgent\)/.test(message)), errors.join("\n"));
    // Once resumeGrace ends the two held sessions, their slots are the agent's again.
    await until(() => ended === 2, 10_000, "the held sessions ended by resumeGrace");
    const fourth = await startSession(agent, sessionId(4));
    assert.ok(
      "result" in fourth.answer,
      `a session is served again: ${JSON.stringify(fourth.answer)}`,
    );
    assert.equal(created, 3);
  } finally {
    await agent.close();
    await listener.close();
  }
});

Deno.test("WebRTCListener bounds what an agent that never acknowledges makes its sessions keep for a resend, by maxUnacknowledgedBytesPerAgent across its sessions: the session whose message does not fit ends, naming it", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  const listener = new WebRTCListener({
    hub: new OnePeerHub(desktopSide),
    ...LOCAL,
    maxUnacknowledgedBytesPerAgent: 3 * 1024 * 1024,
    createServer: createTestServer,
  });
  const errors: string[] = [];
  listener.onerror = (error) => errors.push(error.message);
  let ended = 0;
  listener.onsessionclose = () => void ended++;
  // Plain sessions: this agent never acknowledges what it reads.
  const agent = new WebRTCConnection({ signaling: agentSide, resume: false, ...LOCAL });
  try {
    const sessions = [
      await startSession(agent, sessionId(1)),
      await startSession(agent, sessionId(2)),
    ];
    // Results of a million characters, two on each session: the fourth does not fit 3 MiB.
    let id = 1;
    for (const [n, session] of [0, 1, 0, 1].entries()) {
      id++;
      await sessions[session].transport.send({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "blob", arguments: { size: 1_000_000 } },
      });
      if (n < 3) {
        const result = await sessions[session].answerTo(id);
        assert.ok(
          "result" in result,
          `result ${n + 1} is sent: ${JSON.stringify(result).slice(0, 200)}`,
        );
      }
    }
    await until(() => ended === 1, 10_000, "the session over the budget ended");
    assert.ok(
      errors.some((message) => /'maxUnacknowledgedBytesPerAgent' \(3145728 bytes/.test(message)),
      errors.join("\n"),
    );
    // The other session goes on.
    await sessions[0].transport.send({ jsonrpc: "2.0", id: 100, method: "ping" });
    assert.ok("result" in await sessions[0].answerTo(100));
  } finally {
    await agent.close();
    await listener.close();
  }
});

Deno.test("WebRTCListener refuses a budget of unacknowledged bytes that is not a positive integer, naming it", () => {
  const [, desktopSide] = MemorySignaling.createPair();
  for (const name of ["maxUnacknowledgedBytesPerAgent", "maxUnacknowledgedBytes"]) {
    assert.throws(
      () =>
        new WebRTCListener({
          hub: new OnePeerHub(desktopSide),
          ...LOCAL,
          [name]: 0,
          createServer: createTestServer,
        }),
      new RegExp(`'${name}' must be a positive integer: received 0`),
    );
  }
});
