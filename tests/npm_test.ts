/**
 * The npm package under Node, as a user gets it: `deno task npm`'s package
 * packed with `npm pack`, installed from the tarball into an empty folder with
 * plain `npm` (node-datachannel and `ws` come from the registry), then its
 * `serve` and `connect` run by Node on 127.0.0.1 against the local worker,
 * driven by the SDK's client and by the MCP Inspector's CLI, `connect`
 * launched with the `npx -y mcp-webrtc …` line of the README; and its library
 * entries, type-checked by TypeScript as a Node project would (`NodeNext`,
 * without skipping the package's `.d.ts`) and run by Node.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { ChildProcessTransport } from "../src/cli/stdio.ts";
import { buildNpmPackage, NPM_NAME } from "../scripts/npm.ts";
import { startLocalSignaling } from "../worker/local.ts";
import {
  alive,
  CliProcess,
  INSPECTOR_PACKAGE,
  killAll,
  LOCAL_FLAGS,
  TEST_SERVER,
  until,
} from "./_cli_helpers.ts";

const INSTALL_TIMEOUT_MS = 180_000;
const root = new URL("..", import.meta.url);

/** Runs a command to its end within `ms`; throws with its output if it fails. */
async function run(command: string, args: string[], cwd: string, ms = INSTALL_TIMEOUT_MS) {
  const process = new CliProcess(command, args, { cwd });
  const status = await process.exit(ms);
  const output = `${process.stdoutLines.join("\n")}\n${process.stderr}`;
  assert.equal(status.code, 0, `${command} ${args.join(" ")}:\n${output}`);
  return process.stdoutLines;
}

let installed: Promise<string> | undefined;

/**
 * Builds, packs and installs the package once; resolves the folder it is
 * installed in. The folder has a package.json, and a `cwd/` below it: the
 * Inspector's CLI reads "../package.json" from its working directory.
 */
function install(): Promise<string> {
  installed ??= (async () => {
    const scratch = await Deno.makeTempDir({ prefix: "mcpw-npm-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(scratch, { recursive: true }));
    const built = await buildNpmPackage(new URL(`file://${scratch}/package/`));
    const [tarball] = await run("npm", ["pack", "--silent", built.pathname], scratch);
    assert.match(tarball, new RegExp(`^${NPM_NAME}-\\d+\\.\\d+\\.\\d+\\.tgz$`));
    const app = `${scratch}/app`;
    await Deno.mkdir(`${app}/cwd`, { recursive: true });
    await Deno.writeTextFile(`${app}/package.json`, JSON.stringify({ private: true }));
    // The MCP SDK: what a user of the library has already (the package's optional peer).
    const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
    const sdk = config.imports["@modelcontextprotocol/sdk"].replace(/^npm:/, "");
    await run("npm", ["install", "--no-audit", "--no-fund", `${scratch}/${tarball}`, sdk], app);
    return app;
  })();
  return installed;
}

/** Node ≥ 20 must be there: the package's engines. */
async function nodeMajor(): Promise<number> {
  const [version] = await run("node", ["--version"], "/");
  return Number(version.match(/^v(\d+)\./)?.[1]);
}

function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

/** `serve` of the installed package, under Node, bridging the test server. */
async function startServe(
  app: string,
  signal: string,
): Promise<{ serve: CliProcess; ticket: string }> {
  const serve = new CliProcess(
    `${app}/node_modules/.bin/${NPM_NAME}`,
    ["serve", "--signal", signal, ...LOCAL_FLAGS, "--", ...TEST_SERVER],
    { cwd: app },
  );
  return { serve, ticket: await serve.line(0, 30_000) };
}

Deno.test("The packed npm package's serve and connect run under Node: an SDK client lists and calls tools", async () => {
  assert.ok((await nodeMajor()) >= 20, "Node ≥ 20 must be installed to run this test");
  const app = await install();
  const worker = await startLocalSignaling();
  try {
    const { serve, ticket } = await startServe(app, worker.url);
    const stderr: string[] = [];
    const transport = new ChildProcessTransport("npx", {
      args: ["-y", NPM_NAME, "connect", ...LOCAL_FLAGS, ticket],
      cwd: app,
      onstderr: (line) => stderr.push(line),
    });
    const client = new Client({ name: "npm-test-agent", version: "1.0.0" });
    await client.connect(transport, { timeout: 30_000 }).catch((error) => {
      throw new Error(`${error.message}\nconnect:\n${stderr.join("\n")}\nserve:\n${serve.stderr}`);
    });
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["cancelled", "exit", "pid", "wait"]);
    const pid = Number(text(await client.callTool({ name: "pid" })));
    assert.ok(alive(pid), `the server's pid ${pid}`);
    await client.close();
    assert.equal((await transport.exited).code, 0, stderr.join("\n"));
    // SIGTERM through Node's signal handling: serve stops and ends its server.
    const { status } = await serve.signal("SIGTERM");
    assert.equal(status.code, 0, serve.stderr);
    await until(() => !alive(pid), 5_000, "the bridged server ended");
  } finally {
    await killAll();
    await worker.close();
  }
});

Deno.test("The MCP Inspector's CLI lists and calls tools with the packed package as its server command, on stdio and with connect --http", async () => {
  const app = await install();
  const worker = await startLocalSignaling();
  const inspector = (args: string[]) =>
    new CliProcess("npx", ["--yes", INSPECTOR_PACKAGE, "--cli", ...args], { cwd: `${app}/cwd` });
  try {
    const { ticket } = await startServe(app, worker.url);
    // The client-config line: npx -y mcp-webrtc connect <ticket>.
    const connectCommand = ["npx", "-y", NPM_NAME, "connect", "-q", ...LOCAL_FLAGS, ticket];
    const listed = inspector([...connectCommand, "--method", "tools/list"]);
    assert.equal((await listed.exit(120_000)).code, 0, listed.stderr);
    const tools = JSON.parse(listed.stdoutLines.join("\n")).tools;
    assert.deepEqual(tools.map((tool: { name: string }) => tool.name).sort(), [
      "cancelled",
      "exit",
      "pid",
      "wait",
    ]);
    const called = inspector([...connectCommand, "--method", "tools/call", "--tool-name", "pid"]);
    assert.equal((await called.exit(60_000)).code, 0, called.stderr);
    assert.match(called.stdoutLines.join("\n"), /"text": "\d+"/);

    const http = new CliProcess(
      `${app}/node_modules/.bin/${NPM_NAME}`,
      ["connect", "--http", "127.0.0.1:0", ...LOCAL_FLAGS, ticket],
      { cwd: app },
    );
    const url = await http.line(0);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const overHttp = inspector([
      url,
      "--transport",
      "http",
      "--method",
      "tools/call",
      "--tool-name",
      "cancelled",
    ]);
    assert.equal((await overHttp.exit(60_000)).code, 0, overHttp.stderr + http.stderr);
    assert.match(overHttp.stdoutLines.join("\n"), /"text": "0"/);
    const { status } = await http.signal("SIGTERM");
    assert.equal(status.code, 0, http.stderr);
  } finally {
    await killAll();
    await worker.close();
  }
});

/** A Node program that uses the library from the package, as its README shows. */
const CONSUMER = `
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { MemorySignaling, WebRTCClientTransport, WebRTCServerTransport } from "${NPM_NAME}";
import { FRAME_LAST } from "${NPM_NAME}/framing";

const local = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
const [a, b] = MemorySignaling.createPair();
const server = new McpServer({ name: "node-library", version: "1.0.0" });
server.registerTool("hello", { description: "Says hello" }, () => ({
  content: [{ type: "text", text: "hello from Node" }],
}));
const client = new Client({ name: "node-library-client", version: "1.0.0" });
await server.connect(new WebRTCServerTransport({ signaling: b, ...local }));
await client.connect(new WebRTCClientTransport({ signaling: a, ...local }));
const { tools } = await client.listTools();
const result = await client.callTool({ name: "hello" });
console.log(JSON.stringify({ tools: tools.map((tool) => tool.name), result: result.content, FRAME_LAST }));
await client.close();
await server.close();
`;

Deno.test("The packed npm package's library type-checks as a NodeNext project and runs under Node", async () => {
  const app = await install();
  const dir = `${app}/library`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/consumer.mts`, CONSUMER);
  await Deno.writeTextFile(
    `${dir}/tsconfig.json`,
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: false,
        lib: ["ES2023", "DOM"],
        types: [],
        outDir: "out",
      },
      files: ["consumer.mts"],
    }),
  );
  const tsc = new URL("node_modules/typescript/bin/tsc", root).pathname;
  await run("node", [tsc, "-p", "."], dir);
  const [report] = await run("node", ["out/consumer.mjs"], dir, 30_000);
  assert.deepEqual(JSON.parse(report), {
    tools: ["hello"],
    result: [{ type: "text", text: "hello from Node" }],
    FRAME_LAST: 1,
  });
});
