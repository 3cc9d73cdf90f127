/**
 * Where a large `tools/call` result's time goes against the raw native
 * channel, on 127.0.0.1, both peers in this process, every variant
 * interleaved run by run so all meet the same load:
 *
 * - `raw`: the floor of `deno task bench` (`rawTransfer`: 64 KiB binary
 *   messages, no request, no JSON);
 * - `request+raw`: the same bytes sent once a small text message (the
 *   request) has come the other way: the least any request and its result
 *   cost, with no SDK and no JSON;
 * - `webrtc`: a `tools/call` of the `blob` tool through this module, as the
 *   benchmark makes it;
 * - `transport`: the SDK's client and server over `DataChannelTransport` on a
 *   native pair (what `webrtc` runs, without the peer connection's wrappers),
 *   with the moments of its steps: the request handed to the client's
 *   transport (`request sent`) and at the server (`request`), the
 *   tool called (`tool`), the response handed to the transport (`response`),
 *   its first chunk handed to the channel, its first and last chunk sent
 *   (the channel's `send()` returned) and received, and the response parsed and
 *   validated at the client (`parsed`), in ms after the call.
 *
 * Prints medians, ratios to `raw` and the steps; asserts nothing. Run with
 * `deno run -A --v8-flags=--expose-gc bench/sizes.ts [--quick] [--mib=1,16,64]`.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { NativeDataChannel } from "../src/_native_channel.ts";
import { DataChannelTransport } from "../src/data_channel_transport.ts";
import { HIGH_WATER_MARK, MAX_FRAME_SIZE } from "../src/constants.ts";
import { nativePair, rawTransfer } from "./_native.ts";
import { createBench, prepareBlob } from "./_transports.ts";

const MIB = 1024 * 1024;
const QUICK = Deno.args.includes("--quick");
const ONLY = Deno.args.find((arg) => arg.startsWith("--mib="))?.slice("--mib=".length);
const PLAN: [mib: number, warmup: number, runs: number][] =
  (QUICK
    ? [[1, 1, 3], [16, 1, 1], [64, 0, 1]] as const
    : [[1, 3, 25], [16, 2, 5], [64, 1, 3]] as const)
    .filter(([mib]) => ONLY === undefined || ONLY.split(",").includes(String(mib)))
    .map(([mib, warmup, runs]) => [mib, warmup, runs]);
const VARIANTS = ["raw", "request+raw", "webrtc", "transport"] as const;
type Variant = typeof VARIANTS[number];

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const rawPair = await nativePair();
const webrtc = await createBench("webrtc").connect();

// The SDK over DataChannelTransport on a native pair, its steps marked.
const pair = await nativePair();
const options = { maxMessageSize: MAX_FRAME_SIZE, maxReceiveSize: 128 * MIB };
const serverChannel = new NativeDataChannel(pair.answerer);
const clientChannel = new NativeDataChannel(pair.offerer);
const serverTransport = new DataChannelTransport(serverChannel, options);
const clientTransport = new DataChannelTransport(clientChannel, options);
const steps: Record<string, number> = {};
const step = (name: string) => steps[name] ??= performance.now();
clientChannel.addEventListener("message", (event) => {
  if (typeof (event as MessageEvent).data === "string") return;
  step("first received");
  steps["last received"] = performance.now();
});
const send = serverChannel.send.bind(serverChannel);
serverChannel.send = (data) => {
  if (typeof data !== "string") step("first handed");
  send(data);
  if (typeof data === "string") return;
  step("first sent");
  steps["last sent"] = performance.now();
};
const server = new McpServer({ name: "sizes", version: "1.0.0" });
server.registerTool("blob", { inputSchema: { bytes: z.number() } }, ({ bytes }) => {
  step("tool");
  return { content: [{ type: "text", text: prepareBlob(bytes) }] };
});
const client = new Client({ name: "sizes", version: "1.0.0" });
await server.connect(serverTransport);
await client.connect(clientTransport);
const serverReceive = serverTransport.onmessage!;
serverTransport.onmessage = (message) => (step("request"), serverReceive(message));
const serverSend = serverTransport.send.bind(serverTransport);
serverTransport.send = (message) => (step("response"), serverSend(message));
const clientSend = clientTransport.send.bind(clientTransport);
clientTransport.send = (message) => (step("request sent"), clientSend(message));
const clientReceive = clientTransport.onmessage!;
clientTransport.onmessage = (message) => (step("parsed"), clientReceive(message));

/** When each raw request came, in ms after it was sent. */
const rawRequest: number[] = [];

/** Raw bytes, once a small text message has come the other way. */
async function requestThenRaw(bytes: number): Promise<number> {
  const { offerer, answerer } = rawPair;
  const requested = Promise.withResolvers<void>();
  const started = performance.now();
  answerer.onMessage(() => (rawRequest.push(performance.now() - started), requested.resolve()));
  offerer.sendMessage('{"method":"blob"}');
  await requested.promise;
  await rawTransfer(answerer, offerer, bytes);
  return performance.now() - started;
}

async function call(session: Client, bytes: number): Promise<number> {
  const started = performance.now();
  const result = await session.callTool({ name: "blob", arguments: { bytes } }, undefined, {
    timeout: 120_000,
  });
  const ms = performance.now() - started;
  const text = (result.content as { text?: string }[])[0]?.text;
  if (text?.length !== bytes) throw new Error(`blob returned ${text?.length} bytes, not ${bytes}`);
  return ms;
}

console.log(
  `sizes: load ${Deno.loadavg().map((n) => n.toFixed(2)).join(" ")}, high-water ${
    HIGH_WATER_MARK / MIB
  } MiB`,
);
for (const [mib, warmup, runs] of PLAN) {
  const bytes = mib * MIB;
  prepareBlob(bytes);
  const times = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
  const stepTimes = new Map<string, number[]>();
  const first = new Map<Variant, number>();
  for (let run = 0; run < warmup + runs; run++) {
    for (const variant of run % 2 ? [...VARIANTS].reverse() : VARIANTS) {
      gc();
      await delay(30);
      for (const name in steps) delete steps[name];
      const started = performance.now();
      const ms = variant === "raw"
        ? await rawTransfer(rawPair.answerer, rawPair.offerer, bytes)
        : variant === "request+raw"
        ? await requestThenRaw(bytes)
        : variant === "webrtc"
        ? await call(webrtc.session.client, bytes)
        : await call(client, bytes);
      if (run === 0) first.set(variant, ms);
      if (run < warmup) continue;
      times.get(variant)!.push(ms);
      if (variant !== "transport") continue;
      for (const [name, at] of Object.entries(steps)) {
        stepTimes.set(name, [...stepTimes.get(name) ?? [], at - started]);
      }
    }
  }
  const raw = median(times.get("raw")!);
  console.log(`\n${mib} MiB, median of ${runs} after ${warmup} (ratio: raw's time ÷ this one's)`);
  for (const [variant, values] of times) {
    console.log(
      `  ${variant.padEnd(12)} ${median(values).toFixed(1).padStart(7)} ms  ${
        (raw / median(values)).toFixed(2)
      }×  runs ${values.map((v) => v.toFixed(1)).join(" ")}  first run ${
        first.get(variant)!.toFixed(1)
      }`,
    );
  }
  console.log(
    `  request+raw: the request came ${median(rawRequest).toFixed(2)} ms after it was sent`,
  );
  rawRequest.length = 0;
  const order = [...stepTimes].sort((a, b) => median(a[1]) - median(b[1]));
  console.log(
    `  transport steps, ms after the call: ${
      order.map(([name, at]) => `${name} ${median(at).toFixed(2)}`).join(", ")
    }`,
  );
}
await webrtc.session.close();
await client.close();
await server.close();
await Promise.all([rawPair.close(), pair.close()]);
