import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/server/index"
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import {
  CallToolRequestSchema,
  ListPromptsResultSchema,
  ListToolsRequestSchema,
  McpError,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import {
  type AuditRecord,
  PolicyTransport,
  type PolicyTransportOptions,
} from "./policy_transport.ts";
import { type Clock, useClock } from "./_clock.ts";
import { DEFAULT_MAX_TRACKED_REQUESTS, TOOL_NOT_ALLOWED } from "./constants.ts";

/** A clock that moves only when told to. */
class ManualClock implements Clock {
  time = 1_700_000_000_000;
  now(): number {
    return this.time;
  }
  setTimeout(): unknown {
    throw new Error("not used");
  }
  clearTimeout(): void {}
}

/** An McpServer with the tools `a` to `e`, counting the calls each gets. */
function toolServer(calls: string[] = []): McpServer {
  const server = new McpServer({ name: "desktop", version: "1.0.0" });
  for (const name of ["a", "b", "c", "d", "e"]) {
    server.registerTool(name, { description: `Tool ${name}` }, () => {
      calls.push(name);
      return { content: [{ type: "text", text: name }] };
    });
  }
  return server;
}

async function connect(
  server: McpServer | Server,
  options: PolicyTransportOptions,
  clock?: Clock,
): Promise<{ client: Client; policy: PolicyTransport }> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const policy = new PolicyTransport(serverSide, options);
  if (clock) useClock(policy, clock);
  await server.connect(policy);
  const client = new Client({ name: "agent", version: "1.0.0" });
  await client.connect(clientSide);
  return { client, policy };
}

async function names(client: Client): Promise<string[]> {
  const all: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 20; page++) {
    const result = await client.listTools(cursor === undefined ? {} : { cursor });
    all.push(...result.tools.map((tool) => tool.name));
    cursor = result.nextCursor;
    if (cursor === undefined) return all;
  }
  throw new Error("more than 20 pages");
}

Deno.test("PolicyTransport lists only the allowed tools and refuses a call of another with an error naming the limit, which the server never sees", async () => {
  const calls: string[] = [];
  const { client } = await connect(toolServer(calls), { tools: ["b", "d"] });
  assert.deepEqual(await names(client), ["b", "d"]);
  const error = await client.callTool({ name: "c" }).then(
    () => assert.fail("the call was not refused"),
    (error) => error as McpError,
  );
  assert.ok(error instanceof McpError);
  assert.equal(error.code, TOOL_NOT_ALLOWED);
  assert.match(
    error.message,
    /Cannot call the tool "c" as this agent may use only the tools "b", "d" \(its tools limit\): use one of those, or ask the desktop's owner/,
  );
  assert.deepEqual(error.data, { limit: "tools", tool: "c" });
  await client.callTool({ name: "d" });
  assert.deepEqual(calls, ["d"]);
  await client.close();
});

Deno.test("PolicyTransport with no tools allowed refuses every call; without a limit every tool passes", async () => {
  const none = await connect(toolServer(), { tools: [] });
  assert.deepEqual(await names(none.client), []);
  await assert.rejects(none.client.callTool({ name: "a" }), /may use only no tools/);
  await none.client.close();
  const all = await connect(toolServer(), {});
  assert.deepEqual(await names(all.client), ["a", "b", "c", "d", "e"]);
  await all.client.close();
});

Deno.test("PolicyTransport lets tools/list_changed through, and the list the client fetches again stays limited", async () => {
  const server = toolServer();
  const { client } = await connect(server, { tools: ["a", "later"] });
  assert.deepEqual(await names(client), ["a"]);
  const changed = new Promise<void>((resolve) =>
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve())
  );
  server.registerTool("later", {}, () => ({ content: [] }));
  server.registerTool("hidden", {}, () => ({ content: [] }));
  await changed;
  assert.deepEqual(await names(client), ["a", "later"]);
  await assert.rejects(client.callTool({ name: "hidden" }), /tools limit/);
  await client.close();
});

Deno.test("PolicyTransport filters every page of a paginated tools/list and keeps the cursor", async () => {
  const all = ["t1", "t2", "t3", "t4", "t5", "t6", "t7"];
  const server = new Server({ name: "paged", version: "1.0.0" }, { capabilities: { tools: {} } });
  const cursors: (string | undefined)[] = [];
  server.setRequestHandler(ListToolsRequestSchema, (request) => {
    const cursor = request.params?.cursor;
    cursors.push(cursor);
    const at = cursor === undefined ? 0 : Number(cursor);
    const next = at + 3;
    return {
      tools: all.slice(at, next).map((name) => ({ name, inputSchema: { type: "object" } })),
      ...(next < all.length && { nextCursor: String(next) }),
    };
  });
  server.setRequestHandler(CallToolRequestSchema, () => ({ content: [] }));
  const { client } = await connect(server, { tools: ["t2", "t6", "t7"] });
  // Pages: [t1 t2 t3] [t4 t5 t6] [t7]: the second page holds only t6, the
  // first only t2; every cursor the server gave comes back to it.
  const first = await client.listTools();
  assert.deepEqual(first.tools.map((tool) => tool.name), ["t2"]);
  assert.equal(first.nextCursor, "3");
  assert.deepEqual(await names(client), ["t2", "t6", "t7"]);
  assert.deepEqual(cursors, [undefined, undefined, "3", "6"]);
  await client.close();
});

Deno.test("PolicyTransport audits each request once answered and each notification, with durations from its clock", async () => {
  const clock = new ManualClock();
  const records: AuditRecord[] = [];
  const server = toolServer();
  server.registerTool("slow", {}, () => {
    clock.time += 250;
    return { content: [] };
  });
  const start = clock.time;
  const { client } = await connect(server, {
    tools: ["a", "slow"],
    agent: { name: "ci", peer: "p1", session: 2 },
    onaudit: (record) => records.push(record),
  }, clock);
  await client.listTools();
  await client.callTool({ name: "slow" });
  // The server has no prompts: it answers "method not found".
  await assert.rejects(client.request({ method: "prompts/list" }, ListPromptsResultSchema));
  await assert.rejects(client.callTool({ name: "e" }));
  const who = { agent: "ci", peer: "p1", session: 2 };
  assert.deepEqual(records, [
    { ...who, kind: "request", method: "initialize", start, durationMs: 0, ok: true },
    {
      ...who,
      kind: "notification",
      method: "notifications/initialized",
      start,
      durationMs: 0,
      ok: true,
    },
    { ...who, kind: "request", method: "tools/list", start, durationMs: 0, ok: true },
    {
      ...who,
      kind: "request",
      method: "tools/call",
      tool: "slow",
      start,
      durationMs: 250,
      ok: true,
    },
    {
      ...who,
      kind: "request",
      method: "prompts/list",
      start: start + 250,
      durationMs: 0,
      ok: false,
      error: -32_601,
    },
    {
      ...who,
      kind: "request",
      method: "tools/call",
      tool: "e",
      start: start + 250,
      durationMs: 0,
      ok: false,
      error: TOOL_NOT_ALLOWED,
      refused: "tools",
    },
  ]);
  await client.close();
});

Deno.test("PolicyTransport refuses a request past maxTrackedRequests awaiting their answer, naming the limit, and takes requests again once they are answered", async () => {
  const releases: (() => void)[] = [];
  const server = toolServer();
  server.registerTool(
    "hold",
    {},
    () => new Promise((resolve) => releases.push(() => resolve({ content: [] }))),
  );
  const records: AuditRecord[] = [];
  const { client } = await connect(server, {
    maxTrackedRequests: 2,
    onaudit: (record) => records.push(record),
  });
  const held = [client.callTool({ name: "hold" }), client.callTool({ name: "hold" })];
  await assert.rejects(
    client.callTool({ name: "a" }),
    /Cannot take another request as 2 of this session await their answer, the most the desktop tracks \(maxTrackedRequests\): wait for some to finish/,
  );
  assert.equal(records.at(-1)?.refused, "maxTrackedRequests");
  for (const release of releases) release();
  await Promise.all(held);
  await client.callTool({ name: "a" });
  await client.close();
});

Deno.test("PolicyTransport records a cancelled request as such and frees its slot; a request left when the session closes is recorded unanswered", async () => {
  const server = toolServer();
  const started: (() => void)[] = [];
  server.registerTool("hold", {}, () => {
    started.shift()?.();
    return new Promise(() => {});
  });
  const records: AuditRecord[] = [];
  const { client } = await connect(server, {
    maxTrackedRequests: 1,
    onaudit: (record) => records.push(record),
  });
  const controller = new AbortController();
  const running = new Promise<void>((resolve) => started.push(resolve));
  const call = client.callTool({ name: "hold" }, undefined, { signal: controller.signal });
  await running;
  controller.abort();
  await assert.rejects(call);
  await client.callTool({ name: "a" });
  const cancelled = records.find((record) => record.unanswered === "cancelled");
  assert.equal(cancelled?.tool, "hold");
  assert.equal(cancelled?.ok, false);
  assert.ok(records.some((record) => record.method === "notifications/cancelled"));

  const left = new Promise<void>((resolve) => started.push(resolve));
  void client.callTool({ name: "hold" }).catch(() => {});
  await left;
  await client.close();
  assert.deepEqual(
    records.filter((record) => record.unanswered === "closed").map((record) => record.tool),
    ["hold"],
  );
});

Deno.test("PolicyTransport filters a tools/list answer sent after the client cancelled it, and refuses a request reusing a pending id", async () => {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const policy = new PolicyTransport(serverSide, { tools: ["b"] });
  const toServer: JSONRPCMessage[] = [];
  const toClient: JSONRPCMessage[] = [];
  policy.onmessage = (message) => toServer.push(message);
  clientSide.onmessage = (message) => toClient.push(message);
  await policy.start();
  await clientSide.start();
  await clientSide.send({ jsonrpc: "2.0", id: 1, method: "tools/list" });
  await clientSide.send({ jsonrpc: "2.0", id: 1, method: "ping" });
  await clientSide.send({
    jsonrpc: "2.0",
    method: "notifications/cancelled",
    params: { requestId: 1 },
  });
  await policy.send({
    jsonrpc: "2.0",
    id: 1,
    result: { tools: [{ name: "a" }, { name: "b" }, { name: 7 }] },
  });
  assert.deepEqual(toServer.map((message) => "method" in message && message.method), [
    "tools/list",
    "notifications/cancelled",
  ]);
  assert.equal(toClient.length, 2);
  assert.match(JSON.stringify(toClient[0]), /"code":-32600.*still awaiting its answer/);
  assert.deepEqual(toClient[1], { jsonrpc: "2.0", id: 1, result: { tools: [{ name: "b" }] } });
  await policy.close();
});

Deno.test("PolicyTransport refuses tools that are not names and a maxTrackedRequests below 1", () => {
  const [, transport] = InMemoryTransport.createLinkedPair();
  assert.throws(
    () => new PolicyTransport(transport, { tools: [1] as unknown as string[] }),
    /Cannot limit the session's tools as 'tools' must be an array of tool names/,
  );
  assert.throws(
    () => new PolicyTransport(transport, { maxTrackedRequests: 0 }),
    /'maxTrackedRequests' must be a positive integer: received 0/,
  );
  assert.equal(DEFAULT_MAX_TRACKED_REQUESTS, 1_024);
});
