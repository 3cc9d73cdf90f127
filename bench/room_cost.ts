/**
 * What a pairing costs the signalling worker, against the platform's floor:
 * the real worker and a minimal relay-only room (one Durable Object per room,
 * which stamps and forwards frames and stores nothing), and that room with
 * the writes a room keeping verifiers makes (in two commits, or in one when
 * the room empties), each in a workerd of its own (Miniflare on 127.0.0.1,
 * Durable Object storage on disk), driven from outside with raw WebSockets
 * and the same traffic: a host and a guest join a new room, the guest sends a
 * 1 KiB offer, the host a 1 KiB answer, 10 candidates each way, then both
 * close. The worker is measured twice: in a new ticket's room (its id binds
 * both verifiers, so nothing is stored) and in a room of random id (its first
 * host sets it up, so its verifiers are stored). Rounds of `--rooms` pairings
 * at once take turns, so all see the same load.
 *
 * Prints, for each: pairings, pairings/s, workerd CPU per pairing (utime +
 * stime of its workerd, from /proc), and the room's ratios to each floor.
 * `deno task bench` runs it too (30 rounds; 3 in a quick run) and prints
 * the ticket's room against the relay-only floor with the targets.
 *
 * Run: `deno run -A bench/room_cost.ts [--rooms 20] [--rounds 30] [--quick] [--json]`
 *
 * @module
 */
import { Miniflare } from "miniflare";
import { bundleWorker } from "../worker/local.ts";
import { createRoomId, createRoomKey, keyVerifier } from "../src/signaling/mod.ts";
import { createTicket, deriveTicketKeys } from "../src/ticket.ts";
import { joinProtocols } from "../src/signaling/room_protocol.ts";
import { floorWorker, type FloorWrites } from "./_floor_room.ts";

const arg = (name: string, fallback: number) => {
  const index = Deno.args.indexOf(`--${name}`);
  return index >= 0 ? Number(Deno.args[index + 1]) : fallback;
};
const ROOMS = arg("rooms", 20);
const ROUNDS = arg("rounds", Deno.args.includes("--quick") ? 3 : 30);
const WARMUP_ROUNDS = 2;
const CANDIDATES = 10;
/** Longest one pairing may take before the run fails. */
const PAIRING_TIMEOUT_MS = 10_000;

interface Server {
  label: string;
  url: string;
  /** The pid of its workerd. */
  pid: string;
  close(): Promise<void>;
}

/** The pids of this process's children now. */
function children(): Set<string> {
  return new Set(
    [...Deno.readDirSync("/proc/self/task")].flatMap(({ name }) =>
      Deno.readTextFileSync(`/proc/self/task/${name}/children`).split(" ").filter(Boolean)
    ),
  );
}

/** CPU seconds (user + system) a process used so far. */
function cpuSeconds(pid: string): number {
  // utime and stime: fields 14 and 15, counted after the parenthesised name.
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Starts a Miniflare of its own (its own workerd), with its Durable Objects' storage on disk. */
async function start(
  label: string,
  options: Omit<ConstructorParameters<typeof Miniflare>[0], "host" | "port">,
): Promise<Server> {
  const before = children();
  const persist = await Deno.makeTempDir({ prefix: "room-cost-" });
  const miniflare = new Miniflare(
    {
      ...options,
      durableObjectsPersist: persist,
      host: "127.0.0.1",
      port: 0,
    } as ConstructorParameters<typeof Miniflare>[0],
  );
  const ready = await miniflare.ready;
  const started = [...children()].filter((pid) => !before.has(pid));
  if (started.length !== 1) {
    await miniflare.dispose();
    throw new Error(`Cannot measure ${label} as it started ${started.length} processes, not one`);
  }
  return {
    label,
    url: ready.origin.replace(/^http/, "ws"),
    pid: started[0],
    close: async () => {
      await miniflare.dispose();
      await Deno.remove(persist, { recursive: true });
    },
  };
}

async function startRoom(): Promise<Server> {
  const config = JSON.parse(
    (await Deno.readTextFile(new URL("../worker/wrangler.jsonc", import.meta.url)))
      .replace(/^\s*\/\/.*$/gm, ""),
  );
  return await start("room", {
    name: config.name,
    modules: [{ type: "ESModule", path: "index.js", contents: await bundleWorker() }],
    compatibilityDate: config.compatibility_date,
    durableObjects: Object.fromEntries(
      (config.durable_objects.bindings as { name: string; class_name: string }[])
        .map((b) => [b.name, { className: b.class_name, useSQLite: true }]),
    ),
    bindings: config.vars ?? {},
  });
}

const FLOOR_LABELS: Record<FloorWrites, string> = {
  none: "floor",
  two: "floor + 2 commits",
  one: "floor + 1 commit",
};

function startFloor(compatibilityDate: string, writes: FloorWrites): Promise<Server> {
  return start(FLOOR_LABELS[writes], {
    modules: [{ type: "ESModule", path: "index.js", contents: floorWorker(writes) }],
    compatibilityDate,
    durableObjects: { ROOMS: { className: "FloorRoom", useSQLite: true } },
  });
}

/** A raw client: resolves `frames(n)` once n frames (not `pong`) have come. */
class Client {
  readonly ws: WebSocket;
  readonly frames: Record<string, unknown>[] = [];
  readonly closed: Promise<void>;
  #waiting?: { count: number; resolve: () => void };

  constructor(url: string, protocols: string[]) {
    this.ws = new WebSocket(url, protocols);
    this.ws.onmessage = ({ data }) => {
      this.frames.push(JSON.parse(data));
      if (this.#waiting && this.frames.length >= this.#waiting.count) this.#waiting.resolve();
    };
    this.closed = new Promise((resolve) => (this.ws.onclose = () => resolve()));
  }

  until(count: number): Promise<void> {
    if (this.frames.length >= count) return Promise.resolve();
    return new Promise((resolve) => (this.#waiting = { count, resolve }));
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }
}

const GUEST_KEY = createRoomKey();
const GUEST_VERIFIER = await keyVerifier(GUEST_KEY);
const SDP = "a=candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host\r\n".repeat(18).slice(0, 1024);

/** A new room to pair in: its id, and what its host and its guest join with. */
interface NewRoom {
  id: string;
  host: string[];
  guest: string[];
}

/** A room of random id, which its first host sets up (its verifiers are stored). */
function randomRoom(): Promise<NewRoom> {
  return Promise.resolve({
    id: createRoomId(),
    host: joinProtocols(createRoomKey(), GUEST_VERIFIER),
    guest: joinProtocols(GUEST_KEY),
  });
}

/** A new ticket's room, whose id binds both verifiers (nothing stored for its guest). */
async function ticketRoom(): Promise<NewRoom> {
  const ticket = await createTicket({ url: "ws://127.0.0.1" });
  const { hostKey, guestKey, guestVerifier } = await deriveTicketKeys(ticket);
  return {
    id: ticket.room,
    host: joinProtocols(hostKey!, guestVerifier),
    guest: joinProtocols(guestKey, undefined, ticket.hostVerifier),
  };
}

/** One pairing in a new room: joins, offer, answer, candidates, then both close. */
async function pairing(url: string, next: NewRoom): Promise<void> {
  const room = `${url}/v1/rooms/${next.id}`;
  const host = new Client(`${room}?role=host`, next.host);
  await host.until(1); // welcome
  const guest = new Client(`${room}?role=guest`, next.guest);
  await guest.until(1);
  await host.until(2); // the guest's join
  const guestId = guest.frames[0].peer as string;
  guest.send({ type: "signal", to: "host", data: { type: "offer", sdp: SDP } });
  await host.until(3);
  host.send({ type: "signal", to: guestId, data: { type: "answer", sdp: SDP } });
  for (let i = 0; i < CANDIDATES; i++) {
    guest.send({
      type: "signal",
      to: "host",
      data: { type: "candidate", candidate: SDP.slice(0, 60), i },
    });
    host.send({
      type: "signal",
      to: guestId,
      data: { type: "candidate", candidate: SDP.slice(0, 60), i },
    });
  }
  await Promise.all([host.until(3 + CANDIDATES), guest.until(2 + CANDIDATES)]);
  guest.ws.close();
  await guest.closed;
  await host.until(4 + CANDIDATES); // the guest's leave
  host.ws.close();
  await host.closed;
}

async function withTimeout(work: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`A pairing took over ${PAIRING_TIMEOUT_MS} ms`)),
          PAIRING_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface Tally {
  pairings: number;
  seconds: number;
  cpu: number;
}

/** What is measured: a server, and the rooms its pairings are made in. */
interface Entry {
  label: string;
  server: Server;
  rooms: () => Promise<NewRoom>;
}

async function round({ server, rooms }: Entry, tally?: Tally): Promise<void> {
  // The rooms' keys are made before the round: only the pairings are measured.
  const next = await Promise.all(Array.from({ length: ROOMS }, rooms));
  const cpu = cpuSeconds(server.pid);
  const started = performance.now();
  await Promise.all(next.map((room) => withTimeout(pairing(server.url, room))));
  if (!tally) return;
  tally.seconds += (performance.now() - started) / 1000;
  tally.cpu += cpuSeconds(server.pid) - cpu;
  tally.pairings += ROOMS;
}

/** One server's pairings, as measured. */
export interface RoomCostRow {
  server: string;
  pairings: number;
  pairingsPerSecond: number;
  workerdCpuMsPerPairing: number;
}

/** What this benchmark reports. */
export interface RoomCostFigures {
  rooms: number;
  rounds: number;
  /** The ticket's room first, the floors, the room of random id last. */
  rows: RoomCostRow[];
}

/** Measures every server, rounds in turns. */
async function measure(): Promise<RoomCostFigures> {
  const compatibilityDate = JSON.parse(
    (await Deno.readTextFile(new URL("../worker/wrangler.jsonc", import.meta.url)))
      .replace(/^\s*\/\/.*$/gm, ""),
  ).compatibility_date;
  const room = await startRoom();
  const servers = [
    room,
    await startFloor(compatibilityDate, "none"),
    await startFloor(compatibilityDate, "two"),
    await startFloor(compatibilityDate, "one"),
  ];
  const entries: Entry[] = [
    { label: "room, a ticket's", server: room, rooms: ticketRoom },
    ...servers.slice(1).map((server) => ({ label: server.label, server, rooms: randomRoom })),
    { label: "room, a random id", server: room, rooms: randomRoom },
  ];
  try {
    const tallies = new Map<Entry, Tally>(
      entries.map((entry) => [entry, { pairings: 0, seconds: 0, cpu: 0 }]),
    );
    for (let i = 0; i < WARMUP_ROUNDS + ROUNDS; i++) {
      // Each round in another order, so that none always runs first.
      for (let k = 0; k < entries.length; k++) {
        const entry = entries[(i + k) % entries.length];
        await round(entry, i >= WARMUP_ROUNDS ? tallies.get(entry) : undefined);
      }
    }
    const rows = [...tallies].map(([entry, t]) => ({
      server: entry.label,
      pairings: t.pairings,
      pairingsPerSecond: Number((t.pairings / t.seconds).toFixed(1)),
      workerdCpuMsPerPairing: Number(((t.cpu * 1000) / t.pairings).toFixed(2)),
    }));
    return { rooms: ROOMS, rounds: ROUNDS, rows };
  } finally {
    await Promise.all(servers.map((server) => server.close()));
  }
}

/**
 * The figures as a table, the room's ratios to each floor, and the ticket's
 * room against the relay-only floor with the targets.
 */
export function renderRoomCost(figures: RoomCostFigures | null): string {
  if (!figures) return "What a pairing costs the worker: no figures (see above)";
  const [ticket, ...floors] = figures.rows;
  const random = floors.pop()!;
  const cell = (text: string | number, width: number) => String(text).padStart(width);
  const lines = [
    `What a pairing costs the worker, against rooms that only relay (workerd CPU; ${figures.rooms} rooms at once, ${figures.rounds} rounds each, in turns)`,
    "",
    `${"".padEnd(20)}${cell("pairings", 10)}${cell("pairings/s", 12)}${cell("CPU ms each", 13)}`,
    ...figures.rows.map((row) =>
      `${row.server.padEnd(20)}${cell(row.pairings, 10)}${cell(row.pairingsPerSecond, 12)}${
        cell(row.workerdCpuMsPerPairing.toFixed(2), 13)
      }`
    ),
    "",
  ];
  for (const floor of floors) {
    for (const measured of [ticket!, random]) {
      lines.push(
        `${measured.server} / ${floor.server}: CPU per pairing ${
          (measured.workerdCpuMsPerPairing / floor.workerdCpuMsPerPairing).toFixed(2)
        }×, pairings/s ${(measured.pairingsPerSecond / floor.pairingsPerSecond).toFixed(2)}×`,
      );
    }
  }
  const floor = floors[0]!;
  const cpu = ticket!.workerdCpuMsPerPairing / floor.workerdCpuMsPerPairing;
  const rate = ticket!.pairingsPerSecond / floor.pairingsPerSecond;
  lines.push(
    "",
    `workerd CPU per new-room pairing, ticket's room / relay-only floor   ${
      cpu.toFixed(2)
    }×  target <= 1.1×  ${cpu <= 1.1 ? "met" : "MISSED"}`,
    `new-room pairings/s, ticket's room / relay-only floor               ${
      rate.toFixed(2)
    }×  target >= 0.9×  ${rate >= 0.9 ? "met" : "MISSED"}`,
  );
  return lines.join("\n");
}

if (import.meta.main) {
  const figures = await measure();
  console.log(Deno.args.includes("--json") ? JSON.stringify(figures) : renderRoomCost(figures));
}
