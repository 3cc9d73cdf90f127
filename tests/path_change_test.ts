/**
 * `onpathchange`: the path reported once known and again each time ICE moves
 * to another candidate pair, on real peers on loopback whose statistics say
 * the selected pair moved (as libjuice's do when it leaves a TURN pair for a
 * direct one), and the reading stopped once the connection closed.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
import { RTCPeerConnection as PolyfillPeerConnection } from "node-datachannel/polyfill";
import {
  type ConnectionPath,
  MemorySignaling,
  WebRTCClientTransport,
  WebRTCConnection,
  WebRTCServerTransport,
} from "../mod.ts";
import type { PeerConnectionConstructor } from "../src/peer.ts";
import { PathWatch } from "../src/_path_watch.ts";
import { createTestServer, greet, LOCAL } from "./_helpers.ts";

type Stats = Awaited<ReturnType<PolyfillPeerConnection["getStats"]>>;

/** The pair a {@linkcode routed} connection's statistics report, once set. */
interface Route {
  local: string;
  remote: string;
  address: string;
  port: number;
}

/**
 * An `RTCPeerConnection` whose `getStats()` reports `route.current` as the
 * selected pair (in the shape node-datachannel reports it), and the real one
 * while it is not set.
 */
function routed(route: { current?: Route }): PeerConnectionConstructor {
  return class extends PolyfillPeerConnection {
    override async getStats(): Promise<Stats> {
      const real = await super.getStats();
      const pair = route.current;
      if (!pair || real.size === 0) return real;
      return new Map<string, Record<string, unknown>>([
        ["L", { type: "local-candidate", candidateType: pair.local, ip: "10.0.0.1", port: 1 }],
        [
          "R",
          {
            type: "remote-candidate",
            candidateType: pair.remote,
            ip: pair.address,
            port: pair.port,
          },
        ],
        ["P", { type: "candidate-pair", localCandidateId: "L", remoteCandidateId: "R" }],
        ["T", { type: "transport", selectedCandidatePairId: "P" }],
      ]) as unknown as Stats;
    }
  } as unknown as PeerConnectionConstructor;
}

/** The paths a handler is given, each awaited as it comes. */
class Paths {
  readonly seen: ConnectionPath[] = [];
  #waiting?: () => void;

  readonly handler = (path: ConnectionPath) => {
    this.seen.push(path);
    this.#waiting?.();
  };

  /** Resolves with the `n`-th path (from 1) once it has come; rejects after 5 s. */
  async nth(n: number): Promise<ConnectionPath> {
    const deadline = Date.now() + 5_000;
    while (this.seen.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`path ${n} did not come within 5 s: ${JSON.stringify(this.seen)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiting = resolve;
        timer = setTimeout(resolve, left);
      }).finally(() => clearTimeout(timer));
    }
    return this.seen[n - 1];
  }
}

const TURN: Route = { local: "relay", remote: "srflx", address: "203.0.113.3", port: 40000 };
const DIRECT: Route = { local: "srflx", remote: "srflx", address: "203.0.113.3", port: 40002 };

Deno.test("WebRTCClientTransport.onpathchange reports the path once known and again when the selected pair moves", async () => {
  const route: { current?: Route } = { current: TURN };
  const [a, b] = MemorySignaling.createPair();
  const server = createTestServer();
  await server.connect(new WebRTCServerTransport({ signaling: b, ...LOCAL }));
  const transport = new WebRTCClientTransport({
    signaling: a,
    ...LOCAL,
    RTCPeerConnection: routed(route),
  });
  const paths = new Paths();
  transport.onpathchange = paths.handler;
  const client = new Client({ name: "path-client", version: "1.0.0" });
  try {
    await client.connect(transport);
    assert.deepEqual(await paths.nth(1), {
      localCandidateType: "relay",
      remoteCandidateType: "srflx",
      remoteAddress: "203.0.113.3:40000",
    });
    await greet(client, "over TURN");
    route.current = DIRECT;
    assert.deepEqual(await paths.nth(2), {
      localCandidateType: "srflx",
      remoteCandidateType: "srflx",
      remoteAddress: "203.0.113.3:40002",
    });
    await greet(client, "direct");
    // An unchanged path is not reported again: the next change is the third call.
    route.current = TURN;
    assert.equal((await paths.nth(3)).localCandidateType, "relay");
    assert.equal(paths.seen.length, 3);
  } finally {
    await client.close();
    await server.close();
  }
  // Closed: the reading stopped.
  assert.equal(PathWatch.running, 0);
  assert.equal(await transport.getConnectionPath(), undefined);
});

Deno.test("WebRTCConnection.onpathchange reports the path on both sides and stops when the connection closes", async () => {
  const agentRoute: { current?: Route } = { current: TURN };
  const [a, b] = MemorySignaling.createPair();
  const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...LOCAL });
  desktop.ontransport = (transport) => void createTestServer().connect(transport);
  const desktopPaths = new Paths();
  desktop.onpathchange = desktopPaths.handler;
  void desktop.connect().catch(() => {});
  const agent = new WebRTCConnection({
    signaling: a,
    linger: 0,
    ...LOCAL,
    RTCPeerConnection: routed(agentRoute),
  });
  const agentPaths = new Paths();
  agent.onpathchange = agentPaths.handler;
  // The path is there at the dial's last step already (the CLI prints it then).
  let atChannel: Promise<ConnectionPath | undefined> | undefined;
  agent.onconnectstep = (step) => {
    if (step === "channel") atChannel = agent.getConnectionPath();
  };
  const client = new Client({ name: "path-client", version: "1.0.0" });
  try {
    await client.connect(agent.openTransport());
    await greet(client, "connection");
    assert.equal((await atChannel)?.localCandidateType, "relay");
    assert.equal((await agentPaths.nth(1)).localCandidateType, "relay");
    // The desktop's own statistics: a host pair on loopback.
    const seen = await desktopPaths.nth(1);
    assert.equal(seen.localCandidateType, "host");
    assert.match(seen.remoteAddress ?? "", /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(seen, await desktop.getConnectionPath());
    agentRoute.current = DIRECT;
    assert.equal((await agentPaths.nth(2)).localCandidateType, "srflx");
    assert.equal(PathWatch.running, 2);
  } finally {
    await client.close();
    await agent.close();
    await desktop.close();
  }
  // Closed: the reading stopped on both sides.
  assert.equal(PathWatch.running, 0);
  assert.equal(await agent.getConnectionPath(), undefined);
});

Deno.test("WebRTCClientTransport.onpathchange set after connecting is given the path in use", async () => {
  const [a, b] = MemorySignaling.createPair();
  const server = createTestServer();
  await server.connect(new WebRTCServerTransport({ signaling: b, ...LOCAL }));
  const transport = new WebRTCClientTransport({ signaling: a, ...LOCAL });
  const client = new Client({ name: "path-client", version: "1.0.0" });
  try {
    await client.connect(transport);
    await greet(client, "unwatched");
    const paths = new Paths();
    transport.onpathchange = paths.handler;
    const path = await paths.nth(1);
    assert.equal(path.localCandidateType, "host");
    assert.deepEqual(path, await transport.getConnectionPath());
  } finally {
    await client.close();
    await server.close();
  }
  assert.equal(PathWatch.running, 0);
});

Deno.test("WebRTCClientTransport.getConnectionPath() on loopback names host at both ends, with the desktop's address", async () => {
  // The answerer's check comes before its answer here, as in the NAT lab; on
  // loopback it can only come from the answerer's own address.
  const [a, b] = MemorySignaling.createPair();
  const server = createTestServer();
  const serverTransport = new WebRTCServerTransport({ signaling: b, ...LOCAL });
  await server.connect(serverTransport);
  const transport = new WebRTCClientTransport({ signaling: a, ...LOCAL });
  const client = new Client({ name: "path-client", version: "1.0.0" });
  try {
    await client.connect(transport);
    await greet(client, "loopback");
    const path = await transport.getConnectionPath();
    assert.equal(path?.localCandidateType, "host");
    assert.equal(path?.remoteCandidateType, "host");
    assert.match(path?.remoteAddress ?? "", /^127\.0\.0\.1:\d+$/);
  } finally {
    await client.close();
    await server.close();
  }
});
