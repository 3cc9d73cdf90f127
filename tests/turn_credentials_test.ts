/**
 * TURN credentials minted by the signalling worker, checked by a real TURN
 * server: Debian's coturn with `use-auth-secret` on 127.0.0.1, and two
 * node-datachannel peers that may only use relayed candidates.
 *
 * Needs coturn's `turnserver`; as root on Linux the test installs it
 * (`apt-get install -y coturn`), else it says it was skipped (never with CI=true).
 */
import assert from "node:assert/strict";
import nodeDataChannel from "node-datachannel";
import { startLocalSignaling } from "../worker/local.ts";
import { Client } from "@modelcontextprotocol/sdk/client";
import { type IceServer, TicketSignaling, WebRTCClientTransport, WebRTCListener } from "../mod.ts";
import { createRoomId, createRoomKey, keyVerifier, SignalingRoom } from "../src/signaling/mod.ts";
import { createTestServer, greet } from "./_helpers.ts";
import { within } from "../worker/tests/_raw_socket.ts";

const SECRET = "coturn-shared-secret-for-tests";
const HOST_KEY = createRoomKey();
const GUEST_KEY = createRoomKey();

/** Whether `turnserver` runs here, installing coturn as root on Linux if need be. */
async function haveCoturn(): Promise<boolean> {
  const runs = async () => {
    try {
      return (await new Deno.Command("turnserver", {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      })
        .output()).success;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  };
  if (await runs()) return true;
  if (Deno.build.os === "linux" && Deno.uid() === 0) {
    const apt = (args: string[]) =>
      new Deno.Command("apt-get", {
        args,
        env: { DEBIAN_FRONTEND: "noninteractive" },
        stdout: "null",
        stderr: "piped",
      }).output();
    await apt(["update", "-qq"]);
    const installed = await apt(["install", "-y", "-qq", "--no-install-recommends", "coturn"]);
    if (installed.success && await runs()) return true;
    throw new Error(
      `Cannot run the TURN test as installing coturn failed: ${
        new TextDecoder().decode(installed.stderr)
      }`,
    );
  }
  const line = "skipped: the TURN test needs coturn's turnserver: run `apt-get install -y coturn`";
  if (Deno.env.get("CI") === "true") throw new Error(line);
  console.log(line);
  return false;
}

/** A free port on 127.0.0.1 (TCP and UDP ports are picked alike here). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** coturn on 127.0.0.1 with `use-auth-secret`, until `stop()`. */
async function startCoturn(): Promise<{ port: number; log: string[]; stop(): Promise<void> }> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "mcp-turn-" });
  const child = new Deno.Command("turnserver", {
    args: [
      "-n",
      "--no-cli",
      "--log-file=stdout",
      "--listening-ip=127.0.0.1",
      "--relay-ip=127.0.0.1",
      `--listening-port=${port}`,
      "--no-tls",
      "--no-dtls",
      "--no-tcp",
      "--use-auth-secret",
      `--static-auth-secret=${SECRET}`,
      "--realm=room.test",
      "--allow-loopback-peers",
      "--fingerprint",
      "--no-software-attribute",
      `--pidfile=${dir}/turnserver.pid`,
      `--userdb=${dir}/turndb`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const log: string[] = [];
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  const reading = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      log.push(...lines);
      if (lines.some((line) => line.includes("Total General servers"))) ready();
    }
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    // coturn may linger over allocations still alive: killed if it does.
    let grace: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<boolean>((resolve) => (grace = setTimeout(() => resolve(false), 5_000))),
    ]);
    clearTimeout(grace);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone meanwhile */ }
      await child.status;
    }
    await reading;
    await Deno.remove(dir, { recursive: true });
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      started,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`coturn did not start: ${log.join("\n")}`)),
          10_000,
        );
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { port, log, stop };
}

/** node-datachannel's form of a `turn:host:port` server handed out by the room. */
function nativeTurnServer(server: IceServer): nodeDataChannel.IceServer {
  const url = [server.urls].flat()[0]!;
  const [, hostname, port] = /^turn:([^:?]+):(\d+)/.exec(url)!;
  return {
    hostname: hostname!,
    port: Number(port),
    username: server.username,
    password: server.credential,
    relayType: "TurnUdp",
  };
}

function relayOnly(name: string, server: IceServer): nodeDataChannel.PeerConnection {
  return new nodeDataChannel.PeerConnection(name, {
    iceServers: [nativeTurnServer(server)],
    iceTransportPolicy: "relay",
    bindAddress: "127.0.0.1",
  });
}

/** Two relay-only peers with the given servers exchange one message through TURN. */
async function echoThroughRelay(a: IceServer, b: IceServer): Promise<string> {
  const offerer = relayOnly("offerer", a);
  const answerer = relayOnly("answerer", b);
  offerer.onLocalDescription((sdp, type) => answerer.setRemoteDescription(sdp, type));
  answerer.onLocalDescription((sdp, type) => offerer.setRemoteDescription(sdp, type));
  offerer.onLocalCandidate((candidate, mid) => answerer.addRemoteCandidate(candidate, mid));
  answerer.onLocalCandidate((candidate, mid) => offerer.addRemoteCandidate(candidate, mid));
  let remote: nodeDataChannel.DataChannel | undefined;
  answerer.onDataChannel((channel) => {
    remote = channel;
    channel.onMessage((message) => channel.sendMessage(`echo: ${message}`));
  });
  const channel = offerer.createDataChannel("probe");
  const reply = new Promise<string>((resolve) =>
    channel.onMessage((message) => resolve(String(message)))
  );
  channel.onOpen(() => channel.sendMessage("through the relay"));
  try {
    return await within(reply, 15_000, "an echo through the TURN relay");
  } finally {
    for (const dc of [channel, remote]) dc?.close();
    offerer.close();
    answerer.close();
  }
}

/** Gathers a relay-only peer's candidates: their types, once gathering completed. */
async function relayCandidates(server: IceServer): Promise<string[]> {
  const pc = relayOnly("gatherer", server);
  const candidates: string[] = [];
  pc.onLocalCandidate((candidate) => candidates.push(candidate));
  const complete = new Promise<void>((resolve) =>
    pc.onGatheringStateChange((state) => state === "complete" && resolve())
  );
  const channel = pc.createDataChannel("probe");
  try {
    await within(complete, 20_000, "ICE gathering to complete");
    return candidates.filter((candidate) => / typ relay /.test(candidate));
  } finally {
    channel.close();
    pc.close();
  }
}

/** The ICE servers a host and a guest of a fresh room get from a worker with these vars. */
async function mintedServers(vars: Record<string, string>): Promise<[IceServer, IceServer]> {
  const worker = await startLocalSignaling({ vars });
  try {
    const url = `${worker.url}/v1/rooms/${createRoomId()}`;
    const host = await SignalingRoom.join(url, {
      role: "host",
      key: HOST_KEY,
      guestVerifier: await keyVerifier(GUEST_KEY),
    });
    const guest = await SignalingRoom.join(url, { role: "guest", key: GUEST_KEY });
    // Minted only on request: each member asks, as a peer connection about to start does.
    assert.equal(host.iceServers, undefined, "a join minted credentials");
    const servers = [(await host.requestIceServers())?.[0], (await guest.requestIceServers())?.[0]];
    await guest.close();
    await host.close();
    assert.ok(servers[0] && servers[1], "the worker handed out no TURN server");
    return servers as [IceServer, IceServer];
  } finally {
    await worker.close();
  }
}

Deno.test("TURN credentials the worker mints are accepted by coturn with use-auth-secret, and refused once expired", async () => {
  if (!(await haveCoturn())) return;
  const turn = await startCoturn();
  try {
    const vars = { TURN_SECRET: SECRET, TURN_URLS: `turn:127.0.0.1:${turn.port}` };
    const [host, guest] = await mintedServers({ ...vars, TURN_TTL_SECONDS: "600" });
    assert.equal(await echoThroughRelay(host, guest), "echo: through the relay");

    const [expiring] = await mintedServers({ ...vars, TURN_TTL_SECONDS: "1" });
    const expiry = Number(expiring.username!.split(":")[0]);
    // Wait for the credentials' own expiry to pass (bounded: it is a second away).
    for (let i = 0; i < 100 && Date.now() / 1000 <= expiry + 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(Date.now() / 1000 > expiry + 1);
    assert.deepEqual(
      await relayCandidates(expiring),
      [],
      "coturn allocated with expired credentials",
    );
    // coturn names the refused user (its log arrives through a pipe: wait for it, bounded).
    const refused = `Cannot find credentials of user <${expiring.username}>`;
    for (let i = 0; i < 100 && !turn.log.some((line) => line.includes(refused)); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(
      turn.log.some((line) => line.includes(refused)),
      `coturn did not log the refusal:\n${turn.log.join("\n")}`,
    );
  } finally {
    await turn.stop();
  }
});

Deno.test("A listener and an agent given no ICE servers use the TURN servers the worker hands out", async () => {
  if (!(await haveCoturn())) return;
  const turn = await startCoturn();
  const worker = await startLocalSignaling({
    vars: { TURN_SECRET: SECRET, TURN_URLS: `turn:127.0.0.1:${turn.port}` },
  });
  // Relayed candidates only: the connection exists only if both used the minted
  // credentials. Each peer has a loopback address of its own, not the TURN
  // server's: as between hosts, the server's relay then forwards only from the
  // relayed addresses it gave permission to (on one address, a check sent
  // from a peer's own socket to the other's relayed address passes too).
  const desktopConfiguration = { bindAddress: "127.0.0.2", iceTransportPolicy: "relay" };
  const rtcConfiguration = { bindAddress: "127.0.0.3", iceTransportPolicy: "relay" };
  const listener = await WebRTCListener.listen({
    url: worker.url,
    rtcConfiguration: desktopConfiguration,
    createServer: () => createTestServer(),
  });
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    const transport = new WebRTCClientTransport({
      signaling: new TicketSignaling(listener.ticket!),
      rtcConfiguration,
    });
    // Bounded, so that a connect that never ends says where it stopped.
    await within(client.connect(transport), 60_000, "the agent's connect through TURN");
    await within(greet(client, "through TURN"), 30_000, "a call through TURN");
    const path = await transport.getConnectionPath();
    assert.equal(path?.localCandidateType, "relay");
    assert.equal(listener.agents.length, 1);
    const desktopPath = await listener.agents[0].connection.getConnectionPath();
    assert.equal(desktopPath?.localCandidateType, "relay");
  } finally {
    await within(client.close(), 30_000, "the agent's close");
    await within(listener.close(), 30_000, "the listener's close");
    await within(worker.close(), 30_000, "the worker's close");
    await within(turn.stop(), 30_000, "coturn's stop");
  }
});
