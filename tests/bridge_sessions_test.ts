/**
 * The bridge under clients that open many MCP sessions and never close them:
 * the official MCP conformance suite (`@modelcontextprotocol/conformance`)
 * against `@modelcontextprotocol/server-everything` over Streamable HTTP,
 * first directly and then through `serve --url` and `connect --http`; and 50
 * SDK clients on one `connect --http`, none ever closed.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import {
  CliProcess,
  EVERYTHING_PACKAGE,
  LOCAL_FLAGS,
  startServe,
  TEST_SERVER,
  withWorker,
} from "./_cli_helpers.ts";

/** The conformance suite, pinned. It needs Node 22 (`fs.globSync`), so it runs under Deno. */
const CONFORMANCE_PACKAGE = "@modelcontextprotocol/conformance@0.1.16";
const CONFORMANCE_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/mcp-webrtc-conformance-0.1.16`;

const PACKAGES = `${CONFORMANCE_DIR}/node_modules/@modelcontextprotocol`;
/** The suite's entry point, once installed. */
const CONFORMANCE_ENTRY = `${PACKAGES}/conformance/dist/index.js`;
/**
 * server-everything's entry point, run with node itself: a server started
 * through npx outlives the npx process that a test kills.
 */
const EVERYTHING_ENTRY = `${PACKAGES}/server-everything/dist/index.js`;

/**
 * Installs the suite and server-everything once into a folder of their own
 * (npm; no project file touched).
 */
async function installConformance(): Promise<void> {
  try {
    await Deno.stat(CONFORMANCE_ENTRY);
    await Deno.stat(EVERYTHING_ENTRY);
    return;
  } catch {
    // Not installed yet.
  }
  await Deno.mkdir(CONFORMANCE_DIR, { recursive: true });
  await Deno.writeTextFile(`${CONFORMANCE_DIR}/package.json`, '{ "private": true }\n');
  const install = await new Deno.Command("npm", {
    args: [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      CONFORMANCE_PACKAGE,
      EVERYTHING_PACKAGE,
    ],
    cwd: CONFORMANCE_DIR,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
}

/** One scenario's outcome: how many checks passed and failed. */
interface Outcome {
  passed: number;
  failed: number;
}

/** Runs the server suite against `url`; returns each scenario's outcome. */
async function runConformance(url: string): Promise<Map<string, Outcome>> {
  const run = new CliProcess(Deno.execPath(), [
    "run",
    "-A",
    "--node-modules-dir=manual",
    CONFORMANCE_ENTRY,
    "server",
    "--url",
    url,
  ], { cwd: CONFORMANCE_DIR });
  const status = await run.exit(240_000);
  const text = run.stdoutLines.join("\n");
  const outcomes = new Map<string, Outcome>();
  for (const match of text.matchAll(/^[✓✗] ([\w-]+): (\d+) passed, (\d+) failed$/gm)) {
    outcomes.set(match[1], { passed: Number(match[2]), failed: Number(match[3]) });
  }
  assert.ok(
    outcomes.size >= 20,
    `the suite reported ${outcomes.size} scenarios (exit ${status.code}):\n${text}\n${run.stderr}`,
  );
  return outcomes;
}

/** A free TCP port on loopback. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts server-everything over Streamable HTTP on loopback; resolves with its MCP URL. */
async function startEverythingHttp(): Promise<{ url: string; process: CliProcess }> {
  const port = freePort();
  const process = new CliProcess("node", [EVERYTHING_ENTRY, "streamableHttp"], {
    env: { PORT: String(port), GZIP_ALLOWED_DOMAINS: "127.0.0.1" },
  });
  const url = `http://127.0.0.1:${port}/mcp`;
  const deadline = Date.now() + 60_000;
  while (true) {
    try {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port });
      connection.close();
      return { url, process };
    } catch {
      if (Date.now() > deadline) {
        throw new Error(`server-everything did not listen on ${port}:\n${process.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Runs a test with a local signalling worker; stops every process it started. */
Deno.test(
  "The MCP conformance suite passes through serve --url and connect --http every scenario it passes directly against server-everything",
  withWorker(async (signal) => {
    await installConformance();
    const everything = await startEverythingHttp();
    const direct = await runConformance(everything.url);
    const passing = [...direct].filter(([, outcome]) => outcome.failed === 0).map(([name]) => name);
    assert.ok(passing.length >= 10, `only ${passing.length} scenarios pass directly`);

    const { serve, ticket } = await startServe(signal, ["--url", everything.url]);
    const http = CliProcess.cli(["connect", "--http", "127.0.0.1:0", ...LOCAL_FLAGS, ticket]);
    const url = await http.line(0);
    const tunnelled = await runConformance(url);
    const broken = passing.filter((name) => (tunnelled.get(name)?.failed ?? 1) > 0);
    assert.deepEqual(
      broken,
      [],
      `scenarios passing directly but not through the bridge: ${
        broken.join(", ")
      }\nconnect:\n${http.stderr}\nserve:\n${serve.stderr}`,
    );
  }),
);

Deno.test(
  "connect --http serves 50 HTTP sessions that are never closed, against serve with default limits",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, ["--", ...TEST_SERVER]);
    const http = CliProcess.cli(["connect", "--http", "127.0.0.1:0", ...LOCAL_FLAGS, ticket]);
    const url = new URL(await http.line(0));
    const clients: Client[] = [];
    try {
      for (let batch = 0; batch < 5; batch++) {
        const opened = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
          const client = new Client({ name: `session-${batch * 10 + i}`, version: "1.0.0" });
          await client.connect(new StreamableHTTPClientTransport(url), { timeout: 30_000 });
          return client;
        }));
        clients.push(...opened);
      }
      // One server process per MCP session: 50 different process ids.
      const pids = await Promise.all(clients.map(async (client) => {
        const result = await client.callTool({ name: "pid", arguments: {} }) as CallToolResult;
        return Number((result.content[0] as { text: string }).text);
      }));
      assert.ok(pids.every((pid) => Number.isSafeInteger(pid) && pid > 0), String(pids));
      assert.equal(new Set(pids).size, 50);
    } catch (error) {
      (error as Error).message += `\nconnect:\n${http.stderr}\nserve:\n${serve.stderr}`;
      throw error;
    }
    // Never closed by the clients: the bridge's shutdown ends them.
    const { status } = await http.signal("SIGINT");
    assert.equal(status.code, 0, http.stderr);
  }),
);

Deno.test(
  "serve --sessions refuses one session too many with an error the HTTP client sees; the others go on",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, ["--sessions", "2", "--", ...TEST_SERVER]);
    const http = CliProcess.cli(["connect", "--http", "127.0.0.1:0", ...LOCAL_FLAGS, ticket]);
    const url = new URL(await http.line(0));
    const open = [
      new Client({ name: "one", version: "1" }),
      new Client({ name: "two", version: "1" }),
    ];
    for (const client of open) await client.connect(new StreamableHTTPClientTransport(url));
    const third = new Client({ name: "three", version: "1" });
    await assert.rejects(
      third.connect(new StreamableHTTPClientTransport(url)),
      /Cannot open another MCP session as this agent has 2 open, the most the desktop allows: close one and try again/,
    );
    await serve.stderrMatch(/Refused a session of agent .* it has 2 open/);
    for (const client of open) {
      const result = await client.callTool({ name: "pid", arguments: {} }) as CallToolResult;
      assert.match((result.content[0] as { text: string }).text, /^\d+$/);
    }
    // A deleted session frees its place.
    await (open[0].transport as StreamableHTTPClientTransport).terminateSession();
    await open[0].close();
    await serve.stderrMatch(/Agent 1 session 1 ended: the agent closed it/);
    const fourth = new Client({ name: "four", version: "1" });
    await fourth.connect(new StreamableHTTPClientTransport(url));
    await fourth.callTool({ name: "pid", arguments: {} });
  }),
);

Deno.test(
  "A session whose server process dies ends alone: the other sessions on the connection go on",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, ["--", ...TEST_SERVER]);
    const http = CliProcess.cli(["connect", "--http", "127.0.0.1:0", ...LOCAL_FLAGS, ticket]);
    const url = new URL(await http.line(0));
    const doomed = new Client({ name: "doomed", version: "1" });
    const survivor = new Client({ name: "survivor", version: "1" });
    await doomed.connect(new StreamableHTTPClientTransport(url));
    await survivor.connect(new StreamableHTTPClientTransport(url));
    const pid = async (client: Client) => {
      const result = await client.callTool({ name: "pid", arguments: {} }) as CallToolResult;
      return Number((result.content[0] as { text: string }).text);
    };
    const before = await pid(survivor);
    await assert.rejects(
      doomed.callTool({ name: "exit", arguments: { code: 3 } }),
      /The MCP server process exited \(code 3\)/,
    );
    await serve.stderrMatch(/Agent 1 session 1 ended: its server exited \(code 3\)/);
    assert.equal(await pid(survivor), before);
    assert.doesNotMatch(serve.stderr, /Agent 1 left/);
  }),
);
