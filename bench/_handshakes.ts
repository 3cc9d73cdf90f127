/**
 * Signalling handshakes through the signalling worker (Miniflare on
 * 127.0.0.1), no WebRTC peers: in each of many rooms at once, a host and a
 * guest join the room, the guest sends an offer (about
 * 1 KiB, like a real SDP) and 10 candidates, the host answers with an answer
 * and 10 candidates. A handshake is done when both sides received everything.
 *
 * @module
 */
import type { SignalingMessage } from "../mod.ts";
import { createRoomId, createRoomKey, keyVerifier, SignalingRoom } from "../src/signaling/mod.ts";
import { startLocalSignaling } from "../worker/local.ts";

/** How many handshakes run at once, and how many times. */
export interface HandshakePlan {
  /** Rooms at once in one round. */
  rooms: number;
  /** Rounds run first and not counted. */
  warmupRounds: number;
  /** Rounds counted. */
  rounds: number;
}

/** What the counted rounds gave. */
export interface HandshakeSamples {
  /** Each completed handshake: host starts joining → both sides received everything, ms. */
  latencies: number[];
  /** Sum of the counted rounds' durations (first join → last handshake done), seconds. */
  seconds: number;
  /** Handshakes that failed in the counted rounds. */
  failed: number;
  /**
   * CPU used in the counted rounds by this process (both clients of every
   * room) and by its children (workerd), in seconds; absent off Linux.
   */
  cpu?: { clients: number; workerd: number };
  /** Why the first handshake that failed (counted or not) failed. */
  firstError?: string;
}

const CANDIDATES = 10;
/** Longest one handshake may take before it counts as failed. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** An SDP of a data channel with six host candidates: about 1 KiB of JSON. */
function sdp(kind: "offer" | "answer"): string {
  const hex = (bytes: number) =>
    [...crypto.getRandomValues(new Uint8Array(bytes))]
      .map((b) => b.toString(16).padStart(2, "0").toUpperCase());
  return [
    "v=0",
    `o=- ${Date.now()}${hex(2).join("")} 2 IN IP4 127.0.0.1`,
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=msid-semantic:WMS *",
    "a=extmap-allow-mixed",
    "m=application 50000 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 127.0.0.1",
    "a=mid:0",
    `a=ice-ufrag:${hex(2).join("")}`,
    `a=ice-pwd:${hex(12).join("")}`,
    "a=ice-options:ice2,trickle",
    `a=fingerprint:sha-256 ${hex(32).join(":")}`,
    `a=setup:${kind === "offer" ? "actpass" : "active"}`,
    "a=sctp-port:5000",
    "a=max-message-size:262144",
    ...[1, 2, 3, 4, 5, 6].map((n) =>
      `a=candidate:${n} 1 UDP ${2122260223 - n} 127.0.0.1 ${50000 + n} typ host generation 0`
    ),
    "a=end-of-candidates",
    "",
  ].join("\r\n");
}

function candidate(n: number): SignalingMessage {
  return {
    type: "candidate",
    candidate: {
      candidate: `candidate:${n} 1 UDP ${2122260223 - n} 127.0.0.1 ${51000 + n} typ host`,
      sdpMid: "0",
      sdpMLineIndex: 0,
    },
  };
}

/** What one side expects: one offer or answer, then the candidates. */
class Inbox {
  #description = 0;
  #candidates = 0;
  readonly #expected: string;
  readonly done = Promise.withResolvers<void>();

  constructor(expected: "offer" | "answer") {
    this.#expected = expected;
  }

  receive(message: SignalingMessage): void {
    if (message.type === this.#expected) this.#description++;
    else if (message.type === "candidate") this.#candidates++;
    if (this.#description === 1 && this.#candidates === CANDIDATES) this.done.resolve();
  }
}

/** A room and its keys. */
interface Room {
  url: string;
  hostKey: string;
  guestKey: string;
}

function newRoom(base: string): Room {
  return {
    url: `${base}/v1/rooms/${createRoomId()}`,
    hostKey: createRoomKey(),
    guestKey: createRoomKey(),
  };
}

/** One handshake in a room; resolves with its duration and how to leave the room. */
async function handshake(
  { url, hostKey, guestKey }: Room,
): Promise<{ ms: number; rooms: SignalingRoom[] }> {
  const rooms: SignalingRoom[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const started = performance.now();
  try {
    const atHost = new Inbox("offer");
    const atGuest = new Inbox("answer");
    const host = await SignalingRoom.join(url, {
      role: "host",
      key: hostKey,
      guestVerifier: await keyVerifier(guestKey),
      reconnect: false,
    });
    rooms.push(host);
    host.onpeerjoin = (peer) => {
      const view = host.signaling(peer);
      // A failed send shows as a handshake that never completes.
      const send = (message: SignalingMessage) => void view.send(message).catch(() => {});
      view.onmessage = (message) => {
        atHost.receive(message);
        if (message.type !== "offer") return;
        send({ type: "answer", sdp: sdp("answer") });
        for (let n = 0; n < CANDIDATES; n++) send(candidate(n));
      };
      void view.start?.();
    };
    const guest = await SignalingRoom.join(url, { role: "guest", key: guestKey, reconnect: false });
    rooms.push(guest);
    const view = guest.signaling("host");
    view.onmessage = (message) => atGuest.receive(message);
    await view.start?.();
    await view.send({ type: "offer", sdp: sdp("offer") });
    for (let n = 0; n < CANDIDATES; n++) await view.send(candidate(n));
    await Promise.race([
      Promise.all([atHost.done.promise, atGuest.done.promise]),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`A handshake took over ${HANDSHAKE_TIMEOUT_MS} ms`)),
          HANDSHAKE_TIMEOUT_MS,
        );
      }),
    ]);
    return { ms: performance.now() - started, rooms };
  } catch (error) {
    await Promise.all(rooms.map((room) => room.close()));
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `plan.rooms` handshakes at once, round after round, on one worker:
 * first in new rooms with new keys every round (each handshake also sets its
 * room up), then again in the same rooms every round (host and guest
 * rejoin a room set up in the warm-up round). Measures the counted rounds;
 * every socket is closed after its round, outside the timed part.
 *
 * @param plan Rooms per round and rounds.
 * @returns The latencies and duration of the counted rounds, for both ways.
 * @throws {Error} If the worker cannot start.
 */
export async function measureHandshakes(
  plan: HandshakePlan,
): Promise<{ newRooms: HandshakeSamples; rejoin: HandshakeSamples }> {
  const worker = await startLocalSignaling();
  try {
    const fresh = () => Array.from({ length: plan.rooms }, () => newRoom(worker.url));
    const newRooms = await rounds(plan, fresh);
    const same = fresh();
    const rejoin = await rounds(plan, () => same);
    return { newRooms, rejoin };
  } finally {
    await worker.close();
  }
}

/** Runs the plan's rounds, each in the rooms `roomsOf()` gives. */
async function rounds(plan: HandshakePlan, roomsOf: () => Room[]): Promise<HandshakeSamples> {
  const samples: HandshakeSamples = { latencies: [], seconds: 0, failed: 0 };
  for (let round = 0; round < plan.warmupRounds + plan.rounds; round++) {
    const counted = round >= plan.warmupRounds;
    const rooms = roomsOf();
    const cpuBefore = cpuSeconds();
    const started = performance.now();
    const results = await Promise.allSettled(rooms.map(handshake));
    if (counted) {
      samples.seconds += (performance.now() - started) / 1000;
      const cpuAfter = cpuSeconds();
      if (cpuBefore && cpuAfter) {
        samples.cpu ??= { clients: 0, workerd: 0 };
        samples.cpu.clients += cpuAfter.self - cpuBefore.self;
        samples.cpu.workerd += cpuAfter.children - cpuBefore.children;
      }
    }
    for (const result of results) {
      if (result.status === "rejected") {
        samples.firstError ??= String(result.reason?.message ?? result.reason);
        if (counted) samples.failed++;
      } else if (counted) samples.latencies.push(result.value.ms);
    }
    await Promise.all(
      results.flatMap((result) =>
        result.status === "fulfilled" ? result.value.rooms.map((room) => room.close()) : []
      ),
    );
  }
  return samples;
}

/**
 * CPU seconds used so far by this process and by its live children (the
 * workerd that Miniflare runs), from /proc; `null` where there is none.
 */
function cpuSeconds(): { self: number; children: number } | null {
  const USER_HZ = 100;
  const ticks = (pid: string) => {
    // utime and stime: fields 14 and 15, counted after the parenthesised name.
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  };
  try {
    const children = [...Deno.readDirSync("/proc/self/task")].flatMap(({ name }) =>
      Deno.readTextFileSync(`/proc/self/task/${name}/children`).split(" ").filter(Boolean)
    );
    return { self: ticks("self"), children: children.reduce((sum, pid) => sum + ticks(pid), 0) };
  } catch {
    return null;
  }
}
