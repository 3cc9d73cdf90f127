/**
 * What a web page and an agent can make the CLI bridge do, through the real
 * `connect --http` and `serve` on 127.0.0.1: a request a browser page could
 * send (cross-origin, `text/plain`, DNS rebinding, no `Accept`, another
 * method, a malformed `initialize`) is refused before anything is dialled, so
 * the desktop sees no session; `connect --http` holds a bounded number of
 * sessions; and what an agent sends that `serve` prints (a goodbye's reason)
 * reaches its stderr escaped, one line per event, as text and as JSON.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
// @ts-types="@modelcontextprotocol/sdk/inMemory"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { TicketSignaling } from "../mod.ts";
import { exposureWarning } from "../src/cli/connect.ts";
import { serveHttp } from "../src/cli/http.ts";
import { escapeControls, StatusLog } from "../src/cli/log.ts";
import {
  CliProcess,
  INITIALIZE as INITIALIZE_REQUEST,
  LOCAL_FLAGS,
  startServe,
  TEST_SERVER,
  withWorker,
} from "./_cli_helpers.ts";

/** A well-formed `initialize` request, as a body. */
const INITIALIZE = JSON.stringify(INITIALIZE_REQUEST);

/** The headers of a well-formed `initialize` POST (Host added by {@linkcode rawRequest}). */
const GOOD = {
  "Content-Type": "application/json",
  Accept: "application/json, text/event-stream",
};

/**
 * Sends one HTTP/1.1 request over a raw socket, so that any header (`Host`
 * included) is sent as given, as a browser page or a rebinding attacker would;
 * resolves with the status, the header lines and the body (read up to its
 * `Content-Length`).
 */
async function rawRequest(
  port: number,
  method: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; head: string; body: string }> {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => connection.close(), 15_000);
  try {
    const lines = [`${method} /mcp HTTP/1.1`];
    const all: Record<string, string> = { Host: `127.0.0.1:${port}`, ...headers };
    for (const [name, value] of Object.entries(all)) lines.push(`${name}: ${value}`);
    const bytes = new TextEncoder().encode(body);
    lines.push(`Content-Length: ${bytes.length}`, "Connection: close", "", "");
    await connection.write(new TextEncoder().encode(lines.join("\r\n")));
    if (bytes.length > 0) await connection.write(bytes);
    let text = "";
    const buffer = new Uint8Array(65_536);
    const decoder = new TextDecoder();
    while (true) {
      const head = text.indexOf("\r\n\r\n");
      if (head >= 0) {
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
        if (text.length - head - 4 >= length) {
          return {
            status: Number(text.slice(9, 12)),
            head: text.slice(0, head),
            body: text.slice(head + 4, head + 4 + length),
          };
        }
      }
      const n = await connection.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return { status: Number(text.slice(9, 12)), head: text, body: "" };
  } finally {
    clearTimeout(timer);
    try {
      connection.close();
    } catch {
      // Closed by the timer.
    }
  }
}

/** Every request a web page (or a careless client) could send that must open no session. */
function refusedRequests(port: number): {
  what: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  status: number;
  message: RegExp;
}[] {
  return [
    {
      what: "a cross-origin POST from a page on another site",
      method: "POST",
      headers: { ...GOOD, Origin: "http://evil.example" },
      body: INITIALIZE,
      status: 403,
      message: /Origin http:\/\/evil\.example .*--allow-origin/,
    },
    {
      what: "a cross-origin text/plain POST (no preflight)",
      method: "POST",
      headers: { "Content-Type": "text/plain", Origin: "http://evil.example" },
      body: INITIALIZE,
      status: 403,
      message: /Origin/,
    },
    {
      what: "a DNS-rebinding page: its own name in Host",
      method: "POST",
      headers: {
        ...GOOD,
        Host: `rebind.evil.example:${port}`,
        Origin: `http://rebind.evil.example:${port}`,
      },
      body: INITIALIZE,
      status: 403,
      message: /Host rebind\.evil\.example .*--allow-host/,
    },
    {
      what: "a rebinding request without Origin",
      method: "POST",
      headers: { ...GOOD, Host: `rebind.evil.example:${port}` },
      body: INITIALIZE,
      status: 403,
      message: /Host/,
    },
    {
      what: "a text/plain POST from a local page",
      method: "POST",
      headers: { "Content-Type": "text/plain", Origin: "http://localhost:5173" },
      body: INITIALIZE,
      status: 415,
      message: /Content-Type .*application\/json/,
    },
    {
      what: "a POST that does not accept an event stream",
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: INITIALIZE,
      status: 406,
      message: /Accept .*text\/event-stream/,
    },
    {
      what: "a PUT",
      method: "PUT",
      headers: GOOD,
      body: INITIALIZE,
      status: 405,
      message: /GET, POST, DELETE/,
    },
    {
      what: "a CORS preflight from a local page, as a browser sends before a JSON POST",
      method: "OPTIONS",
      headers: {
        Origin: "http://localhost:5173",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
      status: 405,
      message: /Cannot accept a OPTIONS request: the MCP endpoint takes GET, POST, DELETE/,
    },
    {
      what: "a CORS preflight from a page on another site",
      method: "OPTIONS",
      headers: {
        Origin: "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
      },
      status: 403,
      message: /Origin/,
    },
    {
      what: "an initialize without its params",
      method: "POST",
      headers: GOOD,
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize" }),
      status: 400,
      message: /well-formed initialize/,
    },
    {
      what: "an initialize in a batch",
      method: "POST",
      headers: GOOD,
      body: `[${INITIALIZE}]`,
      status: 400,
      message: /well-formed initialize/,
    },
    {
      what: "an initialize notification (no id)",
      method: "POST",
      headers: GOOD,
      body: JSON.stringify({ ...JSON.parse(INITIALIZE), id: undefined }),
      status: 400,
      message: /well-formed initialize/,
    },
  ];
}

/**
 * Starts `serve` (the test server) and `connect --http` on 127.0.0.1 with
 * `flags`, runs `fn`, and adds both processes' stderr to its error, if any.
 */
async function withBridge(
  signal: string,
  flags: string[],
  fn: (bridge: { serve: CliProcess; http: CliProcess; url: URL }) => Promise<void>,
): Promise<void> {
  const { serve, ticket } = await startServe(signal, ["--", ...TEST_SERVER]);
  const http = CliProcess.cli([
    "connect",
    "--http",
    "127.0.0.1:0",
    ...flags,
    ...LOCAL_FLAGS,
    ticket,
  ]);
  try {
    await fn({ serve, http, url: new URL(await http.line(0)) });
  } catch (error) {
    (error as Error).message += `\nconnect:\n${http.stderr}\nserve:\n${serve.stderr}`;
    throw error;
  }
}

Deno.test(
  "connect --http refuses what a web page can send (foreign Origin, rebinding Host, text/plain, no event stream, another method, a malformed initialize) before it dials: the desktop opens no session for it",
  withWorker((signal) =>
    withBridge(signal, [], async ({ serve, url }) => {
      const port = Number(url.port);
      for (const request of refusedRequests(port)) {
        const response = await rawRequest(port, request.method, request.headers, request.body);
        assert.equal(response.status, request.status, `${request.what}: ${response.body}`);
        // No CORS header: a browser lets no page on another origin read or send past it.
        assert.doesNotMatch(response.head, /^access-control-/im, request.what);
        assert.match(JSON.parse(response.body).error.message, request.message, request.what);
      }
      // A real client, then, is the desktop's first and only session.
      const client = new Client({ name: "real", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(url));
      const result = await client.callTool({ name: "pid", arguments: {} }) as CallToolResult;
      assert.match((result.content[0] as { text: string }).text, /^\d+$/);
      await serve.stderrMatch(/Agent 1 opened session 1\b/);
      assert.equal(serve.stderr.match(/opened session/g)?.length, 1, serve.stderr);
      await client.close();
    })
  ),
);

Deno.test(
  "connect --http --allow-origin admits that origin; a localhost origin is admitted by default",
  withWorker((signal) =>
    withBridge(signal, ["--allow-origin", "https://app.example"], async ({ url }) => {
      for (const origin of ["https://app.example", "http://localhost:5173"]) {
        const client = new Client({ name: origin, version: "1" });
        await client.connect(
          new StreamableHTTPClientTransport(url, { requestInit: { headers: { Origin: origin } } }),
        );
        await client.callTool({ name: "pid", arguments: {} });
        await client.close();
      }
      const refused = await rawRequest(Number(url.port), "POST", {
        ...GOOD,
        Origin: "https://app.example.evil",
      }, INITIALIZE);
      assert.equal(refused.status, 403);
    })
  ),
);

Deno.test(
  "connect --http --sessions 2 refuses a third session with 503 and says what to do; a deleted session frees its place",
  withWorker((signal) =>
    withBridge(signal, ["--sessions", "2"], async ({ serve, http, url }) => {
      const open = [
        new Client({ name: "one", version: "1" }),
        new Client({ name: "two", version: "1" }),
      ];
      for (const client of open) await client.connect(new StreamableHTTPClientTransport(url));
      const third = await rawRequest(Number(url.port), "POST", GOOD, INITIALIZE);
      assert.equal(third.status, 503, third.body);
      assert.match(
        JSON.parse(third.body).error.message,
        /Cannot open another session as this bridge holds 2, the most --sessions allows: close one \(DELETE\) or wait for --session-idle/,
      );
      assert.equal(serve.stderr.match(/opened session/g)?.length, 2, serve.stderr);
      for (const client of open) await client.callTool({ name: "pid", arguments: {} });
      await (open[0].transport as StreamableHTTPClientTransport).terminateSession();
      await open[0].close();
      await serve.stderrMatch(/Agent 1 session 1 ended: the agent closed it/);
      await http.stderrMatch(/Session 1 ended/);
      const fourth = new Client({ name: "four", version: "1" });
      await fourth.connect(new StreamableHTTPClientTransport(url));
      await fourth.callTool({ name: "pid", arguments: {} });
      await serve.stderrMatch(/Agent 1 opened session 3\b/);
    })
  ),
);

/** A server for {@linkcode serveHttp}'s `dial`, in memory. */
function memoryDial(counter: { dials: number }) {
  return () => {
    counter.dials++;
    const [client, server] = InMemoryTransport.createLinkedPair();
    const mcp = new McpServer({ name: "memory", version: "1" });
    void mcp.connect(server);
    return client;
  };
}

Deno.test("serveHttp() dials for no refused request, and for a well-formed initialize once", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({ hostname: "127.0.0.1", port: 0, dial: memoryDial(counter) });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    for (const request of refusedRequests(port)) {
      const response = await rawRequest(port, request.method, request.headers, request.body);
      assert.equal(response.status, request.status, `${request.what}: ${response.body}`);
    }
    assert.equal(counter.dials, 0);
    assert.equal(endpoint.sessions, 0);
    const client = new Client({ name: "real", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(endpoint.url)));
    assert.equal(counter.dials, 1);
    await client.close();
  } finally {
    await endpoint.close();
  }
});

Deno.test("serveHttp() takes a Host named in allowedHosts, and any IP address or localhost", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    dial: memoryDial(counter),
    allowedHosts: ["mcp.internal"],
  });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    for (const host of [`mcp.internal:${port}`, `localhost:${port}`, `[::1]:${port}`, "10.1.2.3"]) {
      const response = await rawRequest(port, "POST", { ...GOOD, Host: host }, INITIALIZE);
      assert.equal(response.status, 200, `${host}: ${response.body}`);
    }
    const refused = await rawRequest(port, "POST", { ...GOOD, Host: "other.internal" }, INITIALIZE);
    assert.equal(refused.status, 403);
    assert.equal(counter.dials, 4);
  } finally {
    await endpoint.close();
  }
});

Deno.test("serveHttp() answers a Host with a malformed port (or two Hosts) with a JSON-RPC 400, before it dials", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({ hostname: "127.0.0.1", port: 0, dial: memoryDial(counter) });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    const hosts = [
      "127.0.0.1:99999",
      "localhost:x",
      "[::1]:-1",
      "[::1",
      "localhost:",
      `localhost:${port}, evil.example:${port}`,
    ];
    for (const host of hosts) {
      for (const method of ["POST", "GET"]) {
        const headers = method === "POST" ? GOOD : { Accept: "text/event-stream" };
        const response = await rawRequest(port, method, { ...headers, Host: host }, INITIALIZE);
        assert.equal(response.status, 400, `${method} ${host}: ${response.body}`);
        const error = JSON.parse(response.body).error;
        assert.equal(error.code, -32000, host);
        assert.match(error.message, /Cannot accept the request as its Host .* is not a host name/);
      }
    }
    assert.equal(counter.dials, 0);
  } finally {
    await endpoint.close();
  }
});

Deno.test("serveHttp() answers a request that fails inside the bridge with a JSON-RPC -32603 and reports the error once", async () => {
  const errors: Error[] = [];
  const endpoint = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    dial: () => {
      throw new Error("no transport today");
    },
    onerror: (error) => void errors.push(error),
  });
  try {
    await endpoint.listening;
    const response = await rawRequest(Number(new URL(endpoint.url).port), "POST", GOOD, INITIALIZE);
    assert.equal(response.status, 500, response.body);
    const error = JSON.parse(response.body).error;
    assert.equal(error.code, -32603);
    assert.match(error.message, /^Internal error: .*no transport today/);
    assert.deepEqual(errors.map((error) => error.message), ["no transport today"]);
    assert.equal(endpoint.sessions, 0);
  } finally {
    await endpoint.close();
  }
});

Deno.test("serveHttp() closes a session whose client reads none of its answers once they would exceed maxQueuedBytes, naming it; another session goes on", async () => {
  const answer = 1024 * 1024;
  const limit = 8 * 1024 * 1024;
  const errors: string[] = [];
  const ended: string[] = [];
  const endpoint = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    dial: () => {
      const [client, server] = InMemoryTransport.createLinkedPair();
      const mcp = new McpServer({ name: "big", version: "1" });
      mcp.registerTool("big", { description: "answers 1 MiB" }, () => ({
        content: [{ type: "text", text: "x".repeat(answer) }],
      }));
      void mcp.connect(server);
      return client;
    },
    bridge: () => ({
      maxQueuedBytes: limit,
      onerror: (side, error) => void errors.push(`${side}: ${error.message}`),
      onclose: (first, cause) => void ended.push(`${first}: ${cause?.message}`),
    }),
  });
  const reader = new Client({ name: "reader", version: "1" });
  const socket = { conn: undefined as Deno.Conn | undefined };
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    await reader.connect(new StreamableHTTPClientTransport(new URL(endpoint.url)));
    const opened = await rawRequest(port, "POST", GOOD, INITIALIZE);
    const sessionId = /^mcp-session-id: *(\S+)/im.exec(opened.head)![1];
    const session = { ...GOOD, "Mcp-Session-Id": sessionId, "Mcp-Protocol-Version": "2025-06-18" };
    const initialized = await rawRequest(
      port,
      "POST",
      session,
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    );
    assert.equal(initialized.status, 202, initialized.body);
    assert.equal(endpoint.sessions, 2);
    // One POST of 100 calls, 100 MiB of answers, on a socket that is never read.
    const calls = Array.from({ length: 100 }, (_, i) => ({
      jsonrpc: "2.0",
      id: i + 1,
      method: "tools/call",
      params: { name: "big", arguments: {} },
    }));
    const body = new TextEncoder().encode(JSON.stringify(calls));
    const head = [
      "POST /mcp HTTP/1.1",
      `Host: 127.0.0.1:${port}`,
      ...Object.entries(session).map(([name, value]) => `${name}: ${value}`),
      `Content-Length: ${body.length}`,
      "",
      "",
    ].join("\r\n");
    socket.conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await socket.conn.write(new TextEncoder().encode(head));
    await socket.conn.write(body);
    const deadline = Date.now() + 20_000;
    while (endpoint.sessions > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(endpoint.sessions, 1, `the session that reads nothing is still open: ${errors}`);
    const named =
      /Cannot hold more for the HTTP client as what its event streams hold unread would exceed 'maxQueuedBytes' \(8388608 bytes/;
    assert.ok(
      errors.some((error) => error.startsWith("a: ") && named.test(error)),
      errors.join("\n"),
    );
    assert.ok(ended.some((end) => end.startsWith("a: ") && named.test(end)), ended.join("\n"));
    // The other session's client reads its answers: it goes on.
    const result = await reader.callTool({ name: "big", arguments: {} }) as CallToolResult;
    assert.equal((result.content[0] as { text: string }).text.length, answer);
  } finally {
    socket.conn?.close();
    await reader.close();
    await endpoint.close();
  }
});

/**
 * Sends a request's head and the first `sent` bytes of a body of `length`,
 * then nothing; resolves with the server's answer (status, head and body),
 * or what came of it within `ms`.
 */
async function stalledBody(
  port: number,
  headers: Record<string, string>,
  length: number,
  sent: number,
  ms = 15_000,
): Promise<{ status: number; text: string }> {
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => connection.close(), ms);
  let text = "";
  try {
    const head = [
      "POST /mcp HTTP/1.1",
      ...Object.entries({ Host: `127.0.0.1:${port}`, ...headers }).map(([name, value]) =>
        `${name}: ${value}`
      ),
      `Content-Length: ${length}`,
      "",
      "",
    ].join("\r\n");
    await connection.write(new TextEncoder().encode(head));
    await connection.write(new Uint8Array(sent).fill(0x20));
    const buffer = new Uint8Array(65_536);
    const decoder = new TextDecoder();
    while (true) {
      const end = text.indexOf("\r\n\r\n");
      const declared = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (end >= 0 && declared && text.length - end - 4 >= Number(declared[1])) break;
      const n = await connection.read(buffer).catch(() => null);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(timer);
    try {
      connection.close();
    } catch {
      // Closed by the timer.
    }
  }
  return { status: Number(text.slice(9, 12)), text };
}

Deno.test("serveHttp() answers a request whose body stalls with 408 naming HTTP_BODY_TIMEOUT, with or without a session", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    dial: memoryDial(counter),
    bodyTimeout: 300,
  });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    const opened = await rawRequest(port, "POST", GOOD, INITIALIZE);
    const sessionId = /^mcp-session-id: *(\S+)/im.exec(opened.head)![1];
    for (const headers of [GOOD, { ...GOOD, "Mcp-Session-Id": sessionId }]) {
      const started = Date.now();
      const answer = await stalledBody(port, headers, 1000, 10);
      assert.equal(answer.status, 408, answer.text);
      assert.match(answer.text, /did not arrive within HTTP_BODY_TIMEOUT \(300 ms\)/);
      assert.match(answer.text, /^connection: close\r$/im);
      assert.ok(Date.now() - started < 10_000);
    }
    assert.equal(counter.dials, 1);
  } finally {
    await endpoint.close();
  }
});

Deno.test("serveHttp() refuses a body that would take the bodies read at once past maxBodyBytes with 503 and Retry-After, naming MAX_HTTP_BODY_BYTES; the budget is free again once they end", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    dial: memoryDial(counter),
    bodyTimeout: 1_000,
    maxBodyBytes: 1_000_000,
  });
  const client = new Client({ name: "real", version: "1" });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    await client.connect(new StreamableHTTPClientTransport(new URL(endpoint.url)));
    const session = {
      ...GOOD,
      "Mcp-Session-Id": (client.transport as StreamableHTTPClientTransport).sessionId!,
    };
    // 1.7 MB of bodies that stall: whichever comes last past 1 MB is refused, the others time out.
    const answers = await Promise.all([
      stalledBody(port, session, 500_000, 400_000),
      stalledBody(port, session, 500_000, 400_000),
      stalledBody(port, GOOD, 950_000, 900_000),
    ]);
    const refused = answers.filter((answer) => answer.status === 503);
    assert.ok(refused.length >= 1, answers.map((answer) => answer.text.slice(0, 200)).join("\n"));
    for (const answer of refused) {
      assert.match(answer.text, /^retry-after: \d+\r$/im);
      assert.match(answer.text, /would exceed MAX_HTTP_BODY_BYTES \(1000000 bytes/);
    }
    for (const answer of answers) assert.ok([408, 503].includes(answer.status), answer.text);
    // Nothing of them is held any more: a request is read and answered.
    await client.ping();
    assert.equal(counter.dials, 1);
  } finally {
    await client.close();
    await endpoint.close();
  }
});

Deno.test("serveHttp() refuses an initialize body over its limit with 413 before it dials", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({ hostname: "127.0.0.1", port: 0, dial: memoryDial(counter) });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    const big = JSON.parse(INITIALIZE);
    big.params.clientInfo.title = "x".repeat(2 * 1024 * 1024);
    const response = await rawRequest(port, "POST", GOOD, JSON.stringify(big));
    assert.equal(response.status, 413, response.body);
    assert.match(JSON.parse(response.body).error.message, /MAX_HTTP_INITIALIZE_SIZE/);
    assert.equal(counter.dials, 0);
  } finally {
    await endpoint.close();
  }
});

Deno.test("serveHttp() answers an initialize whose body breaks off with 400 saying so, not 413, and dials nothing", async () => {
  const counter = { dials: 0 };
  const endpoint = serveHttp({ hostname: "127.0.0.1", port: 0, dial: memoryDial(counter) });
  try {
    await endpoint.listening;
    const port = Number(new URL(endpoint.url).port);
    const connection = await Deno.connect({ hostname: "127.0.0.1", port });
    const timer = setTimeout(() => connection.close(), 15_000);
    try {
      // 10 bytes of the 100 the request announces, then the client stops sending.
      const head = [
        "POST /mcp HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        ...Object.entries(GOOD).map(([name, value]) => `${name}: ${value}`),
        "Content-Length: 100",
        "",
        "",
      ].join("\r\n");
      await connection.write(new TextEncoder().encode(`${head}{"jsonrpc"`));
      await connection.closeWrite();
      let text = "";
      const buffer = new Uint8Array(65_536);
      const decoder = new TextDecoder();
      while (!/\r\n\r\n[\s\S]*\}/.test(text)) {
        const n = await connection.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
      assert.equal(Number(text.slice(9, 12)), 400, text);
      assert.match(text, /could not be read .*send the request again/);
      assert.doesNotMatch(text, /larger than/);
    } finally {
      clearTimeout(timer);
      try {
        connection.close();
      } catch {
        // Closed by the timer.
      }
    }
    assert.equal(counter.dials, 0);
  } finally {
    await endpoint.close();
  }
});

/** A goodbye reason that tries every trick on a terminal. */
const HOSTILE = "\x1b[2K\r\x1b[1Amcp-webrtc: Agent 7 connected via host\n" +
  "mcp-webrtc: error: forged\r\n\x1b]52;c;ZXZpbA==\x07\u009b2K\u202eexe.txt\x00";

/** Whether a text holds a control character other than the newline that ends a line. */
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Joins as the ticket's agent, says goodbye with {@linkcode HOSTILE}, and leaves once `serve` printed it. */
async function sayHostileGoodbye(ticket: string, serve: CliProcess): Promise<void> {
  const signaling = new TicketSignaling(ticket);
  await signaling.start();
  try {
    await signaling.send({ type: "bye", reason: HOSTILE });
    await serve.stderrMatch(/Agent 7 connected/);
  } finally {
    await signaling.close();
  }
}

Deno.test(
  "serve prints what an agent sends (a goodbye's reason) escaped, one line per event, as text and as JSON",
  withWorker(async (signal) => {
    const text = await startServe(signal, ["--", ...TEST_SERVER]);
    const json = await startServe(signal, ["--log-json", "--", ...TEST_SERVER]);
    try {
      await sayHostileGoodbye(text.ticket, text.serve);
      await sayHostileGoodbye(json.ticket, json.serve);
      const shown = String.raw`\x1b[2K\r\x1b[1Amcp-webrtc: Agent 7 connected via host\n` +
        String.raw`mcp-webrtc: error: forged\r\n\x1b]52;c;ZXZpbA==\x07\x9b2K\u202eexe.txt\x00`;
      // As text: the whole reason on the line of its event, escaped; no forged line.
      assert.doesNotMatch(text.serve.stderr, CONTROLS);
      assert.doesNotMatch(text.serve.stderr, /^mcp-webrtc: (Agent 7|error: forged)/m);
      assert.match(
        text.serve.stderr,
        /^mcp-webrtc: Agent 1 left: Cannot connect as the other peer gave up: /m,
      );
      assert.ok(text.serve.stderr.includes(`gave up: ${shown}\n`));
      // As JSON: every line an object, every string in it escaped the same way.
      assert.doesNotMatch(json.serve.stderr, CONTROLS);
      const events = json.serve.stderr.trimEnd().split("\n").map((line) => JSON.parse(line));
      const left = events.find((event) => event.event === "agent-left");
      assert.equal(left?.reason, `Cannot connect as the other peer gave up: ${shown}`);
      for (const event of events) {
        for (const value of Object.values(event)) {
          if (typeof value === "string") assert.doesNotMatch(value, CONTROLS);
        }
      }
    } catch (error) {
      (error as Error).message +=
        `\ntext serve:\n${text.serve.stderr}\njson serve:\n${json.serve.stderr}`;
      throw error;
    }
  }),
);

Deno.test("StatusLog shows control characters escaped in the message and every field, as text and JSON", () => {
  const lines: string[] = [];
  const fields = { reason: "a\nb", nested: { list: ["\x1b[31m"] } };
  new StatusLog({ write: (line) => lines.push(line) }).warn("e\x1b", "x\r\ny\u009b", fields);
  new StatusLog({ json: true, write: (line) => lines.push(line) }).info("e", "x\ny", fields);
  assert.equal(lines[0], String.raw`mcp-webrtc: warn: x\r\ny\x9b`);
  const event = JSON.parse(lines[1]);
  assert.equal(event.message, String.raw`x\ny`);
  assert.equal(event.reason, String.raw`a\nb`);
  assert.deepEqual(event.nested, { list: [String.raw`\x1b[31m`] });
  assert.equal(escapeControls("plain text, tabs\tand é ✓"), String.raw`plain text, tabs\tand é ✓`);
});

/** A quantity as the README writes it ("128 MiB", "10 s", "`1048576`", "64"), in bytes or ms. */
function quantity(text: string): number | undefined {
  const match = /^\s*`?(\d+(?:\.\d+)?)`?\s*(GiB|MiB|KiB|B|ms|s)?(?![\w])/.exec(text);
  if (!match) return undefined;
  const unit = {
    GiB: 2 ** 30,
    MiB: 2 ** 20,
    KiB: 2 ** 10,
    B: 1,
    ms: 1,
    s: 1_000,
  }[match[2] ?? "B"]!;
  return Number(match[1]) * unit;
}

/**
 * The value a README table cell gives for the constant `name`: the quantity
 * in parentheses after it ("`MAX_HTTP_INITIALIZE_SIZE` (1 MiB)"), after a
 * comma ("(`DEFAULT_MAX_HTTP_SESSIONS`, 64)"), or at the start of the part
 * (between semicolons) it closes ("2 s for … (`INCOMING_CHANNEL_OPEN_TIMEOUT`)").
 */
function documentedValue(cell: string, name: string): number | undefined {
  const at = cell.indexOf(`\`${name}\``);
  const after = cell.slice(at + name.length + 2);
  const paren = /^\s*\(([^)]*)\)/.exec(after);
  if (paren && quantity(paren[1]) !== undefined) return quantity(paren[1]);
  const comma = /^,\s*(\d+)\)/.exec(after);
  if (comma) return Number(comma[1]);
  if (cell.slice(0, at).endsWith("(")) {
    return quantity(cell.slice(0, at).split(";").at(-1)!);
  }
  return undefined;
}

/** The README and the pages it links to, whose tables may name limits. */
async function documentationPages(): Promise<string[]> {
  const pages = ["README.md", "bench/README.md"];
  for await (const entry of Deno.readDir(new URL("../docs/", import.meta.url))) {
    if (entry.isFile && entry.name.endsWith(".md")) pages.push(`docs/${entry.name}`);
  }
  return pages.sort();
}

Deno.test("Every limit the README's and docs' tables name by its constant states the constant's value, and every row of the Limits tables names one", async () => {
  const constants = await import("../src/constants.ts") as Record<string, unknown>;
  let checked = 0;
  let limitsRows = 0;
  const wrong: string[] = [];
  for (const page of await documentationPages()) {
    const text = await Deno.readTextFile(new URL(`../${page}`, import.meta.url));
    let section = "";
    for (const line of text.split("\n")) {
      if (line.startsWith("#")) section = line;
      if (!line.startsWith("|") || /^\|\s*-/.test(line)) continue;
      const cells = line.split("|").slice(1, -1).map((cell) => cell.trim());
      const first = /^`([A-Z][A-Z0-9_]+)`$/.exec(cells[0])?.[1];
      // A row of the first table: the constant, then its value; other names in it are references.
      const named = first
        ? [first]
        : [...line.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((match) => match[1]);
      const limitsRow = /^#{1,3} Limits$/.test(section) && cells[0] !== "Limit";
      if (limitsRow) limitsRows++;
      let valued = 0;
      for (const name of new Set(named.filter((name) => typeof constants[name] === "number"))) {
        const value = first ? quantity(cells[1]) : cells
          .filter((cell) => cell.includes(`\`${name}\``))
          .map((cell) => documentedValue(cell, name))
          .find((found) => found !== undefined);
        if (value === undefined) continue;
        valued++;
        if (value !== constants[name]) {
          wrong.push(`${page}: ${name} is ${constants[name]}, documented ${value}`);
        }
      }
      if (limitsRow && valued === 0) wrong.push(`${page}: gives no constant's value: ${cells[0]}`);
      checked += valued;
    }
  }
  assert.deepEqual(wrong, []);
  // Both Limits tables (docs/LIMITS.md) and connect --http's checks (docs/CLI.md): well over a dozen values.
  assert.ok(limitsRows >= 13, `only ${limitsRows} rows of Limits tables found`);
  assert.ok(checked >= 12, `only ${checked} values checked`);
});

Deno.test("serveHttp() refuses a maxSessions below 1 and an allowed origin that is not one", () => {
  assert.throws(
    () =>
      serveHttp({
        hostname: "127.0.0.1",
        port: 0,
        dial: () => InMemoryTransport.createLinkedPair()[0],
        maxSessions: 0,
      }),
    /maxSessions/,
  );
  assert.throws(
    () =>
      serveHttp({
        hostname: "127.0.0.1",
        port: 0,
        dial: () => InMemoryTransport.createLinkedPair()[0],
        allowedOrigins: ["*"],
      }),
    /not an origin/,
  );
});

Deno.test("connect --http warns when it listens on an address other than loopback, and only then", () => {
  for (const hostname of ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"]) {
    assert.equal(exposureWarning(hostname), undefined, hostname);
  }
  for (const hostname of ["0.0.0.0", "::", "192.168.1.20", "fe80::1", "my-laptop.lan"]) {
    assert.match(
      exposureWarning(hostname) ?? "",
      /is not a loopback address: any host that can reach this machine there can open sessions/,
      hostname,
    );
  }
});
