/**
 * The module under Node (≥ 20): an agent bundled for Node dials a desktop
 * served by Deno through the local signalling worker, with a ticket. Node 20
 * has no global WebSocket and no RTCPeerConnection: this shows the `ws`
 * client and node-datachannel's polyfill are picked up there.
 */
import assert from "node:assert/strict";
import { WebRTCServerTransport } from "../mod.ts";
import { TcpSocketSignaling } from "../src/signaling/tcp_socket_signaling.ts";
import { createTestServer, LOCAL, withDesktop } from "./_helpers.ts";
import { bundle } from "../scripts/bundle.ts";

const root = new URL("..", import.meta.url);

/** Bundles the Node agent to one ES module, npm packages left for Node to resolve. */
async function bundleAgent(entry = "tests/node/agent.ts"): Promise<string> {
  const out = await Deno.makeTempFile({
    dir: root.pathname,
    prefix: ".node-agent-",
    suffix: ".mjs",
  });
  const external = [
    "@modelcontextprotocol/*",
    "node-datachannel",
    "node-datachannel/*",
    "ws",
    "zod",
  ];
  await Deno.writeTextFile(
    out,
    await bundle(new URL(entry, root), { what: entry, platform: "node", external }),
  );
  return out;
}

Deno.test("An agent running on Node reaches a Deno desktop through the worker", async () => {
  const node = await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output()
    .catch(() => undefined);
  assert.ok(node?.success, "Node.js (node) must be installed to run this test");
  const bundle = await bundleAgent();
  try {
    await withDesktop({}, async ({ ticket }) => {
      const child = new Deno.Command("node", {
        // From the repository root, so Node resolves the npm packages in node_modules.
        args: [bundle, ticket],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const output = await child.output();
      clearTimeout(timer);
      const stdout = new TextDecoder().decode(output.stdout).trim();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `node exited ${output.code}: ${stdout}\n${stderr}`);
      const report = JSON.parse(stdout.split("\n").at(-1)!);
      assert.match(report.node, /^\d+\./);
      assert.deepEqual(report.tools.sort(), ["blob", "greet"]);
      assert.equal(report.greeting, "Hello, Node!");
      assert.equal(report.path, "host");
    });
  } finally {
    await Deno.remove(bundle).catch(() => {});
  }
});

Deno.test("An agent on Node reaches a Deno server over TcpSocketSignaling, the server offering", async () => {
  const bundle = await bundleAgent("tests/node/tcp_agent.ts");
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  const signaling = new TcpSocketSignaling("127.0.0.1", port);
  const listening = new Promise<void>((resolve) => (signaling.onlisten = resolve));
  const server = createTestServer();
  try {
    await server.connect(new WebRTCServerTransport({ signaling, initiator: true, ...LOCAL }));
    await listening;
    const child = new Deno.Command("node", {
      args: [bundle, String(port)],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const output = await child.output();
    clearTimeout(timer);
    const stdout = new TextDecoder().decode(output.stdout).trim();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `node exited ${output.code}: ${stdout}\n${stderr}`);
    const report = JSON.parse(stdout.split("\n").at(-1)!);
    assert.match(report.node, /^\d+\./);
    assert.equal(report.greeting, "Hello, Node!");
  } finally {
    await server.close();
    await Deno.remove(bundle).catch(() => {});
  }
});
