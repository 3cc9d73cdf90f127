/**
 * What a connect through the signalling worker costs, against rooms that
 * only relay: the same connect (an MCP client's `connect()` to the end of
 * `initialize`, both ends in this process, on 127.0.0.1) four ways,
 * alternating, so that all meet the same load:
 *
 * - `in-process`: `MemorySignaling`, no room (the `webrtc` connect of
 *   `deno task bench`);
 * - `relay-only room`: a room that only stamps and relays frames
 *   (`bench/_floor_room.ts`: one Durable Object per room, no key checked,
 *   nothing stored) in a workerd of its own, reached the way the worker is
 *   (workerd's own socket), and signalling that is not sealed: the guest's
 *   `WebSocketSignaling`, the host's `SignalingRoom` with a server
 *   transport per guest;
 * - `relay-only room, sealed`: that room with what a desktop and an agent
 *   run against the worker: a `WebRTCListener` and `TicketSignaling`, every
 *   message sealed end to end (the room hands out no waiting hello: the
 *   agent's offer waits for the desktop's);
 * - `worker`: the same listener and ticket on the signalling worker
 *   (`worker/local.ts`).
 *
 * So the ratios say where a connect through the worker spends its time
 * beyond the in-process one: what any room costs on this platform (the
 * WebSocket join through workerd and the hops through a Durable Object),
 * what sealing costs, and what this worker's room costs beyond relaying.
 *
 * Run alone: `deno run -A bench/room_connect.ts [--connects 40] [--quick] [--json]`
 * (`--quick`: 10 connects each); `deno task bench` runs it too.
 *
 * @module
 */
import { Miniflare } from "miniflare";
import { Client } from "@modelcontextprotocol/sdk/client";
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  MemorySignaling,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
  WebRTCServerTransport,
} from "../mod.ts";
import {
  createRoomId,
  createRoomKey,
  keyVerifier,
  SignalingRoom,
  WebSocketSignaling,
} from "../src/signaling/mod.ts";
import { startLocalSignaling } from "../worker/local.ts";
import { floorWorker } from "./_floor_room.ts";

const PEER = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };
const WARMUP = 3;
/** Longest one connect may take before the run fails. */
const CONNECT_TIMEOUT = 10_000;

/** The ways measured, in table order. */
const WAYS = ["in-process", "relay-only room", "relay-only room, sealed", "worker"] as const;
type Way = typeof WAYS[number];

/** What this benchmark reports: each way's median connect, in ms. */
export interface RoomConnectFigures {
  connects: number;
  medianMs: Record<Way, number>;
}

function createServer(): McpServer {
  return new McpServer({ name: "room-connect", version: "1.0.0" });
}

/** Connects a client on `transport`; resolves with the ms since `started`, and closes it. */
async function timed(started: number, transport: WebRTCClientTransport): Promise<number> {
  const client = new Client({ name: "room-connect", version: "1.0.0" });
  await client.connect(transport);
  const ms = performance.now() - started;
  await client.close();
  return ms;
}

/** Waits (bounded) until a listener has let its last session go. */
async function drained(listener: WebRTCListener): Promise<void> {
  const until = performance.now() + 2_000;
  while (listener.sessions.length > 0 && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Measures in this process. */
export async function measureInProcess(connects: number): Promise<RoomConnectFigures> {
  const { compatibility_date } = JSON.parse(
    (await Deno.readTextFile(new URL("../worker/wrangler.jsonc", import.meta.url)))
      .replace(/^\s*\/\/.*$/gm, ""),
  );
  const floor = new Miniflare({
    modules: [{ type: "ESModule", path: "index.js", contents: floorWorker("none") }],
    compatibilityDate: compatibility_date,
    durableObjects: { ROOMS: { className: "FloorRoom", useSQLite: true } },
    host: "127.0.0.1",
    port: 0,
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
  });
  await floor.ready;
  const floorUrl = (await floor.unsafeGetDirectURL()).origin.replace(/^http/, "ws");
  const worker = await startLocalSignaling();
  const listen = (url: string) => WebRTCListener.listen({ url, createServer, ...PEER });
  const onFloor = await listen(floorUrl);
  const onWorker = await listen(worker.url);
  // The plain room: a host that serves each guest that joins on a server of its own.
  const guestKey = createRoomKey();
  const plainRoom = `${floorUrl}/v1/rooms/${createRoomId()}`;
  const host = await SignalingRoom.join(plainRoom, {
    role: "host",
    key: createRoomKey(),
    guestVerifier: await keyVerifier(guestKey),
  });
  const served: McpServer[] = [];
  host.onpeerjoin = (peer) => {
    // Made inside the timer, as the listener makes its own.
    const server = createServer();
    served.push(server);
    void server.connect(new WebRTCServerTransport({ signaling: host.signaling(peer), ...PEER }));
  };
  const ways: Record<Way, () => Promise<number>> = {
    "in-process": async () => {
      const started = performance.now();
      const server = createServer();
      const [a, b] = MemorySignaling.createPair();
      await server.connect(new WebRTCServerTransport({ signaling: b, ...PEER }));
      const ms = await timed(started, new WebRTCClientTransport({ signaling: a, ...PEER }));
      await server.close();
      return ms;
    },
    "relay-only room": async () => {
      const started = performance.now();
      const signaling = await WebSocketSignaling.connect(plainRoom, { key: guestKey });
      const ms = await timed(started, new WebRTCClientTransport({ signaling, ...PEER }));
      await Promise.all(served.splice(0).map((server) => server.close()));
      return ms;
    },
    "relay-only room, sealed": async () => {
      const started = performance.now();
      const signaling = new TicketSignaling(onFloor.ticket!, { hostTimeout: 5_000 });
      const ms = await timed(started, new WebRTCClientTransport({ signaling, ...PEER }));
      await drained(onFloor);
      return ms;
    },
    worker: async () => {
      const started = performance.now();
      const signaling = new TicketSignaling(onWorker.ticket!, { hostTimeout: 5_000 });
      const ms = await timed(started, new WebRTCClientTransport({ signaling, ...PEER }));
      await drained(onWorker);
      return ms;
    },
  };
  const samples = Object.fromEntries(WAYS.map((way) => [way, [] as number[]])) as Record<
    Way,
    number[]
  >;
  try {
    for (let i = 0; i < WARMUP + connects; i++) {
      // Each round in another order, so that none always follows the same one.
      for (let k = 0; k < WAYS.length; k++) {
        const way = WAYS[(i + k) % WAYS.length];
        const ms = await bounded(ways[way](), way);
        if (i >= WARMUP) samples[way].push(ms);
      }
    }
  } finally {
    await host.close();
    await Promise.all([onFloor.close(), onWorker.close()]);
    await worker.close();
    await floor.dispose();
  }
  const medianMs = Object.fromEntries(
    WAYS.map((way) => [way, Number(median(samples[way]).toFixed(2))]),
  ) as Record<Way, number>;
  return { connects, medianMs };
}

async function bounded(work: Promise<number>, way: Way): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`A connect (${way}) took over ${CONNECT_TIMEOUT} ms`)),
          CONNECT_TIMEOUT,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The figures as a table, with the ratios that say where the time goes. */
export function renderRoomConnect(figures: RoomConnectFigures | null): string {
  if (!figures) return "Connect through rooms that only relay: no figures (see above)";
  const m = figures.medianMs;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  return [
    `Connect through rooms that only relay, and through the worker (median ms, n=${figures.connects} each, alternating)`,
    "",
    ...WAYS.map((way) => `${way.padEnd(26)}${m[way].toFixed(1).padStart(7)}`),
    "",
    `any room here (relay-only ÷ in-process)           ${
      ratio(m["relay-only room"], m["in-process"])
    }`,
    `sealing (relay-only sealed ÷ relay-only)          ${
      ratio(m["relay-only room, sealed"], m["relay-only room"])
    }`,
    `this worker's room (worker ÷ relay-only sealed)   ${
      ratio(m.worker, m["relay-only room, sealed"])
    }`,
    `worker ÷ in-process                               ${
      ratio(m.worker, m["in-process"])
    }  target <= 1.5×  ${m.worker / m["in-process"] <= 1.5 ? "met" : "MISSED"}`,
  ].join("\n");
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--connects");
  const connects = at >= 0 ? Number(Deno.args[at + 1]) : Deno.args.includes("--quick") ? 10 : 40;
  const figures = await measureInProcess(connects);
  if (Deno.args.includes("--json")) console.log(JSON.stringify(figures));
  else console.log(renderRoomConnect(figures));
}
