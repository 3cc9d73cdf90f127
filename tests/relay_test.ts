/**
 * The relay path through the signalling room, end to end on loopback: a
 * desktop's listener, an agent's connection, the worker in Miniflare.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import {
  createTicket,
  formatTicket,
  MemorySignaling,
  parseTicket,
  RelayError,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCConnection,
  WebRTCListener,
} from "../mod.ts";
import { blobText, createTestServer, greet, LOCAL, text, withDesktop } from "./_helpers.ts";
import { type RelayProxy, startRelayProxy, startTcpProxy, type Tamper } from "./_relay_proxy.ts";
import { HIGH_WATER_MARK, RELAY_WINDOW } from "../src/constants.ts";

/** An agent's connection to a ticket's desktop. */
function agent(ticket: string, relayAfter: number | false, extra: Record<string, unknown> = {}) {
  return new WebRTCConnection({
    signaling: () => new TicketSignaling(ticket, { hostTimeout: 5_000 }),
    ...LOCAL,
    connectTimeout: 10_000,
    linger: 0,
    relayAfter,
    ...extra,
  });
}

Deno.test("WebRTCConnection asked to relay reaches the desktop through the room, and says so in its path", async () => {
  await withDesktop({}, async ({ ticket, listener }) => {
    const connection = agent(ticket, 0);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    await greet(client, "relay");
    assert.deepEqual(await connection.getConnectionPath(), {
      localCandidateType: "relay-ws",
      remoteCandidateType: "relay-ws",
    });
    const paths = await Promise.all(
      listener.agents.map((agent) => agent.connection.getConnectionPath()),
    );
    assert.deepEqual(paths.map((path) => path?.localCandidateType), ["relay-ws"]);
    // A second session opens a second relayed channel on the same connection.
    const second = new Client({ name: "agent-2", version: "1.0.0" });
    await second.connect(connection.openTransport());
    await greet(second, "second");
    assert.equal(connection.sessions, 2);
    await second.close();
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCConnection over the relay carries a 3 MB tool result whole", async () => {
  await withDesktop({}, async ({ ticket }) => {
    const connection = agent(ticket, 0);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    const result = await client.callTool({ name: "blob", arguments: { size: 3_000_000 } });
    assert.equal(text(result), blobText(3_000_000));
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCClientTransport asked to relay reaches the desktop through the room", async () => {
  await withDesktop({}, async ({ ticket }) => {
    const transport = new WebRTCClientTransport({
      signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
      ...LOCAL,
      relayAfter: 0,
    });
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(transport);
    await greet(client, "single");
    assert.equal((await transport.getConnectionPath())?.localCandidateType, "relay-ws");
    await client.close();
  });
});

Deno.test("WebRTCConnection takes the direct path by default when ICE finds one", async () => {
  await withDesktop({}, async ({ ticket }) => {
    const connection = agent(ticket, 3_000);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    await greet(client, "direct");
    assert.equal((await connection.getConnectionPath())?.localCandidateType, "host");
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCConnection refuses the relay over signalling that is not authenticated, with a clear error", async () => {
  const [a, b] = MemorySignaling.createPair();
  const connection = new WebRTCConnection({ signaling: a, ...LOCAL, relayAfter: 0, linger: 0 });
  await assert.rejects(connection.connect(), (error: Error) => {
    assert.ok(error instanceof RelayError, String(error));
    assert.match(error.message, /signalling is not authenticated/);
    assert.match(error.message, /ticket/);
    return true;
  });
  await connection.close();
  await Promise.all([a.close(), b.close()]);
});

/** An agent through a proxy that sees (and may tamper with) every relayed frame. */
async function throughProxy(
  worker: { url: string },
  ticket: string,
  fn: (
    proxy: RelayProxy,
    connection: WebRTCConnection,
    client: Client,
    lost: Promise<Error | undefined>,
  ) => Promise<void>,
): Promise<void> {
  const proxy = startRelayProxy(worker.url, ticket);
  // What a tampered frame does to the connection is measured: no resume follows.
  const connection = agent(proxy.ticket, 0, { resume: false });
  const lost = new Promise<Error | undefined>((resolve) => (connection.ondisconnect = resolve));
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await client.connect(connection.openTransport());
    await fn(proxy, connection, client, lost);
  } finally {
    await client.close();
    await connection.close();
    await proxy.close();
  }
}

Deno.test("The bytes the room relays never hold the plaintext: a tool's name, argument and result are in no relayed frame", async () => {
  await withDesktop({}, async ({ worker, ticket }) => {
    await throughProxy(worker, ticket, async (proxy, _connection, client) => {
      const result = await client.callTool({
        name: "greet",
        arguments: { name: "argument-7Qx-secret" },
      });
      assert.equal(text(result), "Hello, argument-7Qx-secret!");
      assert.ok(proxy.relayed.length >= 4, `only ${proxy.relayed.length} frames were relayed`);
      const seen = [...proxy.relayed.map((frame) => new TextDecoder("latin1").decode(frame))]
        .concat(proxy.texts);
      for (const word of ["greet", "argument-7Qx-secret", "Hello", "tools/call", "jsonrpc"]) {
        assert.ok(
          !seen.some((frame) => frame.includes(word)),
          `"${word}" crossed the room in clear`,
        );
      }
    });
  });
});

/** Tampering of each kind with the frames on their way to the agent, once armed. */
const TAMPERING: Record<string, () => Tamper> = {
  alters: () => (frame) => {
    const altered = frame.slice();
    altered[altered.length - 1] ^= 0x01;
    return [altered];
  },
  drops: () => () => [],
  replays: () => (frame) => [frame, frame],
  reorders: () => {
    let held: Uint8Array | undefined;
    return (frame) => {
      if (!held) {
        held = frame;
        return [];
      }
      const out = [frame, held];
      held = undefined;
      return out;
    };
  },
};

for (const [kind, make] of Object.entries(TAMPERING)) {
  Deno.test(`A room that ${kind} a relayed frame is detected: the session fails and both sides say why`, async () => {
    await withDesktop({}, async ({ worker, ticket, listener }) => {
      const desktopLost = new Promise<Error | undefined>((resolve) =>
        listener.onagentleave = (_agent, error) => resolve(error)
      );
      await throughProxy(worker, ticket, async (proxy, _connection, client, lost) => {
        await greet(client, "before");
        // Tamper with one frame (two, to swap them), then pass the rest on.
        let left = kind === "reorders" ? 2 : 1;
        const tamper = make();
        proxy.tamper = (frame) => left-- > 0 ? tamper(frame) : [frame];
        const call = client.callTool({ name: "greet", arguments: { name: "after" } }).then(
          () => undefined,
          (error: Error) => error,
        );
        const error = await lost;
        assert.ok(error, "the connection was lost without an error");
        assert.match(error.message, /Refused relayed frame \d+/);
        assert.match(error.message, /altered, dropped, replayed or reordered/);
        const failed = await call;
        // A replay delivers the genuine frame first: only its copy is refused.
        if (kind !== "replays") {
          assert.ok(failed instanceof Error, "the call succeeded over a tampered relay");
        }
        await assert.rejects(client.callTool({ name: "greet", arguments: { name: "later" } }));
        // The desktop hears the agent's reason in its goodbye.
        const desktopError = await desktopLost;
        assert.match(String(desktopError?.message), /Refused relayed frame \d+/);
      });
    });
  });
}

Deno.test("WebRTCConnection moves to the relay when no ICE path forms within relayAfter, and the desktop follows", async () => {
  // Neither side offers a candidate (relay-only, and no TURN server): ICE cannot succeed.
  const noPath = { rtcConfiguration: { bindAddress: "127.0.0.1", iceTransportPolicy: "relay" } };
  await withDesktop(noPath, async ({ ticket, listener }) => {
    const connection = agent(ticket, 500, noPath);
    const steps: string[] = [];
    connection.onconnectstep = (step) => steps.push(step);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(connection.openTransport());
    await greet(client, "fallback");
    assert.equal((await connection.getConnectionPath())?.localCandidateType, "relay-ws");
    assert.ok(steps.includes("offer") && !steps.includes("ice"), steps.join(" "));
    const [desktopSide] = listener.agents;
    assert.equal(
      (await desktopSide.connection.getConnectionPath())?.localCandidateType,
      "relay-ws",
    );
    await client.close();
    await connection.close();
  });
});

Deno.test("WebRTCConnection asked to relay through a room whose operator turned RELAY off fails with the room's reason", async () => {
  const { startLocalSignaling } = await import("../worker/local.ts");
  const worker = await startLocalSignaling({ vars: { RELAY: "off" } });
  const listener = await WebRTCListener.listen({
    url: worker.url,
    createServer: () => createTestServer(),
    ...LOCAL,
  });
  try {
    const connection = agent(listener.ticket!, 0);
    await assert.rejects(connection.connect(), (error: Error) => {
      assert.ok(error instanceof RelayError, String(error));
      assert.match(error.message, /does not relay: its operator turned RELAY off/);
      return true;
    });
    await connection.close();
  } finally {
    await listener.close();
    await worker.close();
  }
});

const MIB = 1024 * 1024;

/** The `i`th chunk a flooding tool sends: its number, then a letter of its own. */
function floodChunk(i: number, size: number): string {
  const head = `${i}:`;
  return head + String.fromCharCode(97 + (i % 26)).repeat(size - head.length);
}

/**
 * A server whose `flood` tool sends `count` progress notifications of `size`
 * characters, each after the one before was taken by its transport; `sent`
 * counts those taken.
 */
function floodServer(progress: { sent: number }): McpServer {
  const server = new McpServer({ name: "flood", version: "1.0.0" });
  server.registerTool(
    "flood",
    { inputSchema: { count: z.number(), size: z.number() } },
    async ({ count, size }, extra) => {
      const progressToken = extra._meta?.progressToken;
      if (progressToken === undefined) throw new Error("flood needs a progress token");
      for (let i = 0; i < count; i++) {
        await extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken, progress: i + 1, total: count, message: floodChunk(i, size) },
        });
        progress.sent = i + 1;
      }
      return { content: [{ type: "text", text: `sent ${count}` }] };
    },
  );
  return server;
}

/** The resident set size of the workerd processes this process started, in bytes. */
function workerdRss(): number {
  let total = 0;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const match = stat.match(/^\d+ \((.*)\) \S+ (\d+)/);
      if (!match || match[1] !== "workerd" || Number(match[2]) !== Deno.pid) continue;
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      total += Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024;
    } catch {
      // The process ended while it was read.
    }
  }
  return total;
}

/**
 * Resolves once `proxy` has passed at least `atLeast` bytes up and then
 * nothing up for `quietMs`: the client behind it stopped sending. Rejects
 * after `withinMs`.
 */
function fallsQuiet(
  proxy: ReturnType<typeof startTcpProxy>,
  atLeast: () => boolean,
  quietMs: number,
  withinMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const done = (error?: Error) => {
      clearTimeout(quiet);
      clearTimeout(overall);
      proxy.onchunk = undefined;
      error ? reject(error) : resolve();
    };
    const overall = setTimeout(
      () => done(new Error(`The host did not fall quiet within ${withinMs} ms`)),
      withinMs,
    );
    const arm = () => {
      clearTimeout(quiet);
      if (atLeast()) quiet = setTimeout(() => done(), quietMs);
    };
    proxy.onchunk = arm;
    arm();
  });
}

Deno.test("The relay's flow control: a host sending 64 MiB to a guest that stops reading puts one window into the room and waits, and all of it arrives intact once the guest reads again", async () => {
  const { startLocalSignaling } = await import("../worker/local.ts");
  // A room budget that never binds: only the flow control may stop the host.
  const worker = await startLocalSignaling({
    vars: { RELAY_BYTES_PER_SECOND: String(4096 * MIB) },
  });
  const hostSide = startTcpProxy(worker.url);
  const guestSide = startTcpProxy(worker.url);
  const progress = { sent: 0 };
  const listener = await WebRTCListener.listen({
    url: hostSide.url,
    createServer: () => floodServer(progress),
    ...LOCAL,
  });
  const connection = agent(
    formatTicket({ ...parseTicket(listener.ticket!), url: guestSide.url }),
    0,
  );
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await client.connect(connection.openTransport());
    assert.equal((await connection.getConnectionPath())?.localCandidateType, "relay-ws");
    const COUNT = 64;
    const up0 = hostSide.up;
    const down0 = guestSide.down;
    const inFlight = () => (hostSide.up - up0) - (guestSide.down - down0);
    const rss0 = workerdRss();
    guestSide.pause();
    let received = 0;
    let wrong: string | undefined;
    const call = client.callTool(
      { name: "flood", arguments: { count: COUNT, size: MIB } },
      undefined,
      {
        timeout: 120_000,
        onprogress: ({ message }) => {
          if (message !== floodChunk(received, MIB)) {
            wrong ??= `chunk ${received} arrived as ${String(message).slice(0, 20)}…`;
          }
          received++;
        },
      },
    );
    call.catch(() => {});
    // The host sends until the window is spent, then falls quiet.
    await fallsQuiet(hostSide, () => hostSide.up - up0 >= RELAY_WINDOW / 2, 500, 60_000);
    const held = inFlight();
    const grown = workerdRss() - rss0;
    const sentWhilePaused = progress.sent;
    console.error(
      `while the guest read nothing: ${
        (held / MIB).toFixed(2)
      } MiB in the room, the host's transport took ${sentWhilePaused} of ${COUNT} MiB, workerd grew ${
        (grown / MIB).toFixed(1)
      } MiB`,
    );
    // The room held at most the window (the WebSocket and room headers aside).
    assert.ok(
      held <= RELAY_WINDOW + 256 * 1024,
      `the room held ${held} bytes for a guest that reads nothing: the window is ${RELAY_WINDOW}`,
    );
    // The sender awaited: its transport took the window and its own buffer, no more.
    assert.ok(
      sentWhilePaused * MIB <= RELAY_WINDOW + HIGH_WATER_MARK + 2 * MIB,
      `the host's transport took ${sentWhilePaused} MiB while the guest read nothing`,
    );
    assert.ok(
      grown < 24 * MIB,
      `workerd grew by ${grown} bytes while the guest read nothing`,
    );
    assert.equal(received, 0);
    guestSide.resume();
    const result = await call;
    assert.equal(text(result), `sent ${COUNT}`);
    assert.equal(wrong, undefined);
    assert.equal(received, COUNT);
    assert.equal(progress.sent, COUNT);
  } finally {
    guestSide.resume();
    await client.close();
    await connection.close();
    await listener.close();
    await hostSide.close();
    await guestSide.close();
    await worker.close();
  }
});

/**
 * The last commit before the relay's flow control: its peers send a relay
 * hello without a window, and know no credit frame.
 */
const PREVIOUS_VERSION = "f73c657e0cb5d8fc58e9e438b49ecf9712db7bde";
const ROOT = new URL("..", import.meta.url).pathname;
/** Whether this checkout has the previous version (and `git` to read it). */
function hasPreviousVersion(): boolean {
  try {
    return new Deno.Command("git", {
      args: ["-C", ROOT, "cat-file", "-e", `${PREVIOUS_VERSION}^{commit}`],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

/** The previous version's desktop and agent, as scripts in its source tree. */
const PREVIOUS_SCRIPTS = {
  "_previous_desktop.ts": `
import { WebRTCListener } from "./mod.ts";
import { createTestServer, LOCAL } from "./tests/_helpers.ts";
const listener = await WebRTCListener.listen({ url: Deno.args[0], createServer: () => createTestServer(), ...LOCAL });
console.log("ticket " + listener.ticket);
`,
  "_previous_agent.ts": `
import { Client } from "@modelcontextprotocol/sdk/client";
import { TicketSignaling, WebRTCConnection } from "./mod.ts";
import { blobText, LOCAL } from "./tests/_helpers.ts";
const connection = new WebRTCConnection({ signaling: () => new TicketSignaling(Deno.args[0]), ...LOCAL, linger: 0, relayAfter: 0 });
const client = new Client({ name: "previous", version: "1.0.0" });
await client.connect(connection.openTransport());
const result = await client.callTool({ name: "blob", arguments: { size: 3_000_000 } });
const path = (await connection.getConnectionPath())?.localCandidateType;
console.log("report " + JSON.stringify({ path, whole: result.content[0].text === blobText(3_000_000) }));
await client.close();
await connection.close();
`,
};

/** Runs `fn` with the previous version's source tree (sharing this one's node_modules). */
async function withPreviousVersion(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-webrtc-previous-" });
  try {
    const archive = `${dir}.tar`;
    for (
      const [command, args] of [
        ["git", ["-C", ROOT, "archive", "-o", archive, PREVIOUS_VERSION]],
        ["tar", ["-xf", archive, "-C", dir]],
      ] as const
    ) {
      const { success, stderr } = await new Deno.Command(command, { args: [...args] }).output();
      assert.ok(success, new TextDecoder().decode(stderr));
    }
    await Deno.remove(archive);
    await Deno.symlink(`${ROOT}node_modules`, `${dir}/node_modules`);
    for (const [name, source] of Object.entries(PREVIOUS_SCRIPTS)) {
      await Deno.writeTextFile(`${dir}/${name}`, source);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs a script of the previous version; resolves with its first line that starts with `prefix`. */
function previous(dir: string, script: string, arg: string, prefix: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", `${dir}/${script}`, arg],
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const line = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const found = buffered.split("\n").find((line) => line.startsWith(prefix));
      if (found !== undefined) return found.slice(prefix.length);
    }
    throw new Error(`${script} ended without a "${prefix}" line: ${await errors}`);
  })();
  return {
    line,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // It ended already.
      }
      await child.status;
      await line.catch(() => {});
      await errors;
    },
  };
}

Deno.test({
  name:
    "A peer of the previous relay version (a hello without a window) and this version relay a 3 MB result both ways, without flow control",
  ignore: !hasPreviousVersion(),
  async fn() {
    await withPreviousVersion(async (dir) => {
      // The previous version reads only version 1 tickets.
      const v1 = async (worker: { url: string }) => ({
        hostTicket: await createTicket({ url: worker.url, version: 1 }),
      });
      await withDesktop(v1, async ({ worker, ticket }) => {
        // The previous version's agent reaches this version's desktop.
        const theirs = previous(dir, "_previous_agent.ts", ticket, "report ");
        try {
          assert.deepEqual(JSON.parse(await theirs.line), { path: "relay-ws", whole: true });
        } finally {
          await theirs.stop();
        }
        // This version's agent reaches the previous version's desktop.
        const desktop = previous(dir, "_previous_desktop.ts", worker.url, "ticket ");
        try {
          const connection = agent(await desktop.line, 0);
          const client = new Client({ name: "agent", version: "1.0.0" });
          await client.connect(connection.openTransport());
          const result = await client.callTool({ name: "blob", arguments: { size: 3_000_000 } });
          assert.equal(text(result), blobText(3_000_000));
          assert.equal((await connection.getConnectionPath())?.localCandidateType, "relay-ws");
          await client.close();
          await connection.close();
        } finally {
          await desktop.stop();
        }
        // A client of the previous version reads but never echoes the room's
        // marks: its operator raises MAX_UNREAD_BYTES to serve it (PROTOCOL.md).
      }, { MAX_UNREAD_BYTES: String(64 * 1024 * 1024) });
    });
  },
});
