/**
 * The `mcp-webrtc` CLI end to end, as real processes on 127.0.0.1: `serve`
 * bridging stdio and HTTP servers, `connect` in stdio and HTTP mode driven by
 * the SDK's client and by the MCP Inspector's CLI, the local worker for
 * signalling, and every error with its message and exit code.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import {
  type CallToolResult,
  CreateMessageRequestSchema,
  ListRootsRequestSchema,
  McpError,
} from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { createGuestTicket, createTicket, formatTicket, parseTicket } from "../mod.ts";
import {
  type Agent,
  alive,
  CLI,
  CliProcess,
  EVERYTHING_PACKAGE,
  INSPECTOR_PACKAGE,
  killAll,
  LOCAL_FLAGS,
  startAgent,
  startServe,
  TEST_SERVER,
  until,
  withWorker,
} from "./_cli_helpers.ts";

const EVERYTHING = ["npx", "--yes", EVERYTHING_PACKAGE, "stdio"];
/** server-filesystem, pinned: the desktop's files, as a user would serve them. */
const FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem@2026.8.31";
// server-everything's gzip tool fetches URLs: allow none but loopback (the tests use data: URLs).
const EVERYTHING_ENV = { GZIP_ALLOWED_DOMAINS: "127.0.0.1" };

function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

/** Runs a test with a local signalling worker; stops every process it started. */
async function closeAgent(agent: Agent): Promise<number> {
  await agent.client.close();
  return (await agent.transport.exited).code;
}

/** An agent that answers sampling and roots requests, as a desktop app would. */
function samplingClient(): Client {
  const client = new Client({ name: "cli-test-agent", version: "1.0.0" }, {
    capabilities: { sampling: {}, roots: { listChanged: true } },
  });
  client.setRequestHandler(CreateMessageRequestSchema, (request) => ({
    model: "test-model",
    role: "assistant",
    content: {
      type: "text",
      text: `sampled: ${(request.params.messages[0].content as { text: string }).text}`,
    },
  }));
  client.setRequestHandler(ListRootsRequestSchema, () => ({
    roots: [{ uri: "file:///agent/workspace", name: "workspace" }],
  }));
  return client;
}

async function toolNames(client: Client, expected: string, ms = 10_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  while (true) {
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    // server-everything registers its conditional tools just after initialization.
    if (names.includes(expected) || Date.now() > deadline) return names;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Incompressible bytes, as a base64 data: URL. */
function randomDataUrl(bytes: number): string {
  const data = new Uint8Array(bytes);
  for (let offset = 0; offset < bytes; offset += 65_536) {
    crypto.getRandomValues(data.subarray(offset, Math.min(bytes, offset + 65_536)));
  }
  let binary = "";
  for (let offset = 0; offset < bytes; offset += 32_768) {
    binary += String.fromCharCode(...data.subarray(offset, offset + 32_768));
  }
  return `data:application/octet-stream;base64,${btoa(binary)}`;
}

Deno.test(
  "serve and connect bridge server-everything: tools, progress, sampling, roots, large payloads, cancellation",
  withWorker(async (signal) => {
    // Fetch the package once, outside the timed part.
    const warm = new CliProcess("npx", ["--yes", EVERYTHING_PACKAGE, "stdio"]);
    assert.equal((await warm.exit(120_000)).code, 0, warm.stderr);

    const { serve, ticket } = await startServe(signal, ["--", ...EVERYTHING], {
      env: EVERYTHING_ENV,
    });
    assert.match(ticket, /^mcpwebrtc2\.guest\./);
    const agent = await startAgent(ticket, samplingClient());
    const { client } = agent;
    assert.equal(client.getServerVersion()?.name, "mcp-servers/everything");
    await serve.stderrMatch(/Agent 1 connected via host \(127\.0\.0\.1:\d+\)/);

    const names = await toolNames(client, "trigger-sampling-request");
    for (const name of ["echo", "get-sum", "trigger-long-running-operation", "get-roots-list"]) {
      assert.ok(names.includes(name), `${name} in ${names}`);
    }
    assert.ok(names.includes("trigger-sampling-request"), `sampling tool in ${names}`);

    assert.equal(
      text(await client.callTool({ name: "echo", arguments: { message: "hi" } })),
      "Echo: hi",
    );
    assert.equal(
      text(await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } })),
      "The sum of 2 and 3 is 5.",
    );

    // Progress notifications from the server, tied to their request.
    const progress: number[] = [];
    const done = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 0.4, steps: 4 } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.match(text(done), /Long running operation completed/);
    assert.deepEqual(progress, [1, 2, 3, 4]);

    // A request from the server (sampling) answered by the agent.
    const sampled = text(
      await client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "the bridge", maxTokens: 10 },
      }),
    );
    assert.match(sampled, /sampled: Resource trigger-sampling-request context: the bridge/);
    assert.match(sampled, /test-model/);

    // Roots: the server asked for them at initialization and again now.
    assert.match(
      text(await client.callTool({ name: "get-roots-list", arguments: {} })),
      /file:\/\/\/agent\/workspace/,
    );

    // Large payloads both ways: a 4 MB argument echoed back, a 3 MB resource read.
    const big = "x".repeat(4 * 1024 * 1024);
    assert.equal(
      text(await client.callTool({ name: "echo", arguments: { message: big } })).length,
      big.length + "Echo: ".length,
    );
    const link = await client.callTool({
      name: "gzip-file-as-resource",
      arguments: { name: "big.bin.gz", data: randomDataUrl(3 * 1024 * 1024) },
    });
    const uri = (link.content as { uri: string }[])[0].uri;
    const resource = await client.readResource({ uri });
    const blob = (resource.contents[0] as { blob: string }).blob;
    assert.ok(blob.length > 4 * 1024 * 1024, `blob of ${blob.length} base64 characters`);

    // Cancellation: the request is abandoned and the session goes on.
    const controller = new AbortController();
    const cancelled = client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 10, steps: 10 } },
      undefined,
      { signal: controller.signal, onprogress: () => controller.abort("enough") },
    );
    await assert.rejects(cancelled);
    assert.equal(
      text(await client.callTool({ name: "echo", arguments: { message: "after" } })),
      "Echo: after",
    );

    assert.equal(await closeAgent(agent), 0, agent.stderr.join("\n"));
    await serve.stderrMatch(/Agent 1 left: the agent disconnected/);
    const { status, ms } = await serve.signal("SIGTERM");
    assert.equal(status.code, 0, serve.stderr);
    assert.ok(ms < 2_000, `serve exited in ${ms} ms`);
  }),
);

Deno.test(
  "serve bridges server-filesystem: an agent reads a 2 MB file and a Unicode name, writes 1 MB back, and is refused outside the folder",
  withWorker(async (signal) => {
    const folder = await Deno.makeTempDir({ prefix: "mcpw-desktop-" });
    try {
      // A desktop's files: every kind of JSON escape, and characters of every UTF-8 length.
      const line = (n: number) => `line ${n}: "quoted" \\ back\tslash é€😀\n`;
      const big = Array.from({ length: 60_000 }, (_, n) => line(n)).join("");
      await Deno.writeTextFile(`${folder}/notes.txt`, big);
      await Deno.writeTextFile(`${folder}/café 😀.md`, "# Menu\n");
      const warm = new CliProcess("npx", ["--yes", FILESYSTEM_PACKAGE, folder]);
      assert.equal((await warm.exit(120_000)).code, 0, warm.stderr);

      const { serve, ticket } = await startServe(signal, [
        "--",
        "npx",
        "--yes",
        FILESYSTEM_PACKAGE,
        folder,
      ]);
      const agent = await startAgent(ticket);
      const { client } = agent;
      const names = (await client.listTools()).tools.map((tool) => tool.name);
      for (const name of ["read_text_file", "write_file", "list_directory"]) {
        assert.ok(names.includes(name), `${name} in ${names}`);
      }

      const listing = text(
        await client.callTool({ name: "list_directory", arguments: { path: folder } }),
      );
      assert.match(listing, /\[FILE\] café 😀\.md/);
      const menu = await client.callTool({
        name: "read_text_file",
        arguments: { path: `${folder}/café 😀.md` },
      });
      assert.equal(text(menu), "# Menu\n");
      // 2.9 MB of UTF-8 from the desktop, in chunks, whole.
      const read = await client.callTool({
        name: "read_text_file",
        arguments: { path: `${folder}/notes.txt` },
      });
      assert.equal(text(read).length, big.length);
      assert.ok(text(read) === big, "notes.txt came back altered");

      // And 1 MB from the agent to the desktop's disk.
      const written = big.slice(0, 1_000_000);
      await client.callTool({
        name: "write_file",
        arguments: { path: `${folder}/from-agent.txt`, content: written },
      });
      assert.ok((await Deno.readTextFile(`${folder}/from-agent.txt`)) === written);

      // The server's own rule: nothing outside the folder it was given.
      const outside = await client.callTool({
        name: "read_text_file",
        arguments: { path: "/etc/hostname" },
      });
      assert.equal(outside.isError, true, text(outside));
      assert.match(text(outside), /denied|outside/i);

      assert.equal(await closeAgent(agent), 0, agent.stderr.join("\n"));
      const { status } = await serve.signal("SIGTERM");
      assert.equal(status.code, 0, serve.stderr);
    } finally {
      await Deno.remove(folder, { recursive: true });
    }
  }),
);

Deno.test(
  "connect forwards cancellation to the server; a request in flight when the server dies gets -32000 and connect exits 6",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, ["--", ...TEST_SERVER]);
    const agent = await startAgent(ticket);
    const { client } = agent;
    const controller = new AbortController();
    const waiting = client.callTool({ name: "wait", arguments: {} }, undefined, {
      signal: controller.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort("no longer needed");
    await assert.rejects(waiting);
    let count = "0";
    for (let i = 0; i < 50 && count === "0"; i++) {
      count = text(await client.callTool({ name: "cancelled", arguments: {} }));
      if (count === "0") await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(count, "1", "the server saw the cancellation");

    const error = await client.callTool({ name: "exit", arguments: { code: 3 } }).then(
      () => undefined,
      (error) => error,
    );
    assert.ok(error instanceof McpError, String(error));
    assert.equal(error.code, -32000);
    assert.match(error.message, /The MCP server process exited \(code 3\)/);
    assert.equal((await agent.transport.exited).code, 6, agent.stderr.join("\n"));
    assert.match(agent.stderr.join("\n"), /The connection to the desktop closed/);
    await serve.stderrMatch(/Agent 1 session 1 ended: its server exited \(code 3\)/);
    await client.close();
  }),
);

Deno.test(
  "Two agents on one serve get separate server processes; one leaving does not disturb the other",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, ["--", ...TEST_SERVER]);
    const [one, two] = await Promise.all([startAgent(ticket), startAgent(ticket)]);
    const pids = await Promise.all(
      [one, two].map(async ({ client }) =>
        Number(text(await client.callTool({ name: "pid", arguments: {} })))
      ),
    );
    assert.notEqual(pids[0], pids[1]);
    assert.ok(pids.every(alive));
    assert.equal(await closeAgent(one), 0);
    // Told, not taken as lost (a lost agent's session waits for its redial).
    await serve.stderrMatch(/Agent \d session 1 ended: the agent closed it/, 5_000);
    await until(() => !alive(pids[0]), 5_000, "the first agent's server ended");
    assert.ok(alive(pids[1]));
    assert.equal(text(await two.client.callTool({ name: "pid", arguments: {} })), String(pids[1]));

    // SIGTERM: the remaining server ends, the agent is told, serve exits in time.
    const { status, ms } = await serve.signal("SIGTERM");
    assert.equal(status.code, 0);
    assert.ok(ms < 2_000, `serve exited in ${ms} ms`);
    assert.equal((await two.transport.exited).code, 6, two.stderr.join("\n"));
    await until(() => !alive(pids[1]), 2_000, "the second agent's server ended");
    await two.client.close();
    // Agents that left are not warned about (a goodbye to one that left is refused by the room).
    assert.doesNotMatch(serve.stderr, /refused a frame/);
  }),
);

Deno.test(
  "The MCP Inspector's CLI lists and calls tools through connect, on stdio and with --http; an SDK client gets progress and sampling over --http",
  withWorker(async (signal) => {
    const { ticket } = await startServe(signal, ["--", ...EVERYTHING], { env: EVERYTHING_ENV });
    // inspector-cli 1.0.3 reads its package.json from "../package.json" relative to the
    // working directory: run it one level below a directory that has one.
    const scratch = await Deno.makeTempDir();
    await Deno.writeTextFile(`${scratch}/package.json`, "{}");
    await Deno.mkdir(`${scratch}/cwd`);
    const inspector = (args: string[]) =>
      new CliProcess("npx", ["--yes", INSPECTOR_PACKAGE, "--cli", ...args], {
        cwd: `${scratch}/cwd`,
      });
    try {
      const connectCommand = [Deno.execPath(), "run", "-A", CLI, "connect", "-q"];
      const listed = inspector([
        ...connectCommand,
        ...LOCAL_FLAGS,
        ticket,
        "--method",
        "tools/list",
      ]);
      assert.equal((await listed.exit(120_000)).code, 0, listed.stderr);
      const tools = JSON.parse(listed.stdoutLines.join("\n")).tools.map((t: { name: string }) =>
        t.name
      );
      assert.ok(tools.includes("echo"), `${tools}`);
      const called = inspector([
        ...connectCommand,
        ...LOCAL_FLAGS,
        ticket,
        "--method",
        "tools/call",
        "--tool-name",
        "get-sum",
        "--tool-arg",
        "a=20",
        "b=22",
      ]);
      assert.equal((await called.exit(60_000)).code, 0, called.stderr);
      assert.match(called.stdoutLines.join("\n"), /The sum of 20 and 22 is 42\./);

      const http = CliProcess.cli(["connect", "--http", "127.0.0.1:0", ...LOCAL_FLAGS, ticket]);
      const url = await http.line(0);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
      const overHttp = inspector([
        url,
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "message=over http",
      ]);
      assert.equal((await overHttp.exit(60_000)).code, 0, overHttp.stderr + http.stderr);
      assert.match(overHttp.stdoutLines.join("\n"), /Echo: over http/);

      // The SDK's HTTP client: a server request (sampling) and progress reach it on the
      // streams of the request in flight.
      const client = samplingClient();
      await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      await toolNames(client, "trigger-sampling-request");
      assert.match(
        text(
          await client.callTool({
            name: "trigger-sampling-request",
            arguments: { prompt: "http", maxTokens: 5 },
          }),
        ),
        /sampled: Resource trigger-sampling-request context: http/,
      );
      const progress: number[] = [];
      await client.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
        undefined,
        { onprogress: (p) => progress.push(p.progress) },
      );
      assert.deepEqual(progress, [1, 2, 3]);
      await (client.transport as StreamableHTTPClientTransport).terminateSession();
      await client.close();
      await http.stderrMatch(/Session \d+ ended: the HTTP client closed it/);
      const { status, ms } = await http.signal("SIGINT");
      assert.equal(status.code, 0);
      assert.ok(ms < 2_000, `connect --http exited in ${ms} ms`);
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
  }),
);

Deno.test(
  "serve --url bridges a Streamable HTTP server, one upstream session per agent",
  withWorker(async (signal) => {
    const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
    let made = 0;
    const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const id = req.headers.get("mcp-session-id");
      if (id && sessions.has(id)) return await sessions.get(id)!.handleRequest(req);
      const transport: WebStandardStreamableHTTPServerTransport =
        new WebStandardStreamableHTTPServerTransport({
          sessionIdGenerator: () => crypto.randomUUID(),
          onsessioninitialized: (sid: string) => void sessions.set(sid, transport),
          onsessionclosed: (sid: string) => void sessions.delete(sid),
        });
      const n = ++made;
      const server = new McpServer({ name: "http-upstream", version: "1.0.0" });
      server.registerTool(
        "whoami",
        { inputSchema: { greeting: z.string() } },
        ({ greeting }) => ({ content: [{ type: "text", text: `${greeting} from session ${n}` }] }),
      );
      await server.connect(transport);
      return await transport.handleRequest(req);
    });
    try {
      const url = `http://127.0.0.1:${upstream.addr.port}/mcp`;
      const { serve, ticket } = await startServe(signal, ["--url", url]);
      const [one, two] = await Promise.all([startAgent(ticket), startAgent(ticket)]);
      assert.equal(one.client.getServerVersion()?.name, "http-upstream");
      const answers = await Promise.all(
        [one, two].map(async ({ client }) =>
          text(await client.callTool({ name: "whoami", arguments: { greeting: "hi" } }))
        ),
      );
      assert.deepEqual(answers.sort(), ["hi from session 1", "hi from session 2"]);
      assert.equal(await closeAgent(one), 0);
      // The agent's upstream session is deleted when it leaves.
      const left = (n: number, what: string) =>
        until(() => sessions.size === n, 5_000, what).catch((error) => {
          throw new Error(`${error.message}; serve:\n${serve.stderr}`);
        });
      await left(1, "one upstream session left");
      assert.equal(await closeAgent(two), 0);
      await left(0, "no upstream session left");
      assert.equal((await serve.signal("SIGTERM")).status.code, 0);
    } finally {
      // The upstream's shutdown waits for serve's open streams: end serve first.
      await killAll();
      await upstream.shutdown();
    }
  }),
);

Deno.test(
  "The CLI reports each error with its message and exit code",
  withWorker(async (signal) => {
    const expectExit = async (
      args: string[],
      code: number,
      pattern: RegExp,
      env?: Record<string, string>,
    ) => {
      // stdin stays open, as an MCP client keeps it: at its end, connect would just leave.
      const process = CliProcess.cli(args, { env, stdin: "piped" });
      const status = await process.exit(30_000);
      assert.equal(status.code, code, `${args.join(" ")}: ${process.stderr}`);
      assert.match(process.stderr, pattern, args.join(" "));
      return process;
    };

    // Help for every subcommand, and usage errors.
    for (const command of ["serve", "connect", "signal"]) {
      const help = CliProcess.cli([command, "--help"]);
      assert.equal((await help.exit()).code, 0);
      assert.match(help.stdoutLines.join("\n"), new RegExp(`mcp-webrtc ${command}`));
    }
    await expectExit(["bogus"], 2, /Unknown command "bogus"/);
    await expectExit(
      ["serve", "--", "true"],
      2,
      /no signalling service is given.*MCP_WEBRTC_SIGNAL/,
    );
    await expectExit(["connect", "--frobnicate", "x"], 2, /Unknown option '--frobnicate'/);

    // Bad tickets: malformed, a host ticket, expired.
    await expectExit(["connect", "mcpwebrtc2.guest.nope"], 2, /TicketError|ticket/i);
    const host = await createTicket({ url: signal });
    await expectExit(["connect", formatTicket(host)], 2, /host ticket/);
    const expired = await createGuestTicket(
      await createTicket({ url: signal, expiresAt: new Date(Date.now() - 60_000) }),
    );
    await expectExit(["connect", formatTicket(expired)], 2, /expired/);

    // Unreachable signalling service: nothing listens on port 9 of loopback.
    await expectExit(
      ["serve", "--signal", "ws://127.0.0.1:9", ...LOCAL_FLAGS, "--", ...TEST_SERVER],
      3,
      /Cannot open a room on the signalling service ws:\/\/127\.0\.0\.1:9\/: .*handshake failed/,
    );
    const nowhere = await createGuestTicket(await createTicket({ url: "ws://127.0.0.1:9" }));
    await expectExit(
      ["connect", ...LOCAL_FLAGS, formatTicket(nowhere)],
      3,
      /Cannot connect to the desktop: .*handshake failed/,
    );

    // The server command does not exist.
    await expectExit(
      ["serve", "--signal", signal, "--", "no-such-mcp-server-command"],
      5,
      /command "no-such-mcp-server-command" was not found/,
    );

    // No desktop: a room never opened (a ticket's room needs no setup, so the
    // agent waits for its desktop as for one that left), and a room whose
    // desktop left (within --wait).
    const never = formatTicket(await createGuestTicket(await createTicket({ url: signal })));
    await expectExit(["connect", ...LOCAL_FLAGS, "--wait", "1s", never], 4, /host|desktop/i);
    const gone = await startServe(signal, ["--", ...TEST_SERVER]);
    assert.equal((await gone.serve.signal("SIGTERM")).status.code, 0);
    const start = Date.now();
    await expectExit(["connect", ...LOCAL_FLAGS, "--wait", "1s", gone.ticket], 4, /host|desktop/i);
    assert.ok(Date.now() - start < 10_000);

    const { serve, ticket } = await startServe(signal, ["--agents", "1", "--", ...TEST_SERVER], {
      env: { CLI_SERVER_EXIT_AT_START: "7" },
    });
    // A forged ticket for the same room is refused by the signalling service.
    const stranger = await createGuestTicket(await createTicket({ url: signal }));
    const forged = formatTicket({ ...stranger, room: parseTicket(ticket).room });
    await expectExit(["connect", ...LOCAL_FLAGS, forged], 3, /refused|key/i);

    // A server that dies at start: the agent's initialize gets an MCP error, not a hang.
    const error = await startAgent(ticket).then(() => undefined, (error) => error);
    assert.ok(error instanceof McpError, String(error));
    assert.equal(error.code, -32000);
    assert.match(error.message, /The MCP server process exited \(code 7\)/);
    await serve.stderrMatch(/Agent 1 session 1 ended: its server exited \(code 7\)/);
    await serve.kill();

    // The agent limit: a second agent is refused while the first is connected.
    const limited = await startServe(signal, ["--agents", "1", "--", ...TEST_SERVER]);
    const first = await startAgent(limited.ticket);
    // The desktop's sealed refusal reaches the agent, with its reason.
    await expectExit(
      ["connect", ...LOCAL_FLAGS, "--connect-timeout", "2s", limited.ticket],
      4,
      /maximum of 1 agents/,
    );
    await limited.serve.stderrMatch(/Refused agent .*maximum of 1 agents/);
    assert.equal(
      text(await first.client.callTool({ name: "pid", arguments: {} })).length > 0,
      true,
    );

    // SIGINT on connect: the desktop is told, connect exits 0 within 2 s.
    await closeAgent(first);
    await limited.serve.stderrMatch(/Agent 1 left/);
    const connectProcess = CliProcess.cli(["connect", ...LOCAL_FLAGS, limited.ticket], {
      stdin: "piped",
    });
    await connectProcess.stderrMatch(/Connected via host/);
    await limited.serve.stderrMatch(/Agent 2 connected/);
    const { status, ms } = await connectProcess.signal("SIGINT");
    assert.equal(status.code, 0, connectProcess.stderr);
    assert.ok(ms < 2_000, `connect exited in ${ms} ms`);
    await limited.serve.stderrMatch(/Agent 2 left: the agent disconnected/);
  }),
);

Deno.test(
  "connect --wait waits for the desktop longer than --connect-timeout, then connects",
  withWorker(async (signal) => {
    const dir = await Deno.makeTempDir();
    const hostFile = `${dir}/host-ticket`;
    try {
      // The desktop opens its room, then leaves: the room waits for it to come back.
      const first = await startServe(signal, [
        "--host-ticket-file",
        hostFile,
        "--",
        ...TEST_SERVER,
      ]);
      assert.equal((await first.serve.signal("SIGTERM")).status.code, 0, first.serve.stderr);
      const agentStarted = startAgent(first.ticket, undefined, [
        "--wait",
        "30s",
        "--connect-timeout",
        "1s",
      ]);
      const agentFailed = agentStarted.then(() => undefined, (error: Error) => error);
      // Twice the connect timeout passes with no desktop in the room: the point of the test.
      const noDesktop = new Promise((resolve) => setTimeout(resolve, 2_000));
      assert.equal(await Promise.race([agentFailed, noDesktop]), undefined);
      const second = await startServe(signal, [
        "--host-ticket-file",
        hostFile,
        "--",
        ...TEST_SERVER,
      ]);
      assert.equal(second.ticket, first.ticket);
      const agent = await agentStarted;
      assert.ok((await agent.client.listTools()).tools.length > 0);
      assert.equal(await closeAgent(agent), 0, agent.stderr.join("\n"));
      await second.serve.signal("SIGTERM");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "serve --ticket-version 1 hands out a version 1 ticket that an agent connects with; another version is a usage error",
  withWorker(async (signal) => {
    const { serve, ticket } = await startServe(signal, [
      "--ticket-version",
      "1",
      "--",
      ...TEST_SERVER,
    ]);
    try {
      assert.match(ticket, /^mcpwebrtc1\.guest\./);
      assert.equal(parseTicket(ticket).hostVerifier, undefined);
      const agent = await startAgent(ticket);
      assert.match(text(await agent.client.callTool({ name: "pid", arguments: {} })), /^\d+$/);
      await agent.client.close();
    } finally {
      await serve.signal("SIGTERM");
    }
    const wrong = CliProcess.cli([
      "serve",
      "--signal",
      signal,
      "--ticket-version",
      "3",
      "--",
      ...TEST_SERVER,
    ]);
    const exit = await wrong.exit();
    assert.equal(exit.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /--ticket-version must be 1 or 2: received "3"/);
  }),
);
