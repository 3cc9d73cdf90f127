/**
 * The probes of `doctor`: each measures one step of what an agent's
 * connection would go through (the signalling service over HTTP, a room
 * joined over WebSocket, STUN from one shared socket, a TURN allocation,
 * the room's relay), and reports whether it worked, how long it took, and
 * why not. `doctor.ts` runs them and reads a verdict from their results.
 *
 * @module
 */
import { createSocket, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIPv4, isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import { deadline, withResolvers } from "../_async.ts";
import {
  DOCTOR_SIGNALING_TIMEOUT,
  DOCTOR_STUN_RETRANSMIT,
  DOCTOR_STUN_TIMEOUT,
  DOCTOR_TURN_TIMEOUT,
} from "../constants.ts";
import { type IceServer, resolvePeerConnection } from "../peer.ts";
import type { RelayCarrier } from "../relay/protocol.ts";
import { SignalingRoom } from "../signaling/signaling_room.ts";
import { RelayError, SignalingRoomError } from "../errors.ts";
import { bindingRequest, readBindingResponse, transactionIdOf } from "./_stun.ts";

/** The port of a STUN or TURN URL that names none (RFC 7064, RFC 7065). */
const STUN_DEFAULT_PORT = 3478;

/** One check: whether it worked, how long it took, and why not. */
export interface Probe {
  /** Whether it worked. */
  ok: boolean;
  /** How long it took, in milliseconds (when it worked). */
  ms?: number;
  /** Why it did not work. */
  error?: string;
}

/** One STUN server, as asked from the shared socket. */
export interface StunProbe extends Probe {
  /** The server's URL, e.g. `stun:stun.example:3478`. */
  url: string;
  /** Where the request went, `address:port` (once resolved). */
  destination?: string;
  /** The address and port the server saw: this machine as the NAT maps it. */
  mapped?: string;
}

/** The room's relay: a frame sent by a guest reached the host. */
export type RelayProbe = Probe & { bytesPerSecond?: number; maxFrameBytes?: number };

/** One TURN server, asked for a relay over UDP. */
export interface TurnProbe extends Probe {
  /** The server's URL. */
  url: string;
  /** Whose credentials were used: the room's, or the command line's. */
  credentials: "room" | "given";
  /** The relayed address the server allocated, `address:port`. */
  relayed?: string;
}

export async function probeHttp(signal: string): Promise<Probe & { status?: number }> {
  const target = new URL(signal);
  target.protocol = target.protocol.replace(/^ws/, "http");
  target.pathname = `${target.pathname.replace(/\/+$/, "")}/health`;
  const started = performance.now();
  const controller = new AbortController();
  try {
    const response = await deadline(
      fetch(target, { signal: controller.signal }),
      DOCTOR_SIGNALING_TIMEOUT,
    );
    await response.body?.cancel();
    const ms = Math.round(performance.now() - started);
    return response.ok ? { ok: true, ms, status: response.status } : {
      ok: false,
      ms,
      status: response.status,
      error: `${target.href} answered ${response.status}`,
    };
  } catch (error) {
    controller.abort();
    return { ok: false, error: describe(error, `${target.href} did not answer`) };
  }
}

/**
 * Joins a fresh room as its host, and gets its ICE servers: both within one
 * {@linkcode DOCTOR_SIGNALING_TIMEOUT}.
 */
export async function joinRoom(url: string, key: string, guestVerifier: string): Promise<{
  host?: SignalingRoom;
  websocket: Probe;
  iceServers?: IceServer[];
  asked?: Probe;
}> {
  const started = performance.now();
  const joining = SignalingRoom.join(url, {
    role: "host",
    key,
    guestVerifier,
    reconnect: false,
    timeout: DOCTOR_SIGNALING_TIMEOUT,
  });
  let host: SignalingRoom;
  try {
    host = await deadline(joining, DOCTOR_SIGNALING_TIMEOUT);
  } catch (error) {
    // A welcome that comes after all is left at once.
    void joining.then((room) => room.close(), () => {});
    // The keys are a new ticket's: a room that refuses them reads tickets of an earlier version.
    const refused = error instanceof SignalingRoomError && error.code === "key_refused";
    return {
      websocket: {
        ok: false,
        error: refused
          ? "the room refused the host key of a new ticket: a signalling worker older than this version of mcp-webrtc does (it reads only version 1 tickets); deploy this version's worker"
          : describe(error, "no welcome from the room"),
      },
    };
  }
  const websocket = { ok: true, ms: Math.round(performance.now() - started) };
  // A room that hands out TURN credentials on request answers this request;
  // one that sends them in its welcome has them already.
  const request = (host as { requestIceServers?: () => Promise<IceServer[] | undefined> })
    .requestIceServers;
  if (typeof request !== "function") return { host, websocket, iceServers: host.iceServers };
  const asking = performance.now();
  let refusal: Error | undefined;
  host.onerror = (error) => void (refusal ??= error);
  try {
    const left = Math.max(1, DOCTOR_SIGNALING_TIMEOUT - (asking - started));
    const iceServers = await deadline(request.call(host), left);
    const ms = Math.round(performance.now() - asking);
    const asked = refusal ? { ok: false, ms, error: refusal.message } : { ok: true, ms };
    return { host, websocket, iceServers, asked };
  } catch (error) {
    return {
      host,
      websocket,
      asked: { ok: false, error: describe(error, "the room did not answer") },
    };
  } finally {
    host.onerror = undefined;
  }
}

/** A guest joins the host's room and sends it one relay frame, within {@linkcode DOCTOR_SIGNALING_TIMEOUT}. */
export async function probeRelay(
  host: SignalingRoom,
  url: string,
  guestKey: string,
  hostVerifier?: string,
): Promise<RelayProbe> {
  const started = performance.now();
  const joined = withResolvers<string>();
  host.onpeerjoin = (peer) => joined.resolve(peer);
  const joining = SignalingRoom.join(url, {
    role: "guest",
    key: guestKey,
    ...hostVerifier !== undefined && { hostVerifier },
    reconnect: false,
    timeout: DOCTOR_SIGNALING_TIMEOUT,
  });
  try {
    const work = (async () => {
      const guest = await joining;
      const peer = await joined.promise;
      const out = (guest.signaling("host") as RelayCarrier).relayPipe?.();
      const into = (host.signaling(peer) as RelayCarrier).relayPipe?.();
      if (!out || !into) throw new RelayError("this room client offers no relay");
      const arrived = withResolvers<void>();
      into.listen({
        message: () => arrived.resolve(),
        error: (error) => arrived.reject(error),
        close: () => arrived.reject(new RelayError("the room closed the relay")),
      });
      await out.send(new Uint8Array([0]));
      await arrived.promise;
      return out.limits;
    })();
    const limits = await deadline(work, DOCTOR_SIGNALING_TIMEOUT);
    return {
      ok: true,
      ms: Math.round(performance.now() - started),
      bytesPerSecond: limits.bytesPerSecond,
      maxFrameBytes: limits.maxFrameBytes,
    };
  } catch (error) {
    return { ok: false, error: describe(error, "no relayed frame arrived") };
  } finally {
    host.onpeerjoin = undefined;
    // Joined or still joining: the guest leaves either way, without holding the report up.
    void joining.then((guest) => guest.close(), () => {});
  }
}

/** The TURN servers to ask for a relay over UDP, and the ones skipped with why. */
export function turnChecks(given: IceServer[], room: IceServer[]): {
  turn: { url: string; server: IceServer; credentials: "room" | "given" }[];
  turnSkipped: { url: string; why: string }[];
} {
  const turn: { url: string; server: IceServer; credentials: "room" | "given" }[] = [];
  const turnSkipped: { url: string; why: string }[] = [];
  for (const [servers, credentials] of [[room, "room"], [given, "given"]] as const) {
    for (const server of servers) {
      for (const url of [server.urls].flat()) {
        if (!/^turns?:/i.test(url)) continue;
        const transport = /[?&]transport=(\w+)/i.exec(url)?.[1]?.toLowerCase() ?? "udp";
        if (/^turns:/i.test(url) || transport !== "udp") {
          turnSkipped.push({ url, why: "only TURN over UDP is checked" });
        } else if (!server.username || !server.credential) {
          turnSkipped.push({
            url,
            why: "no credentials: pass --ice-username and --ice-credential",
          });
        } else turn.push({ url, server: { ...server, urls: url }, credentials });
      }
    }
  }
  return { turn, turnSkipped };
}

/** Asks one TURN server for a relay: a relay-only connection gathers a relay candidate, or not. */
export async function probeTurn(
  check: { url: string; server: IceServer; credentials: "room" | "given" },
): Promise<TurnProbe> {
  const { url, credentials } = check;
  const started = performance.now();
  let pc: import("../peer.ts").PeerConnectionLike | undefined;
  try {
    const PeerConnection = await resolvePeerConnection();
    pc = new PeerConnection({ iceServers: [check.server], iceTransportPolicy: "relay" });
    const connection = pc;
    // A relay candidate is what proves the allocation. The end of gathering can
    // be told before the last candidate (node-datachannel hands the two over on
    // separate queues), so the description, which holds every candidate
    // gathered, is read then.
    const relayOf = (text?: string | null) => {
      const match = text && / (\S+) (\d+) typ relay/.exec(text);
      return match ? `${match[1]}:${match[2]}` : undefined;
    };
    const gathered = new Promise<string | undefined>((resolve) => {
      connection.addEventListener("icecandidate", (event) => {
        const line = (event as { candidate?: { candidate?: string } | null }).candidate?.candidate;
        const relayed = relayOf(line);
        if (relayed) resolve(relayed);
      });
      connection.addEventListener("icegatheringstatechange", () => {
        const state = (connection as { iceGatheringState?: string }).iceGatheringState;
        if (state === "complete") resolve(relayOf(connection.localDescription?.sdp));
      });
    });
    pc.createDataChannel("doctor");
    await pc.setLocalDescription(await pc.createOffer());
    const relayed = await deadline(gathered, DOCTOR_TURN_TIMEOUT);
    const ms = Math.round(performance.now() - started);
    return relayed ? { url, credentials, ok: true, ms, relayed } : {
      url,
      credentials,
      ok: false,
      error:
        "no relay was allocated: the server refused the credentials or does not answer over UDP",
    };
  } catch (error) {
    return { url, credentials, ok: false, error: describe(error, "no relay was allocated") };
  } finally {
    pc?.close();
  }
}

/** Sends a binding request to every STUN server from one socket, and reads the answers. */
export async function probeStun(urls: string[]): Promise<StunProbe[]> {
  const started = performance.now();
  const probes: StunProbe[] = [];
  const pending = new Map<
    string,
    { probe: StunProbe; id: Uint8Array; host: string; port: number }
  >();
  await Promise.all(urls.map(async (url, index) => {
    const probe: StunProbe = { url, ok: false };
    probes[index] = probe;
    const match = /^stun:(\[[^\]]*\]|[^:?/]+)(?::(\d{1,5}))?(?:\?.*)?$/i.exec(url);
    if (!match || Number(match[2] ?? STUN_DEFAULT_PORT) > 65535) {
      probe.error = "not a stun:host[:port] URL";
      return;
    }
    const name = match[1];
    const port = Number(match[2] ?? STUN_DEFAULT_PORT);
    if (name.startsWith("[") || isIPv6(name)) {
      probe.error = "IPv6 servers are not checked";
      return;
    }
    let host = name;
    if (!isIPv4(name)) {
      try {
        host = (await deadline(lookup(name, { family: 4 }), DOCTOR_STUN_TIMEOUT)).address;
      } catch (error) {
        probe.error = describe(error, `cannot resolve ${name}`);
        return;
      }
    }
    probe.destination = `${host}:${port}`;
    for (const other of pending.values()) {
      if (other.probe.destination === probe.destination) {
        probe.error = `the same destination as ${other.probe.url}`;
        return;
      }
    }
    pending.set(url, { probe, id: crypto.getRandomValues(new Uint8Array(12)), host, port });
  }));
  if (pending.size === 0) return probes;
  const socket = createSocket("udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    // An ICMP error or a refused send is reported per request, never thrown.
    socket.on("error", () => {});
    // Name look-ups included, the STUN servers get DOCTOR_STUN_TIMEOUT in all.
    const left = Math.max(1, DOCTOR_STUN_TIMEOUT - (performance.now() - started));
    await exchange(socket, [...pending.values()], left);
  } catch (error) {
    for (const { probe } of pending.values()) probe.error ??= describe(error, "UDP socket failed");
  } finally {
    socket.close();
  }
  return probes;
}

/** Sends each request until it is answered, again every DOCTOR_STUN_RETRANSMIT, for `timeout` ms. */
function exchange(
  socket: Socket,
  requests: { probe: StunProbe; id: Uint8Array; host: string; port: number }[],
  timeout: number,
): Promise<void> {
  const started = performance.now();
  const open = new Set(requests);
  return new Promise<void>((resolve) => {
    const done = () => {
      clearInterval(resend);
      clearTimeout(timer);
      socket.off("message", receive);
      for (const { probe } of open) {
        probe.error ??= `no answer within ${DOCTOR_STUN_TIMEOUT} ms: UDP to it is blocked or lost`;
      }
      resolve();
    };
    const send = () => {
      for (const request of open) {
        socket.send(bindingRequest(request.id), request.port, request.host, (error) => {
          if (error && !request.probe.ok) request.probe.error = describe(error, "cannot send");
        });
      }
    };
    const receive = (message: Uint8Array) => {
      const id = transactionIdOf(message);
      const request = id && [...open].find((r) => r.id.every((byte, i) => byte === id[i]));
      if (!request) return;
      open.delete(request);
      try {
        const mapped = readBindingResponse(message, request.id);
        Object.assign(request.probe, {
          ok: true,
          ms: Math.round(performance.now() - started),
          mapped: `${mapped.address}:${mapped.port}`,
          error: undefined,
        });
        delete request.probe.error;
      } catch (error) {
        request.probe.error = describe(error, "malformed answer");
      }
      if (open.size === 0) done();
    };
    socket.on("message", receive);
    const resend = setInterval(send, DOCTOR_STUN_RETRANSMIT);
    const timer = setTimeout(done, timeout);
    send();
  });
}

export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flat().flatMap((entry) => entry ? [entry.address] : []);
}

export function describe(error: unknown, fallback: string): string {
  if (error instanceof DOMException && error.name === "TimeoutError") return `${fallback} in time`;
  const message = error instanceof Error ? error.message : String(error);
  // fetch() says only "fetch failed"; its cause says what failed.
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : "";
  return [message || fallback, cause].filter(Boolean).join(": ");
}
