/**
 * The npm package under Node, as a user gets it: `deno task npm`'s package
 * packed with `npm pack`, installed from the tarball into an empty folder with
 * plain `npm` (node-datachannel and `ws` come from the registry), then its
 * `serve` and `connect` run by Node against the local worker: in a network
 * namespace of the test's own that holds only `lo` (so nothing they need is
 * fetched at run time), driven by the SDK's client, and on 127.0.0.1 by the
 * MCP Inspector's CLI, `connect` launched with the `npx -y mcp-webrtc …` line
 * of the README; its library entries (`./a2a` too), type-checked by
 * TypeScript as a Node project would (`NodeNext`, without skipping the
 * package's `.d.ts`) and run by Node; its README's links; and its `signal`,
 * which needs Deno and says so.
 *
 * The namespace test needs root and `ip`, as the lab tests do (see `tests/_lab.ts`).
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { ChildProcessTransport } from "../src/cli/stdio.ts";
import { ip, labTest, prepareLab, stopProcess } from "./_lab.ts";
import { buildNpmPackage, NPM_NAME } from "../scripts/npm.ts";
import { A2A_SIGNALING_EXTENSION_URI } from "../src/a2a/mod.ts";
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
/** How long the local worker may take to print its URL (it bundles the worker first). */
const WORKER_START_TIMEOUT_MS = 60_000;
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
    // And the A2A SDK: what an A2A agent or client has already (the optional peer of `./a2a`).
    const a2a = config.imports["@a2a-js/sdk"].replace(/^npm:/, "");
    // And Node's types, which the A2A SDK's own declarations need (its Buffer).
    const nodeTypes = config.imports["@types/node"].replace(/^npm:/, "");
    await run(
      "npm",
      ["install", "--no-audit", "--no-fund", `${scratch}/${tarball}`, sdk, a2a, nodeTypes],
      app,
    );
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

const lab = await prepareLab({
  name: "the npm package in a network namespace",
  commands: { ip: "iproute2" },
  root: true,
});

/**
 * Runs `fn` with a fresh network namespace that holds only `lo`, up; `exec`
 * prefixes a command line to run it inside. Ends whatever still runs there,
 * then removes the namespace.
 */
async function inNamespace(fn: (exec: string[]) => Promise<void>): Promise<void> {
  const ns = `mcpw-npm-${Deno.pid}`;
  await ip("netns", "add", ns);
  try {
    await ip("-n", ns, "link", "set", "lo", "up");
    await fn(["ip", "netns", "exec", ns]);
  } finally {
    const { stdout } = await new Deno.Command("ip", { args: ["netns", "pids", ns] }).output();
    for (const pid of new TextDecoder().decode(stdout).split("\n").filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    await ip("netns", "delete", ns);
  }
}

labTest(
  lab,
  "The packed npm package's serve and connect run under Node in a namespace with only lo, against the local worker there: an SDK client lists and calls tools",
  async () => {
    assert.ok((await nodeMajor()) >= 20, "Node ≥ 20 must be installed to run this test");
    const app = await install();
    await inNamespace(async ([exec, ...prefix]) => {
      // The local worker, inside the namespace (its loopback is the namespace's own).
      const worker = new Deno.Command(exec, {
        args: [
          ...prefix,
          Deno.execPath(),
          "run",
          "-A",
          new URL("worker/local.ts", root).pathname,
          "--port",
          "0",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      try {
        const lines = worker.stdout.pipeThrough(new TextDecoderStream()).getReader();
        const timer = setTimeout(() => worker.kill("SIGKILL"), WORKER_START_TIMEOUT_MS);
        const first = await lines.read();
        clearTimeout(timer);
        void (async () => {
          while (!(await lines.read()).done) { /* drain */ }
        })().catch(() => {});
        const url = first.value?.split("\n")[0].trim() ?? "";
        assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/, "the local worker printed no URL");
        // npm is told not to look for its own updates: there is no network to look on.
        const env = { npm_config_update_notifier: "false" };
        const serve = new CliProcess(
          exec,
          [
            ...prefix,
            `${app}/node_modules/.bin/${NPM_NAME}`,
            "serve",
            "--signal",
            url,
            ...LOCAL_FLAGS,
            "--",
            ...TEST_SERVER,
          ],
          { cwd: app, env },
        );
        const ticket = await serve.line(0, 30_000);
        const stderr: string[] = [];
        const transport = new ChildProcessTransport(exec, {
          args: [...prefix, "npx", "-y", NPM_NAME, "connect", ...LOCAL_FLAGS, ticket],
          cwd: app,
          env,
          onstderr: (line) => stderr.push(line),
        });
        const client = new Client({ name: "npm-test-agent", version: "1.0.0" });
        await client.connect(transport, { timeout: 30_000 }).catch((error) => {
          throw new Error(
            `${error.message}\nconnect:\n${stderr.join("\n")}\nserve:\n${serve.stderr}`,
          );
        });
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((tool) => tool.name).sort(), [
          "cancelled",
          "exit",
          "pid",
          "sleep",
          "wait",
        ]);
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
        await stopProcess(worker);
      }
    });
  },
);

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
      "sleep",
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
import {
  A2ASignalingRouter,
  a2aMcpOffer,
  a2aSignalingExtension,
  sendMessageOfferingMcp,
} from "${NPM_NAME}/a2a";

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
const extension = a2aSignalingExtension();
const offer = a2aMcpOffer({ metadata: { [extension.uri]: { ...extension.params, sealed: false } } });
const a2a = {
  uri: extension.uri,
  offer,
  router: typeof A2ASignalingRouter,
  send: typeof sendMessageOfferingMcp,
};
console.log(JSON.stringify({ tools: tools.map((tool) => tool.name), result: result.content, FRAME_LAST, a2a }));
await client.close();
await server.close();
`;

Deno.test("The packed npm package's library, ./a2a too, type-checks as a NodeNext project and runs under Node", async () => {
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
        types: ["node"],
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
    a2a: {
      uri: A2A_SIGNALING_EXTENSION_URI,
      offer: { version: 2, sealed: false },
      router: "function",
      send: "function",
    },
  });
});

/** The relative links of a Markdown text: their targets without the fragment. */
function relativeLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith("#"))
    .map((target) => target.replace(/#.*$/, ""));
}

Deno.test("Every relative link of the packed npm package's README, and of the pages it links to, names a file in the package", async () => {
  const app = await install();
  const packageDir = `${app}/node_modules/${NPM_NAME}`;
  const pages = ["README.md"];
  const seen = new Set(pages);
  const broken: string[] = [];
  for (let i = 0; i < pages.length && i < 100; i++) {
    const page = pages[i]!;
    const markdown = await Deno.readTextFile(`${packageDir}/${page}`);
    for (const target of relativeLinks(markdown)) {
      const path = new URL(target, `file:///${page}`).pathname.slice(1);
      const exists = await Deno.stat(`${packageDir}/${path}`).then(
        (info) => info.isFile,
        () => false,
      );
      if (!exists) broken.push(`${page} → ${target}`);
      else if (path.endsWith(".md") && !seen.has(path)) {
        seen.add(path);
        pages.push(path);
      }
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(seen.has("docs/API.md") && seen.has("docs/CLI.md"), [...seen].join(", "));
});

Deno.test("The packed npm package's signal says it needs Deno and a checkout, and which command to run, instead of failing obscurely", async () => {
  const app = await install();
  const signal = new CliProcess(`${app}/node_modules/.bin/${NPM_NAME}`, ["signal", "--port", "0"], {
    cwd: app,
  });
  const status = await signal.exit(15_000);
  assert.equal(status.code, 1, signal.stderr);
  assert.deepEqual(signal.stdoutLines, []);
  assert.match(signal.stderr, /Deno/);
  assert.match(signal.stderr, /https:\/\/deno\.com/);
  assert.match(signal.stderr, /deno task signal/);
  assert.doesNotMatch(signal.stderr, /^\s+at /m, "a stack trace instead of a sentence");
});
