/**
 * Set-up for the security tests: a relay's view of the sealed envelopes (below
 * `AuthenticatedSignaling`, where a compromised signalling service acts), a
 * host whose room views can be tapped, hand-built agents, and MCP servers that
 * record every message they receive.
 */
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
import {
  type ConnectableServer,
  createGuestTicket,
  createTicket,
  deriveTicketKeys,
  formatTicket,
  parseTicket,
  type Signaling,
  type SignalingHub,
  type SignalingMessage,
  type Ticket,
  WebRTCClientTransport,
  WebRTCListener,
  type WebRTCListenerOptions,
} from "../mod.ts";
import {
  AuthenticatedSignaling,
  roomUrl,
  SignalingRoom,
  WebSocketSignaling,
} from "../src/signaling/mod.ts";
import { encodeBase64Url } from "../src/_base64url.ts";
import { createTestServer, type Desktop, LOCAL, withWorker } from "./_helpers.ts";

/**
 * One leg of the relay, wrapped around a room view: it records the sealed
 * envelopes that go through it, and lets a test change, drop or add what the
 * peer above it receives, as a compromised relay could.
 */
export class Tap implements Signaling {
  onmessage?: (message: SignalingMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  /** Every envelope the peer above sent, as handed to the relay. */
  readonly sent: SignalingMessage[] = [];
  /** Every envelope the relay brought for the peer above, before `rewrite`. */
  readonly received: SignalingMessage[] = [];
  /** What to deliver instead of a received envelope: the same, another, several or none. */
  rewrite: (message: SignalingMessage) => SignalingMessage[] = (message) => [message];

  constructor(readonly inner: Signaling) {
    inner.onmessage = (message) => {
      this.received.push(message);
      for (const out of this.rewrite(message)) this.onmessage?.(out);
    };
    inner.onclose = () => this.onclose?.();
    inner.onerror = (error) => this.onerror?.(error);
  }

  start(): Promise<void> {
    return this.inner.start?.() ?? Promise.resolve();
  }

  send(message: SignalingMessage): Promise<void> {
    this.sent.push(message);
    return this.inner.send(message);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A host's room, with a {@linkcode Tap} around each agent's view: the
 * listener's hub as a compromised signalling service would serve it.
 */
export class TappedHub implements SignalingHub {
  /** The tap of each agent, in order of arrival. */
  readonly taps: Tap[] = [];
  readonly #byPeer = new Map<string, Tap>();

  /** @param room The room, joined as host. @param configure Called once per new tap. */
  constructor(readonly room: SignalingRoom, readonly configure: (tap: Tap) => void = () => {}) {}

  get peers(): string[] {
    return this.room.peers;
  }

  set onpeerjoin(handler: ((peer: string) => void) | undefined) {
    this.room.onpeerjoin = handler;
  }

  set onpeerleave(handler: ((peer: string) => void) | undefined) {
    this.room.onpeerleave = handler;
  }

  signaling(peer: string): Signaling {
    let tap = this.#byPeer.get(peer);
    if (!tap) {
      tap = new Tap(this.room.signaling(peer));
      this.#byPeer.set(peer, tap);
      this.taps.push(tap);
      this.configure(tap);
    }
    return tap;
  }

  close(): Promise<void> {
    return this.room.close();
  }
}

/** A listener built by hand on a {@linkcode TappedHub}, as `listen()` would build it. */
export async function tappedListener(
  hostTicket: Ticket,
  options: Omit<WebRTCListenerOptions, "hub" | "signalingKey">,
  configure?: (tap: Tap) => void,
): Promise<{ listener: WebRTCListener; hub: TappedHub; errors: Error[] }> {
  const keys = await deriveTicketKeys(hostTicket);
  const room = await SignalingRoom.join(roomUrl(hostTicket), {
    role: "host",
    key: keys.hostKey!,
    guestVerifier: keys.guestVerifier,
  });
  const hub = new TappedHub(room, configure);
  const listener = new WebRTCListener({
    ...LOCAL,
    ...options,
    expiresAt: options.expiresAt ?? hostTicket.expiresAt,
    hub,
    signalingKey: keys.signalingKey,
  });
  const errors: Error[] = [];
  listener.onerror = (error) => errors.push(error);
  return { listener, hub, errors };
}

/** A {@linkcode Desktop} whose listener is built on a {@linkcode TappedHub}. */
export interface TappedDesktop extends Desktop {
  hub: TappedHub;
  /** Every error the listener reported. */
  errors: Error[];
}

/**
 * Runs `fn` with a {@linkcode TappedDesktop}: the worker, a new host ticket on
 * it, a {@linkcode tappedListener} on that ticket (`configure` is its
 * per-tap set-up) and the guest ticket. Closes the listener, then the worker,
 * however `fn` ends.
 */
export function withTappedDesktop(
  options: Omit<WebRTCListenerOptions, "hub" | "signalingKey"> & {
    configure?: (tap: Tap) => void;
  },
  fn: (desktop: TappedDesktop) => Promise<void>,
): Promise<void> {
  const { configure, ...listenerOptions } = options;
  return withWorker(async (worker) => {
    const hostTicket = await createTicket({ url: worker.url });
    const { listener, hub, errors } = await tappedListener(hostTicket, listenerOptions, configure);
    try {
      const ticket = formatTicket(await createGuestTicket(hostTicket));
      await fn({ worker, listener, ticket, hub, errors });
    } finally {
      await listener.close();
    }
  });
}

/**
 * An agent built by hand, as `TicketSignaling` builds it but with a
 * {@linkcode Tap} between the room and `AuthenticatedSignaling`.
 */
export async function tappedAgent(ticket: string, connectTimeout = 10_000) {
  const parsed = parseTicket(ticket);
  const keys = await deriveTicketKeys(parsed);
  const room = await WebSocketSignaling.connect(roomUrl(parsed), {
    key: keys.guestKey,
    hostTimeout: 5_000,
  });
  const tap = new Tap(room);
  const signaling = new AuthenticatedSignaling(tap, { key: keys.signalingKey, role: "guest" });
  const transport = new WebRTCClientTransport({ signaling, ...LOCAL, connectTimeout });
  const errors: Error[] = [];
  transport.onerror = (error) => errors.push(error);
  return { tap, transport, errors };
}

/** The MCP servers a listener made, and every message each one received. */
export interface ServerLog {
  /** One entry per server made, in order: the messages it received. */
  readonly servers: JSONRPCMessage[][];
  /** All messages received by all servers. */
  readonly total: () => number;
  /** The listener's `createServer`. */
  readonly createServer: () => ConnectableServer;
}

/**
 * A `createServer` whose servers record every message their transport hands
 * them, from the first one (the hook is in place before `connect()` starts
 * the transport).
 */
export function recordingServers(): ServerLog {
  const servers: JSONRPCMessage[][] = [];
  return {
    servers,
    total: () => servers.reduce((sum, log) => sum + log.length, 0),
    createServer: () => {
      const server = createTestServer();
      const log: JSONRPCMessage[] = [];
      servers.push(log);
      return {
        connect: (transport: Transport) => {
          let handler: Transport["onmessage"];
          const recorded: Transport["onmessage"] = (message, extra) => {
            log.push(message);
            handler?.(message, extra);
          };
          Object.defineProperty(transport, "onmessage", {
            configurable: true,
            get: () => (handler ? recorded : undefined),
            set: (value) => (handler = value),
          });
          return server.connect(transport);
        },
        close: () => server.close(),
      };
    },
  };
}

/** The type of the message sealed in an envelope, if it carries one. */
export function sealedType(envelope: SignalingMessage): string | undefined {
  if (envelope.type !== "sealed" || typeof envelope.body !== "string") return undefined;
  try {
    return JSON.parse(envelope.body).type;
  } catch {
    return undefined;
  }
}

/**
 * The SDP with the first hex digit of its DTLS fingerprint changed, as a relay
 * that puts its own certificate in would change it. Returns `undefined` if
 * there is no fingerprint.
 */
export function alterFingerprint(sdp: string): string | undefined {
  const match = /a=fingerprint:\S+ ([0-9A-Fa-f])/.exec(sdp);
  if (!match) return undefined;
  const at = match.index + match[0].length - 1;
  return sdp.slice(0, at) + (match[1] === "0" ? "1" : "0") + sdp.slice(at + 1);
}

/**
 * The sealed envelope with the fingerprint in its body altered (see
 * {@linkcode alterFingerprint}) and its code left as it was. Returns
 * `undefined` if there is no fingerprint.
 */
export function withAlteredFingerprint(envelope: SignalingMessage): SignalingMessage | undefined {
  const body = typeof envelope.body === "string" ? alterFingerprint(envelope.body) : undefined;
  return body === undefined ? undefined : { ...envelope, body };
}

/** A random code of the right shape (43 base64url characters). */
export function randomMac(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
