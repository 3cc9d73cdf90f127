/**
 * Tool limits and the audit trail on the desktop: through the listener (an
 * SDK client over a real data channel) and through `serve` bridging a real
 * MCP server process.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/types"
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  type AgentSession,
  type AuditRecord,
  MemorySignaling,
  WebRTCClientTransport,
  WebRTCListener,
} from "../mod.ts";
import { TOOL_NOT_ALLOWED } from "../src/constants.ts";
import { createTestServer, LOCAL, OnePeerHub } from "./_helpers.ts";
import { CliProcess, LOCAL_FLAGS, startAgent, until, withWorker } from "./_cli_helpers.ts";

async function listTools(client: Client): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 20; page++) {
    const result = await client.listTools(cursor === undefined ? {} : { cursor });
    names.push(...result.tools.map((tool) => tool.name));
    cursor = result.nextCursor;
    if (cursor === undefined) return names;
  }
  throw new Error("more than 20 pages");
}

Deno.test("WebRTCListener with a tools limit lists only those tools to an SDK client over a data channel, refuses another with an error naming the limit, and audits every request", async () => {
  const [agentSide, desktopSide] = MemorySignaling.createPair();
  const records: AuditRecord[] = [];
  const infos: AgentSession[] = [];
  const servers: ReturnType<typeof createTestServer>[] = [];
  const listener = new WebRTCListener({
    hub: new OnePeerHub(desktopSide),
    ...LOCAL,
    tools: ["greet"],
    onaudit: (record) => records.push(record),
    createServer: (info) => {
      infos.push(info);
      const server = createTestServer();
      servers.push(server);
      return server;
    },
  });
  const client = new Client({ name: "agent", version: "1.0.0" });
  try {
    await client.connect(new WebRTCClientTransport({ signaling: agentSide, ...LOCAL }));
    assert.deepEqual(await listTools(client), ["greet"]);
    await assert.rejects(
      client.callTool({ name: "blob", arguments: { size: 1 } }),
      (error: Error & { code?: number }) =>
        error.code === TOOL_NOT_ALLOWED &&
        /Cannot call the tool "blob" as this agent may use only the tools "greet" \(its tools limit\)/
          .test(error.message),
    );
    await client.callTool({ name: "greet", arguments: { name: "Ada" } });

    // A tool added while the session runs: the client hears of it, lists
    // again, and still sees only what the limit allows.
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve())
    );
    servers[0].registerTool("added", {}, () => ({ content: [] }));
    await changed;
    assert.deepEqual(await listTools(client), ["greet"]);

    const calls = records.filter((record) => record.method === "tools/call");
    assert.deepEqual(
      calls.map(({ peer, session, tool, ok, error, refused }) => ({
        peer,
        session,
        tool,
        ok,
        error,
        refused,
      })),
      [
        {
          peer: "peer-1",
          session: 1,
          tool: "blob",
          ok: false,
          error: TOOL_NOT_ALLOWED,
          refused: "tools",
        },
        {
          peer: "peer-1",
          session: 1,
          tool: "greet",
          ok: true,
          error: undefined,
          refused: undefined,
        },
      ],
    );
    assert.deepEqual(
      records.filter((record) => record.method === "tools/list").length,
      2,
    );
    assert.ok(records.every((record) => record.durationMs >= 0 && record.start > 0));
    assert.deepEqual(infos.map((info) => info.peer), ["peer-1"]);
  } finally {
    await client.close();
    await listener.close();
  }
});

Deno.test("WebRTCListener refuses a tools limit that is not a list of names", () => {
  const [, desktopSide] = MemorySignaling.createPair();
  assert.throws(
    () =>
      new WebRTCListener({
        hub: new OnePeerHub(desktopSide),
        tools: "greet" as unknown as string[],
        createServer: () => createTestServer(),
      }),
    /Cannot create listener as 'tools' must be an array of tool names/,
  );
});

const PAGED_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("./_paged_server.ts", import.meta.url).pathname,
];

Deno.test(
  "serve --tools lists only those tools of a bridged server (every page), refuses another before it reaches the server, keeps a re-list after tools/list_changed filtered, and --audit writes one line per call with the agent and tool",
  withWorker(async (signal) => {
    const dir = await Deno.makeTempDir();
    const audit = `${dir}/audit.jsonl`;
    const serve = CliProcess.cli([
      "serve",
      "--signal",
      signal,
      ...LOCAL_FLAGS,
      "--tools",
      "t2,t6",
      "--tools",
      "t7,add,calls",
      "--audit",
      audit,
      "--",
      ...PAGED_SERVER,
    ]);
    const ticket = await serve.line(0);
    const agent = await startAgent(ticket);
    try {
      const client = agent.client;
      // The server pages its tools three at a time: t1 t2 t3 | t4 t5 t6 | t7 add calls.
      const first = await client.listTools();
      assert.deepEqual(first.tools.map((tool) => tool.name), ["t2"]);
      assert.equal(first.nextCursor, "3");
      assert.deepEqual(await listTools(client), ["t2", "t6", "t7", "add", "calls"]);

      await assert.rejects(
        client.callTool({ name: "t1" }),
        /Cannot call the tool "t1" as this agent may use only the tools "t2", "t6", "t7", "add", "calls" \(its tools limit\)/,
      );
      await client.callTool({ name: "t6" });
      // The server counts the calls it got: the refused one never reached it.
      const counted = await client.callTool({ name: "calls" });
      assert.deepEqual(counted.content, [{ type: "text", text: "t6" }]);

      const changed = new Promise<void>((resolve) =>
        client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve())
      );
      await client.callTool({ name: "add" }); // adds t8, outside the limit
      await changed;
      assert.deepEqual(await listTools(client), ["t2", "t6", "t7", "add", "calls"]);

      await until(
        () => {
          try {
            return Deno.readTextFileSync(audit).split("\n").filter((line) =>
              line.includes('"tools/call"')
            ).length >= 4;
          } catch {
            return false;
          }
        },
        10_000,
        "four tools/call lines in the audit file",
      );
      const lines = Deno.readTextFileSync(audit).trim().split("\n").map((line) => JSON.parse(line));
      const calls = lines.filter((line) => line.method === "tools/call");
      assert.deepEqual(
        calls.map(({ agent, name, session, tool, ok, error, refused }) => ({
          agent,
          name,
          session,
          tool,
          ok,
          error,
          refused,
        })),
        [
          { tool: "t1", ok: false, error: TOOL_NOT_ALLOWED, refused: "tools" },
          { tool: "t6", ok: true, error: undefined, refused: undefined },
          { tool: "calls", ok: true, error: undefined, refused: undefined },
          { tool: "add", ok: true, error: undefined, refused: undefined },
        ].map((call) => ({ agent: 1, name: "guest", session: 1, ...call })),
      );
      for (const line of lines) {
        assert.equal(typeof line.peer, "string");
        assert.ok(new Date(line.start).toISOString() === line.start, line.start);
        assert.ok(Number.isInteger(line.durationMs) && line.durationMs >= 0);
      }
      assert.ok(lines.some((line) => line.method === "initialize"));
      assert.ok(lines.some((line) => line.method === "notifications/initialized"));
      const mode = (await Deno.stat(audit)).mode! & 0o777;
      if (Deno.build.os !== "windows") assert.equal(mode, 0o600);
    } finally {
      await agent.transport.close();
      await serve.kill();
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "serve refuses an empty --tools and an --audit file it cannot open, with a usage error",
  withWorker(async (signal) => {
    const empty = CliProcess.cli(["serve", "--signal", signal, "--tools", ",", "--", "true"]);
    assert.equal((await empty.exit()).code, 2);
    assert.match(empty.stderr, /Cannot read --tools as it must be tool names separated by commas/);
    const dir = await Deno.makeTempDir();
    try {
      const bad = CliProcess.cli([
        "serve",
        "--signal",
        signal,
        "--audit",
        `${dir}/missing/audit.jsonl`,
        "--",
        "true",
      ]);
      assert.equal((await bad.exit()).code, 2);
      assert.match(bad.stderr, /Cannot open the audit file/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);
