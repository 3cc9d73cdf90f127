/**
 * This module's side of a pairing with the Python reference, run inside the
 * test's network namespace: `client` lists the reference server's tools and
 * calls `greet`; `client-large` calls `large`, sends a request too large for
 * the reference, and calls `greet`; `server` serves the test tools as the
 * offerer until its client leaves; `answering-server` does the same as the
 * answerer. Prints one JSON report line on stdout when done.
 *
 * Usage: deno run -A tests/reference/_ours.ts client|client-large|server|answering-server
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  type Signaling,
  type SignalingMessage,
  WebRTCClientTransport,
  WebRTCServerTransport,
} from "../../mod.ts";
import { TcpSocketSignaling } from "../../src/signaling/tcp_socket_signaling.ts";
import { createTestServer } from "../_helpers.ts";

/**
 * Records the type of every message this side sends, in order, and in `log`
 * every message each way (`sent:offer`, `received:bye`).
 */
function recording(inner: Signaling, sent: string[], log: string[]): Signaling {
  const wrapper: Signaling = {
    start: (options) => inner.start?.(options) ?? Promise.resolve(),
    send: (message: SignalingMessage) => {
      sent.push(message.type);
      log.push(`sent:${message.type}`);
      return inner.send(message);
    },
    close: () => inner.close(),
  };
  inner.onmessage = (message) => {
    log.push(`received:${message.type}`);
    wrapper.onmessage?.(message);
  };
  inner.onclose = () => wrapper.onclose?.();
  inner.onerror = (error) => wrapper.onerror?.(error);
  return wrapper;
}

/** The text of `large_server.py`'s `large` tool: about 40 KB, every kind of escape. */
const LARGE_TEXT = `${"x".repeat(999)}"\\\n\té€😀`.repeat(40);

const mode = Deno.args[0];
const sent: string[] = [];
const log: string[] = [];
const tcp = new TcpSocketSignaling("localhost", 8000);
tcp.onlisten = () => console.log(JSON.stringify({ listening: true }));
const signaling = recording(tcp, sent, log);
const options = { signaling, iceServers: [], connectTimeout: 10_000 };
const errors: string[] = [];

if (mode === "client" || mode === "client-large") {
  const transport = new WebRTCClientTransport({ ...options, initiator: false });
  transport.onerror = (error) => errors.push(String(error));
  const client = new Client({ name: "ours", version: "1.0.0" });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    if (mode === "client-large") {
      const large = await client.callTool({ name: "large", arguments: {} });
      const text = (large.content as { text: string }[])[0].text;
      // More than the reference takes in one message: refused here, at once.
      const refused = await client
        .callTool({ name: "greet", arguments: { padding: "p".repeat(100_000) } })
        .then(() => "sent", (error: Error) => `${error.name}: ${error.message}`);
      const result = await client.callTool({ name: "greet", arguments: {} });
      const same = text === LARGE_TEXT;
      console.log(JSON.stringify({ large: { length: text.length, same }, refused, result, sent }));
    } else {
      const result = await client.callTool({ name: "greet", arguments: {} });
      console.log(JSON.stringify({ tools: tools.map((tool) => tool.name), result, sent, errors }));
    }
  } catch (error) {
    console.log(JSON.stringify({ error: String(error), sent, errors }));
  } finally {
    await client.close();
  }
} else {
  const transport = new WebRTCServerTransport({ ...options, initiator: mode === "server" });
  const server = createTestServer();
  const closed = new Promise<void>((resolve) => (server.server.onclose = resolve));
  transport.onerror = (error) => errors.push(String(error));
  await server.connect(transport);
  await closed;
  console.log(JSON.stringify({ sent, log, errors }));
}
