/**
 * The NAT story, measured: a desktop behind a NAT and an agent elsewhere,
 * each a `deno run` child in its own network namespace, signalling through
 * this process over their stdin and stdout, with coturn (STUN and TURN) on a
 * "public" address of the lab. See `tests/nat/lab.ts` for the topology.
 *
 * Needs root, `ip`, `iptables` and coturn (`apt-get install -y iproute2
 * iptables coturn`): installed when missing on Linux as root, else the tests
 * are skipped, saying so (see `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import {
  ConnectError,
  type ConnectionPath,
  createRoomId,
  createRoomKey,
  keyVerifier,
  SignalingRoom,
} from "../mod.ts";
import { startLocalSignaling } from "../worker/local.ts";
import type { PeerReport } from "./nat/_peer.ts";
import {
  type Attachment,
  type LabProcess,
  NatLab,
  type RelayedSignal,
  TURN_SECRET,
} from "./nat/lab.ts";
import { labTest, prepareLab } from "./_lab.ts";

const lab = await prepareLab({
  name: "the NAT lab",
  root: true,
  commands: { ip: "iproute2", iptables: "iptables", turnserver: "coturn" },
});

/** Well under libjuice's own 39.5 s, and long enough for a relayed path. */
const CONNECT_TIMEOUT = 5_000;
/** How long a peer may take to start, connect and call (a `deno run` start included). */
const REPORT_WITHIN = 15_000;

interface Outcome {
  /** When the agent's data channel opened and its tools/call returned, ms after connect() began. */
  channel: number;
  called: number;
  /** The agent's connection steps, ms after connect() began. */
  steps: string;
  /** The paths as the agent (client) and the desktop (server) see them. */
  agentPath?: ConnectionPath;
  desktopPath?: ConnectionPath;
  signals: RelayedSignal[];
}

/**
 * TURN credentials as the signalling worker hands them to a room member: the
 * local worker, configured with the lab coturn's shared secret, mints them in
 * answer to the request of a room member joined for the purpose.
 */
async function mintedTurnCredentials(
  url: string,
): Promise<{ username: string; credential: string }> {
  const worker = await startLocalSignaling({ vars: { TURN_SECRET, TURN_URLS: url } });
  try {
    const key = createRoomKey();
    const host = await SignalingRoom.join(`${worker.url}/v1/rooms/${createRoomId()}`, {
      role: "host",
      key,
      guestVerifier: await keyVerifier(createRoomKey()),
    });
    const minted = (await host.requestIceServers())?.find((server) =>
      [server.urls].flat()[0] === url
    );
    await host.close();
    assert.ok(minted?.username && minted.credential, "the worker handed out no TURN credentials");
    assert.match(minted.username, /^\d+:host$/);
    return { username: minted.username, credential: minted.credential };
  } finally {
    await worker.close();
  }
}

/** Builds a lab, runs both peers, and returns what the agent reported. */
async function connectThrough(
  name: string,
  sides: { desktop: Attachment; agent: Attachment },
  turn: boolean,
): Promise<Outcome> {
  const lab = await NatLab.create(name, sides);
  try {
    const { server, client, signals } = lab.startPeers({
      iceServers: lab.iceServers(turn ? await mintedTurnCredentials(lab.turnUrl) : undefined),
      connectTimeout: CONNECT_TIMEOUT,
    });
    const result = await client.report(["called", "error"], REPORT_WITHIN);
    if (result.kind === "error") {
      assert.fail(
        `The agent could not connect: ${result.name} (${result.stage}): ${result.message}\n` +
          `desktop: ${JSON.stringify(server.reports)}\nsignals: ${JSON.stringify(signals)}\n` +
          `agent log:\n${client.log.join("\n")}\ndesktop log:\n${server.log.join("\n")}\n` +
          `coturn log:\n${lab.turnLog.join("\n")}`,
      );
    }
    const connected = await client.report(["connected"], 0);
    return {
      channel: connected.at,
      called: result.at,
      steps: steps(client),
      agentPath: connected.path,
      desktopPath: result.serverPath,
      signals,
    };
  } finally {
    await lab.close();
  }
}

function steps(peer: LabProcess): string {
  return peer.reports.filter((r): r is Extract<PeerReport, { kind: "step" }> => r.kind === "step")
    .map((r) => `${r.step} ${r.at}`).join(", ");
}

function describePath(path?: ConnectionPath): string {
  return path
    ? `${path.localCandidateType} → ${path.remoteCandidateType} ${path.remoteAddress}`
    : "?";
}

/** When each side's first candidate went out, relative to the answer. */
function candidateTimes(signals: RelayedSignal[]): string {
  const answer = signals.find((s) => s.type === "answer")?.at ?? 0;
  const first = (from: string) => {
    const found = signals.find((s) => s.from === from && s.type === "candidate");
    return found ? `${found.at - answer} ms` : "none";
  };
  return `first candidate after the answer: agent ${first("client")}, desktop ${first("server")}`;
}

function print(label: string, outcome: Outcome): void {
  console.log(
    `${label}: channel open in ${outcome.channel} ms, tools/call done at ${outcome.called} ms ` +
      `(agent steps: ${outcome.steps}); ${candidateTimes(outcome.signals)}\n` +
      `  agent's path ${describePath(outcome.agentPath)}; desktop's path ${
        describePath(outcome.desktopPath)
      }`,
  );
}

const NATED = ["srflx", "prflx"];

labTest(
  lab,
  "WebRTC transports connect a desktop behind a cone NAT to a public agent via STUN",
  async () => {
    const outcome = await connectThrough("cone", { desktop: "cone", agent: "public" }, false);
    print("cone NAT desktop ↔ public agent, STUN only", outcome);
    // The agent reaches the desktop at its NAT's public address, learnt through STUN (srflx) or
    // from the desktop's checks (prflx).
    assert.ok(
      NATED.includes(outcome.agentPath?.remoteCandidateType ?? ""),
      `agent's path: ${JSON.stringify(outcome.agentPath)}`,
    );
    // Unknown on the offering agent when the desktop's check made the path (see ConnectionPath).
    if (outcome.agentPath?.remoteAddress !== undefined) {
      assert.match(outcome.agentPath.remoteAddress, /^203\.0\.113\.2:\d+$/);
    } else assert.equal(outcome.agentPath?.remoteCandidateType, "prflx");
    assert.equal(outcome.agentPath?.localCandidateType, "host");
    assert.equal(outcome.desktopPath?.remoteCandidateType, "host");
    assert.match(outcome.desktopPath?.remoteAddress ?? "", /^203\.0\.113\.20:\d+$/);
  },
);

labTest(lab, "WebRTC transports connect two peers behind cone NATs via STUN", async () => {
  const outcome = await connectThrough("cones", { desktop: "cone", agent: "cone" }, false);
  print("cone NAT desktop ↔ cone NAT agent, STUN only", outcome);
  for (
    const [side, path] of Object.entries({ agent: outcome.agentPath, desktop: outcome.desktopPath })
  ) {
    assert.ok(NATED.includes(path?.localCandidateType ?? ""), `${side}: ${JSON.stringify(path)}`);
    assert.ok(NATED.includes(path?.remoteCandidateType ?? ""), `${side}: ${JSON.stringify(path)}`);
  }
  assert.match(outcome.agentPath?.remoteAddress ?? "", /^203\.0\.113\.2:\d+$/);
  assert.match(outcome.desktopPath?.remoteAddress ?? "", /^203\.0\.113\.3:\d+$/);
});

labTest(
  lab,
  "WebRTC transports connect two peers behind symmetric NATs only through TURN, with credentials the worker minted for coturn's use-auth-secret",
  async () => {
    const outcome = await connectThrough("sym", { desktop: "symmetric", agent: "symmetric" }, true);
    print("symmetric NAT desktop ↔ symmetric NAT agent, STUN + TURN", outcome);
    for (
      const [side, path] of Object.entries({
        agent: outcome.agentPath,
        desktop: outcome.desktopPath,
      })
    ) {
      const types = [path?.localCandidateType, path?.remoteCandidateType];
      assert.ok(types.includes("relay"), `${side}'s path is not relayed: ${JSON.stringify(path)}`);
    }
  },
);

labTest(
  lab,
  "WebRTCClientTransport.start() fails at the ICE stage, naming TURN, when symmetric NATs leave no path",
  async () => {
    const lab = await NatLab.create("nopath", { desktop: "symmetric", agent: "symmetric" });
    try {
      const { server, client, signals } = lab.startPeers({
        iceServers: lab.iceServers(),
        connectTimeout: CONNECT_TIMEOUT,
      });
      const result = await client.report(["called", "error"], REPORT_WITHIN);
      assert.equal(result.kind, "error", `the agent connected: ${JSON.stringify(client.reports)}`);
      if (result.kind !== "error") return;
      console.log(
        `symmetric NATs, STUN only: the agent's start() rejected after ${result.at} ms ` +
          `(connectTimeout ${CONNECT_TIMEOUT} ms; agent steps: ${steps(client)}): ` +
          `${result.name} (${result.stage}): ${result.message}`,
      );
      assert.ok(signals.some((s) => s.type === "answer"), "the answer went through signalling");
      assert.equal(result.name, ConnectError.name);
      assert.equal(result.stage, "ice", result.message);
      assert.match(result.message, /configure a TURN server/);
      assert.ok(result.at >= CONNECT_TIMEOUT - 50, `rejected too early: ${result.at} ms`);
      assert.ok(result.at < CONNECT_TIMEOUT + 1_500, `rejected too late: ${result.at} ms`);
      // The desktop gives up too, in the background. Its own timer starts at the offer, so the
      // agent's goodbye usually reaches it first, and then it reports stage "signaling".
      const desktop = await server.report(["error"], CONNECT_TIMEOUT + 3_000);
      if (desktop.kind !== "error") return;
      console.log(`  the desktop reported ${desktop.name} (${desktop.stage}): ${desktop.message}`);
      assert.equal(desktop.name, ConnectError.name);
    } finally {
      await lab.close();
    }
  },
);
