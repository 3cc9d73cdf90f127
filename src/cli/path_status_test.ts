import assert from "node:assert/strict";
import type { ConnectionPath } from "../peer.ts";
import { pathName, pathType, StatusLog } from "./log.ts";
import { reportPath } from "./path_status.ts";

// The paths the NAT lab measured (tests/nat_test.ts), as each side reads them.
/** Symmetric NATs on both sides, through coturn: the desktop's view, and the agent's. */
const SYMMETRIC_DESKTOP: ConnectionPath = {
  localCandidateType: "prflx",
  remoteCandidateType: "relay",
  remoteAddress: "203.0.113.10:49358",
};
const SYMMETRIC_AGENT: ConnectionPath = {
  localCandidateType: "relay",
  remoteCandidateType: "prflx",
  remoteAddress: "203.0.113.2:47804",
};
/** Cone NATs on both sides. */
const CONES: ConnectionPath = {
  localCandidateType: "srflx",
  remoteCandidateType: "srflx",
  remoteAddress: "203.0.113.2:35435",
};
/** A public agent dialling a desktop behind a cone NAT, whose check came first. */
const CHECKED_FIRST: ConnectionPath = { localCandidateType: "host", remoteCandidateType: "prflx" };

Deno.test("pathType() is relay when either end is a TURN relay", () => {
  assert.equal(pathType(SYMMETRIC_DESKTOP), "relay");
  assert.equal(pathType(SYMMETRIC_AGENT), "relay");
  assert.equal(pathType({ localCandidateType: "host", remoteCandidateType: "relay" }), "relay");
});

Deno.test("pathType() names a direct path by its end furthest from the peer's own address", () => {
  assert.equal(pathType(CONES), "srflx");
  assert.equal(pathType({ localCandidateType: "host", remoteCandidateType: "srflx" }), "srflx");
  assert.equal(pathType({ localCandidateType: "srflx", remoteCandidateType: "prflx" }), "srflx");
  assert.equal(pathType(CHECKED_FIRST), "prflx");
  assert.equal(pathType({ localCandidateType: "host", remoteCandidateType: "host" }), "host");
  assert.equal(pathType({ localCandidateType: "host" }), "host");
  assert.equal(
    pathType({ localCandidateType: "relay-ws", remoteCandidateType: "relay-ws" }),
    "relay-ws",
  );
  assert.equal(pathType(undefined), undefined);
  assert.equal(pathType({}), undefined);
  assert.equal(pathType({ localCandidateType: "\u001b[2Jbogus" }), undefined);
});

Deno.test("pathName() names both ends where they differ, and the other end's address", () => {
  assert.equal(
    pathName(SYMMETRIC_DESKTOP),
    "relay (this end prflx, the other end relay at 203.0.113.10:49358)",
  );
  assert.equal(
    pathName(SYMMETRIC_AGENT),
    "relay (this end relay, the other end prflx at 203.0.113.2:47804)",
  );
  assert.equal(pathName(CONES), "srflx (203.0.113.2:35435)");
  assert.equal(pathName(CHECKED_FIRST), "prflx (this end host, the other end prflx)");
  assert.equal(
    pathName({ localCandidateType: "host", remoteCandidateType: "host", remoteAddress: "[::1]:5" }),
    "host ([::1]:5)",
  );
  assert.equal(pathName({ localCandidateType: "host" }), "host (this end host, the other end ?)");
  assert.equal(
    pathName({ localCandidateType: "relay-ws", remoteCandidateType: "relay-ws" }),
    "relay-ws (the signalling room's relay, end-to-end encrypted)",
  );
  assert.equal(pathName(undefined), "an unknown path");
  // What does not look like a candidate type or an address is shown escaped.
  assert.equal(
    pathName({
      localCandidateType: "host",
      remoteCandidateType: "\u001b[31mx",
      remoteAddress: "a\nb",
    }),
    'host (this end host, the other end ? at "a\\nb")',
  );
});

/** A connection whose path is `path` when read, and whose `onpathchange` the test calls. */
function source(path: ConnectionPath | undefined) {
  return {
    path,
    onpathchange: undefined as ((path: ConnectionPath) => void) | undefined,
    getConnectionPath() {
      return Promise.resolve(this.path);
    },
  };
}

const AGENT_LINES = {
  event: "agent-connected",
  connected: (via: string) => `Agent 1 connected via ${via}`,
  changed: (via: string, was: string) => `Agent 1's path changed: now via ${via} (was ${was})`,
  fields: { agent: 1 },
};

Deno.test("reportPath() prints the path once connected, then a line for each change", async () => {
  const lines: string[] = [];
  const connection = source(SYMMETRIC_AGENT);
  await reportPath(connection, new StatusLog({ write: (line) => lines.push(line) }), AGENT_LINES);
  connection.onpathchange!(SYMMETRIC_AGENT);
  connection.onpathchange!(CONES);
  connection.onpathchange!(CONES);
  assert.deepEqual(lines, [
    "mcp-webrtc: Agent 1 connected via relay (this end relay, the other end prflx at 203.0.113.2:47804)",
    "mcp-webrtc: Agent 1's path changed: now via srflx (203.0.113.2:35435) (was relay)",
  ]);
});

Deno.test("reportPath() in JSON gives the path's type, both ends and the previous type", async () => {
  const lines: string[] = [];
  const connection = source(SYMMETRIC_DESKTOP);
  const log = new StatusLog({ json: true, write: (line) => lines.push(line) });
  await reportPath(connection, log, AGENT_LINES);
  connection.onpathchange!(CONES);
  const [connected, changed] = lines.map((line) => JSON.parse(line));
  assert.equal(connected.event, "agent-connected");
  assert.deepEqual(
    {
      agent: connected.agent,
      path: connected.path,
      localCandidateType: connected.localCandidateType,
      remoteCandidateType: connected.remoteCandidateType,
      remoteAddress: connected.remoteAddress,
    },
    { agent: 1, path: "relay", ...SYMMETRIC_DESKTOP },
  );
  assert.equal(changed.event, "path-changed");
  assert.equal(changed.agent, 1);
  assert.equal(changed.path, "srflx");
  assert.equal(changed.previous, "relay");
  assert.equal(changed.localCandidateType, "srflx");
  assert.equal(changed.remoteAddress, CONES.remoteAddress);
  assert.equal(lines.length, 2);
});

Deno.test("reportPath() reports a change that came while the first path was being read", async () => {
  const lines: string[] = [];
  // The path moved to the cone pair after the connected line's read began.
  const connection = source(CONES);
  let answer: (path: ConnectionPath) => void = () => {};
  let reads = 0;
  const reading = reportPath(
    connection,
    new StatusLog({ write: (line) => lines.push(line) }),
    AGENT_LINES,
    () =>
      ++reads === 1 ? new Promise((resolve) => (answer = resolve)) : connection.getConnectionPath(),
  );
  connection.onpathchange!(CONES);
  answer(SYMMETRIC_AGENT);
  await reading;
  connection.onpathchange!(CONES);
  assert.deepEqual(lines, [
    "mcp-webrtc: Agent 1 connected via relay (this end relay, the other end prflx at 203.0.113.2:47804)",
    "mcp-webrtc: Agent 1's path changed: now via srflx (203.0.113.2:35435) (was relay)",
  ]);
});

Deno.test("reportPath() reads the path again rather than trust a change older than its read", async () => {
  const lines: string[] = [];
  // The watcher's first read gave the TURN pair; the connected line's read, the cone pair.
  const connection = source(CONES);
  let reads = 0;
  await reportPath(
    connection,
    new StatusLog({ write: (line) => lines.push(line) }),
    AGENT_LINES,
    () => {
      if (++reads === 1) connection.onpathchange!(SYMMETRIC_AGENT);
      return connection.getConnectionPath();
    },
  );
  assert.deepEqual(lines, ["mcp-webrtc: Agent 1 connected via srflx (203.0.113.2:35435)"]);
});
