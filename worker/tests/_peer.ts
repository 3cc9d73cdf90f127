/**
 * A raw client of the room for the worker's tests: every frame it receives is
 * queued and every wait is bounded, so tests read frames and close codes as sent.
 */
import assert from "node:assert/strict";
import { keyVerifier, seenFrame } from "../../src/signaling/room_protocol.ts";
import { createTicket, deriveTicketKeys } from "../../src/ticket.ts";
import { type LocalSignaling, type LocalSignalingOptions, startLocalSignaling } from "../local.ts";

export const HOST_KEY = "host-key-000000000000";
export const GUEST_KEY = "guest-key-00000000000";
export const OTHER_KEY = "other-key-00000000000";
export const GUEST_VERIFIER = await verifierOf(GUEST_KEY);
/** The relay limits a room announces in its welcome frame with the default `vars`. */
export const DEFAULT_RELAY = { maxFrameBytes: 131_072, bytesPerSecond: 8_388_608 };

/** A key's verifier, as the room computes it. */
export function verifierOf(key: string): Promise<string> {
  return keyVerifier(key);
}

export function newRoomId(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

export type Frame = Record<string, unknown> | string;

/** A raw client: every frame it receives is queued; every wait is bounded. */
export class Peer {
  readonly frames: Frame[] = [];
  /** The first welcome frame, as received. */
  welcome?: Record<string, unknown>;
  readonly closed: Promise<CloseEvent>;
  #wake?: () => void;

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (event) => {
      const data = event.data;
      const frame = data === "pong" ? data : JSON.parse(data);
      // Marks are answered as the room client does, and not queued.
      if (frame.type === "mark") return ws.send(seenFrame(frame.mark));
      if (frame.type === "welcome") this.welcome ??= frame;
      this.frames.push(frame);
      this.#wake?.();
    };
    this.closed = new Promise((resolve) => (ws.onclose = resolve));
  }

  /** Connects with subprotocols, or with headers when `headers` is given. */
  static async open(
    server: LocalSignaling,
    room: string,
    role: string,
    key: string,
    options: {
      verifier?: string;
      hostVerifier?: string;
      invitesOnly?: boolean;
      headers?: Record<string, string>;
    } = {},
  ): Promise<Peer> {
    const url = `${server.url}/v1/rooms/${room}?role=${role}`;
    const protocols = ["mcp-webrtc.v1", `mcp-webrtc.key.${key}`];
    if (options.verifier) protocols.push(`mcp-webrtc.guest-verifier.${options.verifier}`);
    if (options.hostVerifier) protocols.push(`mcp-webrtc.host-verifier.${options.hostVerifier}`);
    if (options.invitesOnly) protocols.push("mcp-webrtc.invites-only");
    const ws = options.headers
      // @ts-ignore: Deno's WebSocket takes headers as an extension
      ? new WebSocket(url, { headers: options.headers })
      : new WebSocket(url, protocols);
    const peer = new Peer(ws);
    await Promise.race([
      new Promise((resolve) => ws.addEventListener("open", resolve)),
      peer.closed,
    ]);
    return peer;
  }

  static host(server: LocalSignaling, room: string, key = HOST_KEY, verifier = GUEST_VERIFIER) {
    return Peer.open(server, room, "host", key, { verifier });
  }

  static guest(server: LocalSignaling, room: string, key = GUEST_KEY) {
    return Peer.open(server, room, "guest", key);
  }

  /** The next frame, waiting at most 3 s. */
  async next(): Promise<Frame> {
    const deadline = Date.now() + 3000;
    while (this.frames.length === 0) {
      const left = deadline - Date.now();
      assert.ok(left > 0, "Expected a frame within 3 s");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.frames.shift()!;
  }

  /** Asserts that nothing arrives within `ms`. */
  async nothing(ms = 150): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    assert.deepEqual(this.frames, []);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  signal(to: string, data: unknown, extra: Record<string, unknown> = {}): void {
    this.send({ type: "signal", to, data, ...extra });
  }

  async close(code = 1000): Promise<CloseEvent> {
    if (this.ws.readyState < WebSocket.CLOSING) this.ws.close(code);
    return await this.closed;
  }
}

/**
 * The room and keys of a new version 2 ticket: a paired room, whose id binds
 * the host key's and the guest key's verifiers.
 */
export async function pairedRoom(): Promise<{
  room: string;
  hostKey: string;
  guestKey: string;
  hostVerifier: string;
  guestVerifier: string;
}> {
  const ticket = await createTicket({ url: "wss://signal.example" });
  const { hostKey, guestKey, guestVerifier } = await deriveTicketKeys(ticket);
  return {
    room: ticket.room,
    hostKey: hostKey!,
    guestKey,
    hostVerifier: ticket.hostVerifier!,
    guestVerifier,
  };
}

/** Runs `fn` against a fresh local worker, always closing it. */
export async function withServer(
  fn: (server: LocalSignaling) => Promise<void>,
  vars?: Record<string, string>,
  options: Omit<LocalSignalingOptions, "vars"> = {},
): Promise<void> {
  const server = await startLocalSignaling({ ...options, vars });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** Forces the room's Durable Object to hibernate, keeping its sockets. */
export function hibernate(server: LocalSignaling, room: string): Promise<void> {
  return server.miniflare.unsafeEvictDurableObject("mcp-webrtc-signal", "Room", {
    name: room,
    webSockets: "hibernate",
  });
}

/** A host and a guest in a fresh room, past their welcome and join frames. */
export async function pair(server: LocalSignaling, room = newRoomId()) {
  const host = await Peer.host(server, room);
  const { iceServers: _, ice: __, ...hostWelcome } = await host.next() as Record<string, unknown>;
  assert.deepEqual(hostWelcome, {
    type: "welcome",
    peer: "host",
    role: "host",
    peers: [],
    relay: DEFAULT_RELAY,
    hellos: true,
  });
  const guest = await Peer.guest(server, room);
  const welcome = await guest.next() as Record<string, unknown>;
  assert.equal(welcome.type, "welcome");
  assert.equal(welcome.role, "guest");
  assert.deepEqual(welcome.peers, ["host"]);
  assert.match(welcome.peer as string, /^[0-9a-f]{16}$/);
  assert.deepEqual(await host.next(), { type: "join", peer: welcome.peer, invite: "guest" });
  return { room, host, guest, guestId: welcome.peer as string };
}
