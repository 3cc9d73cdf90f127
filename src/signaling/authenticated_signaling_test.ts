import { prng } from "../_test_prng.ts";
import assert from "node:assert/strict";
import {
  AuthenticatedSignaling,
  type AuthenticatedSignalingOptions,
} from "./authenticated_signaling.ts";
import { AuthenticationError } from "../errors.ts";
import { MemorySignaling } from "./memory_signaling.ts";
import { PeerRefusalError } from "../errors.ts";
import { MAX_REFUSAL_NOTICES } from "../constants.ts";
import type { Signaling, SignalingMessage } from "./signaling.ts";
import type { RelayCarrier } from "../relay/protocol.ts";
import { createGuestTicket, createTicket, deriveTicketKeys } from "../ticket.ts";

const FINGERPRINT = "a=fingerprint:sha-256 AA:BB:CC";
const OFFER = { type: "offer", sdp: `v=0\r\n${FINGERPRINT}\r\n` };
const ANSWER = { type: "answer", sdp: "v=0\r\na=fingerprint:sha-256 DD:EE:FF\r\n" };
const candidate = (n: number) => ({
  type: "candidate",
  candidate: `candidate:${n} 1 udp 1 127.0.0.1 ${n} typ host`,
});

/** Host and guest signalling keys of one fresh ticket. */
async function ticketKeys(): Promise<{ host: CryptoKey; guest: CryptoKey }> {
  const hostTicket = await createTicket({ url: "wss://signal.example.com" });
  const host = (await deriveTicketKeys(hostTicket)).signalingKey;
  const guest = (await deriveTicketKeys(await createGuestTicket(hostTicket))).signalingKey;
  return { host, guest };
}

/**
 * A relay in the middle: it wraps one end of a pair and lets a test see,
 * change, drop or add what that end receives.
 */
class Relay implements Signaling {
  onmessage?: (message: SignalingMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  /** Every message the inner end received, before `rewrite`. */
  readonly seen: SignalingMessage[] = [];
  /** What to deliver instead of a message: the same, another, several or none. */
  rewrite: (message: SignalingMessage) => SignalingMessage[] = (message) => [message];

  constructor(readonly inner: Signaling) {
    inner.onmessage = (message) => {
      this.seen.push(message);
      for (const out of this.rewrite(message)) this.onmessage?.(out);
    };
    inner.onclose = () => this.onclose?.();
    inner.onerror = (error) => this.onerror?.(error);
  }
  start() {
    return this.inner.start?.() ?? Promise.resolve();
  }
  send(message: SignalingMessage) {
    return this.inner.send(message);
  }
  close() {
    return this.inner.close();
  }
  /** Delivers a message to the wrapped end as if it came from the other peer. */
  inject(message: SignalingMessage) {
    this.onmessage?.(message);
  }
}

/** An end that records what it receives and the errors it reports. */
interface End {
  signaling: AuthenticatedSignaling;
  received: SignalingMessage[];
  errors: Error[];
  closed: number;
}

function end(
  inner: Signaling,
  options: AuthenticatedSignalingOptions,
): End {
  const signaling = new AuthenticatedSignaling(inner, options);
  const record: End = { signaling, received: [], errors: [], closed: 0 };
  signaling.onmessage = (message) => record.received.push(message);
  signaling.onerror = (error) => record.errors.push(error);
  signaling.onclose = () => record.closed++;
  return record;
}

/** A host and a guest over a memory pair, with a relay in front of each. */
async function connection(
  keys?: { host: CryptoKey; guest: CryptoKey },
  options: Partial<AuthenticatedSignalingOptions> = {},
) {
  keys ??= await ticketKeys();
  const [a, b] = MemorySignaling.createPair();
  const hostRelay = new Relay(a);
  const guestRelay = new Relay(b);
  const host = end(hostRelay, { key: keys.host, role: "host", ...options });
  const guest = end(guestRelay, { key: keys.guest, role: "guest", ...options });
  return { keys, host, guest, hostRelay, guestRelay };
}

/** Lets every queued microtask and crypto operation run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Waits (turn by turn, at most 10 s) until `done` holds; throws with `what` if it never does. */
async function eventually(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function assertRefused(errors: Error[], message: RegExp): void {
  assert.ok(errors.length > 0, "expected an AuthenticationError");
  for (const error of errors) {
    assert.ok(error instanceof AuthenticationError, `${error}`);
    assert.equal(error.name, "AuthenticationError");
    assert.match(error.message, /^Refused signalling message as /);
  }
  assert.ok(
    errors.some((error) => message.test(error.message)),
    `no error matches ${message}: ${errors.map((error) => error.message).join(" | ")}`,
  );
}

/** Sealed envelopes carrying a body with the given inner type. */
function sealedOf(messages: SignalingMessage[], type: string): SignalingMessage[] {
  return messages.filter((message) =>
    typeof message.body === "string" && JSON.parse(message.body).type === type
  );
}

Deno.test("AuthenticatedSignaling delivers offer, answer and candidates in order, including those sent before the handshake", async () => {
  const { host, guest } = await connection();
  // The guest sends before anything has started: held until the peers have met.
  const sent = [guest.signaling.send(OFFER), guest.signaling.send(candidate(1))];
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  sent.push(guest.signaling.send(candidate(2)));
  await Promise.all(sent);
  await settle();
  assert.deepEqual(host.received, [OFFER, candidate(1), candidate(2)]);
  await host.signaling.send(ANSWER);
  await host.signaling.send(candidate(3));
  await guest.signaling.send({ type: "bye" });
  await settle();
  assert.deepEqual(guest.received, [ANSWER, candidate(3)]);
  assert.deepEqual(host.received, [OFFER, candidate(1), candidate(2), { type: "bye" }]);
  assert.deepEqual(host.errors, []);
  assert.deepEqual(guest.errors, []);
  await guest.signaling.close();
  await host.signaling.close();
  await settle();
  assert.equal(host.closed, 1);
  assert.equal(guest.closed, 1);
});

Deno.test("AuthenticatedSignaling sends only sealed envelopes, the first a hello without body", async () => {
  const { host, guest, hostRelay } = await connection();
  await guest.signaling.start();
  await host.signaling.start();
  await guest.signaling.send(OFFER);
  await settle();
  const [hello, ...rest] = hostRelay.seen;
  assert.equal(hello!.type, "sealed");
  assert.equal(hello!.v, 1);
  assert.equal(hello!.role, "guest");
  assert.equal(hello!.seq, 0);
  assert.equal(hello!.body, undefined);
  assert.equal(hello!.peerNonce, undefined);
  assert.match(hello!.nonce as string, /^[A-Za-z0-9_-]{22}$/);
  assert.match(hello!.mac as string, /^[A-Za-z0-9_-]{43}$/);
  for (const message of rest) {
    assert.equal(message.type, "sealed");
    assert.equal(message.nonce, hello!.nonce);
    assert.equal(typeof message.peerNonce, "string");
  }
  const [offer] = sealedOf(rest, "offer");
  assert.equal(offer!.body, JSON.stringify(OFFER));
  // Sequence numbers strictly increase.
  const seqs = hostRelay.seen.map((message) => message.seq as number);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  assert.equal(new Set(seqs).size, seqs.length);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling works when the first hello is lost (the peer joined late)", async () => {
  const { host, guest, hostRelay } = await connection();
  let dropped = false;
  hostRelay.rewrite = (message) => {
    if (!dropped) {
      dropped = true;
      return [];
    }
    return [message];
  };
  const offer = guest.signaling.send(OFFER);
  await guest.signaling.start();
  await settle();
  await host.signaling.start();
  await offer;
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  assert.deepEqual(host.errors, []);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling sends what waits as soon as the peer's hello opened, before the peer has seen its own hello", async () => {
  const { host, guest, hostRelay } = await connection();
  // Nothing the guest sends reaches the host yet: the host never names the guest's nonce.
  const held: SignalingMessage[] = [];
  hostRelay.rewrite = (message) => {
    held.push(message);
    return [];
  };
  const offer = guest.signaling.send(OFFER);
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await offer;
  const [sealed] = sealedOf(held, "offer");
  assert.ok(sealed, "the offer left before the guest's nonce was confirmed");
  // It names the host's nonce, after the guest's answering hello.
  const hellos = held.filter((message) => message.body === undefined);
  assert.deepEqual(hellos.map((message) => message.peerNonce), [undefined, sealed!.peerNonce]);
  assert.equal(typeof sealed!.peerNonce, "string");
  hostRelay.rewrite = (message) => [message];
  for (const message of held) hostRelay.inject(message);
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  assert.deepEqual(host.errors, []);
  await host.signaling.send(ANSWER);
  await settle();
  assert.deepEqual(guest.received, [ANSWER]);
  assert.deepEqual(guest.errors, []);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling sends again, once, what it sent to a replayed hello's nonce when the real peer's hello comes", async () => {
  const keys = await ticketKeys();
  const first = await connection(keys);
  await Promise.all([first.host.signaling.start(), first.guest.signaling.start()]);
  await settle();
  const [oldHostHello] = first.guestRelay.seen;
  await first.host.signaling.close();

  const second = await connection(keys);
  await second.guest.signaling.start();
  second.guestRelay.inject(oldHostHello!);
  await second.guest.signaling.send(OFFER);
  await second.guest.signaling.send(candidate(1));
  await settle();
  // Both went to the old nonce; the real host starts only now.
  await second.host.signaling.start();
  await settle();
  assert.deepEqual(second.host.received, [OFFER, candidate(1)]);
  assertRefused(second.host.errors, /answers another connection's nonce/);
  await second.host.signaling.send(ANSWER);
  await second.guest.signaling.send(candidate(2));
  await settle();
  assert.deepEqual(second.guest.received, [ANSWER]);
  assert.deepEqual(second.host.received, [OFFER, candidate(1), candidate(2)]);
  await second.host.signaling.close();
});

Deno.test("AuthenticatedSignaling drops an SDP whose fingerprint a relay rewrote", async () => {
  const { host, guest, hostRelay } = await connection();
  hostRelay.rewrite = (message) => {
    if (typeof message.body === "string" && message.body.includes("fingerprint")) {
      return [{
        ...message,
        body: message.body.replace("AA:BB:CC", "66:66:66"),
      }];
    }
    return [message];
  };
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await guest.signaling.send(candidate(1));
  await settle();
  assert.deepEqual(host.received, [candidate(1)]);
  assertRefused(
    host.errors,
    /authentication code does not match: the relay or another party altered or forged it/,
  );
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling tells the sender, sealed, that its message was altered on the way, and the sender reports a PeerRefusalError", async () => {
  const { host, guest, hostRelay, guestRelay } = await connection();
  hostRelay.rewrite = (message) =>
    sealedOf([message], "offer").length
      ? [{ ...message, body: (message.body as string).replace("AA:BB:CC", "66:66:66") }]
      : [message];
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await eventually(() => guest.errors.length > 0, "the sender to hear of the refusal");
  assert.deepEqual(host.received, []);
  assertRefused(host.errors, /authentication code does not match/);
  // The notice travelled sealed, and never reached the guest's onmessage.
  assert.equal(sealedOf(guestRelay.seen, "refused").length, 1);
  assert.deepEqual(guest.received, []);
  assert.equal(guest.errors.length, 1, guest.errors.join("\n"));
  const [error] = guest.errors;
  assert.ok(error instanceof PeerRefusalError, String(error));
  assert.match(error.message, /refused this peer's "offer" message as altered on the way/);
  assert.match(error.message, /authentication code does not match/);
  await Promise.all([host.signaling.close(), guest.signaling.close()]);
});

Deno.test("AuthenticatedSignaling's notice of a refused forgery accuses nobody, and at most MAX_REFUSAL_NOTICES (8) are sent", async () => {
  const { host, guest, hostRelay, guestRelay } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await settle();
  const [offer] = sealedOf(hostRelay.seen, "offer");
  // Sealed-looking candidates with the guest's nonce and made-up codes.
  for (let n = 0; n < MAX_REFUSAL_NOTICES + 4; n++) {
    hostRelay.inject({
      ...offer!,
      seq: (offer!.seq as number) + 1 + n,
      body: JSON.stringify(candidate(700 + n)),
    });
  }
  await eventually(
    () =>
      host.errors.length === MAX_REFUSAL_NOTICES + 4 &&
      sealedOf(guestRelay.seen, "refused").length === MAX_REFUSAL_NOTICES,
    "every forgery refused and the notices delivered",
  );
  // None of the refused envelopes was the guest's: no accusation, nothing delivered.
  assert.deepEqual(guest.errors, []);
  assert.deepEqual(guest.received, []);
  // And the connection still works both ways.
  await guest.signaling.send(candidate(1));
  await host.signaling.send(ANSWER);
  await eventually(
    () => host.received.length === 2 && guest.received.length === 1,
    "the messages after the forgeries",
  );
  assert.deepEqual(host.received, [OFFER, candidate(1)]);
  assert.deepEqual(guest.received, [ANSWER]);
  // The notices were processed before the answer: none accused the guest.
  assert.deepEqual(guest.errors, []);
  await Promise.all([host.signaling.close(), guest.signaling.close()]);
});

Deno.test("AuthenticatedSignaling drops envelopes whose any field a relay changed", async () => {
  const changes: [string, (message: SignalingMessage) => SignalingMessage][] = [
    ["seq", (m) => ({ ...m, seq: (m.seq as number) + 100 })],
    ["nonce", (m) => ({ ...m, nonce: "A".repeat(22) })],
    ["peerNonce", (m) => ({ ...m, peerNonce: "B".repeat(22) })],
    ["body", (m) => ({ ...m, body: JSON.stringify({ ...OFFER, extra: 1 }) })],
    ["mac", (m) => ({ ...m, mac: "C".repeat(42) + "A" })],
  ];
  for (const [field, change] of changes) {
    const { host, guest, hostRelay } = await connection();
    hostRelay.rewrite = (message) =>
      sealedOf([message], "offer").length ? [change(message)] : [message];
    await Promise.all([host.signaling.start(), guest.signaling.start()]);
    await guest.signaling.send(OFFER);
    await settle();
    assert.deepEqual(host.received, [], field);
    assert.equal(host.errors.length, 1, field);
    assert.ok(host.errors[0] instanceof AuthenticationError, field);
    await host.signaling.close();
  }
});

Deno.test("AuthenticatedSignaling drops forged messages a relay injects", async () => {
  const { host, guest, hostRelay } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await settle();
  const [offer] = sealedOf(hostRelay.seen, "offer");
  // A plain, unsealed candidate.
  hostRelay.inject(candidate(666));
  // A sealed-looking candidate with a made-up code.
  hostRelay.inject({
    ...offer!,
    seq: (offer!.seq as number) + 1,
    body: JSON.stringify(candidate(667)),
  });
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  assertRefused(
    host.errors,
    /is not sealed \(type "candidate"\): the other peer does not authenticate/,
  );
  assertRefused(host.errors, /authentication code does not match/);
  assert.equal(host.errors.length, 2);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling ignores fields a relay adds, such as a from stamp", async () => {
  const { host, guest, hostRelay } = await connection();
  hostRelay.rewrite = (message) => [{ ...message, from: "guest-1", type: "sealed" }];
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  assert.deepEqual(host.errors, []);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling delivers nothing between peers with different tickets", async () => {
  const a = await ticketKeys();
  const b = await ticketKeys();
  const { host, guest } = await connection({ host: a.host, guest: b.guest });
  const offer = guest.signaling.send(OFFER);
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await settle();
  assert.deepEqual(host.received, []);
  assert.deepEqual(guest.received, []);
  assertRefused(host.errors, /authentication code does not match.*tickets of different rooms/);
  assertRefused(guest.errors, /authentication code does not match/);
  await guest.signaling.close();
  await assert.rejects(
    offer,
    /Cannot send signalling message as the authenticated signalling is closed/,
  );
});

Deno.test("AuthenticatedSignaling refuses an offer replayed from an earlier connection", async () => {
  const keys = await ticketKeys();
  const first = await connection(keys);
  await Promise.all([first.host.signaling.start(), first.guest.signaling.start()]);
  await first.guest.signaling.send(OFFER);
  await settle();
  assert.deepEqual(first.host.received, [OFFER]);
  const [oldHello] = first.hostRelay.seen;
  const [oldOffer] = sealedOf(first.hostRelay.seen, "offer");
  await first.host.signaling.close();

  const second = await connection(keys);
  await Promise.all([second.host.signaling.start(), second.guest.signaling.start()]);
  await settle();
  second.hostRelay.inject(oldOffer!);
  await settle();
  assert.deepEqual(second.host.received, []);
  assertRefused(
    second.host.errors,
    /answers another connection's nonce: it is replayed from an earlier connection/,
  );
  // An old hello after the handshake is refused too.
  second.hostRelay.inject(oldHello!);
  await settle();
  assertRefused(
    second.host.errors,
    /hello from another connection than the one this end is bound to/,
  );
  // The connection still works.
  await second.guest.signaling.send(candidate(1));
  await settle();
  assert.deepEqual(second.host.received, [candidate(1)]);
  await second.host.signaling.close();
});

Deno.test("AuthenticatedSignaling is not confused by an old hello replayed before the real one", async () => {
  const keys = await ticketKeys();
  const first = await connection(keys);
  await Promise.all([first.host.signaling.start(), first.guest.signaling.start()]);
  await settle();
  const [oldHello] = first.hostRelay.seen;
  await first.host.signaling.close();

  const second = await connection(keys);
  const hostSent: SignalingMessage[] = [];
  const send = second.hostRelay.send.bind(second.hostRelay);
  second.hostRelay.send = (message) => (hostSent.push(message), send(message));
  await second.host.signaling.start();
  second.hostRelay.inject(oldHello!);
  // Its hello, then its answer to the old one: both before the guest starts.
  await eventually(() => hostSent.length >= 2, "the host's answer to the old hello");
  await second.guest.signaling.start();
  await second.guest.signaling.send(OFFER);
  // The host answers the offer it received, as an answerer does: by then the
  // guest's envelopes have bound it. (Sent before, the answer would be sealed
  // for the nonce the old hello named, refused by the guest, and sent again
  // once the guest bound the host: the one refused copy the protocol allows.)
  await eventually(() => second.host.received.length === 1, "the guest's offer at the host");
  await second.host.signaling.send(ANSWER);
  await settle();
  assert.deepEqual(second.host.received, [OFFER]);
  assert.deepEqual(second.guest.received, [ANSWER]);
  assert.deepEqual(second.host.errors, []);
  // The host answered the old hello; that answer names another nonce, and the
  // guest, bound to no one yet, read it as a hello and answered it.
  assert.deepEqual(second.guest.errors, []);
  await second.host.signaling.close();
});

Deno.test("AuthenticatedSignaling refuses a duplicated or reordered message within a connection", async () => {
  const { host, guest, hostRelay } = await connection();
  let held: SignalingMessage | undefined;
  hostRelay.rewrite = (message) => {
    const [inner] = sealedOf([message], "candidate");
    if (!inner) return [message];
    const { candidate: text } = JSON.parse(inner.body as string);
    if (text.startsWith("candidate:1 ")) return [message, message]; // duplicate
    if (text.startsWith("candidate:2 ")) {
      held = message; // delay: delivered after candidate 3
      return [];
    }
    return held ? [message, held] : [message];
  };
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  for (const n of [1, 2, 3]) await guest.signaling.send(candidate(n));
  await settle();
  assert.deepEqual(host.received, [candidate(1), candidate(3)]);
  assert.equal(host.errors.length, 2);
  assertRefused(
    host.errors,
    /sequence number \d+ is not above the last accepted one \(\d+\): it is a replayed or reordered copy/,
  );
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling refuses its own messages reflected back", async () => {
  const { host, guest, hostRelay, guestRelay } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await host.signaling.send(ANSWER);
  await settle();
  const [answer] = sealedOf(guestRelay.seen, "answer");
  hostRelay.inject(answer!);
  hostRelay.inject(guestRelay.seen[0]!); // the host's own hello
  await settle();
  assert.deepEqual(host.received, []);
  assert.equal(host.errors.length, 2);
  assertRefused(
    host.errors,
    /comes from the same role \("host"\) as this end: it is this end's own message reflected back/,
  );
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling delivers nothing when both ends have the same role", async () => {
  const keys = await ticketKeys();
  const [a, b] = MemorySignaling.createPair();
  const one = end(a, { key: keys.host, role: "host" });
  const two = end(b, { key: keys.guest, role: "host" });
  void one.signaling.send(OFFER).catch(() => {});
  await Promise.all([one.signaling.start(), two.signaling.start()]);
  await settle();
  assert.deepEqual(two.received, []);
  assertRefused(two.errors, /same role \("host"\).*both ends were given the same role/);
  await one.signaling.close();
});

Deno.test("AuthenticatedSignaling refuses a second peer with the same ticket once bound", async () => {
  const keys = await ticketKeys();
  const { host, guest, hostRelay, guestRelay } = await connection(keys);
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await settle();
  // A second guest with the same ticket, whose messages also reach the host.
  const [c, d] = MemorySignaling.createPair();
  const toHost = new Relay(c);
  await toHost.start();
  const intruderRelay = new Relay(d);
  const intruder = end(intruderRelay, { key: keys.guest, role: "guest" });
  await intruder.signaling.start();
  intruderRelay.inject(guestRelay.seen[0]!); // the host's hello
  void intruder.signaling.send(candidate(9)).catch(() => {});
  await settle();
  assert.ok(toHost.seen.length >= 2, "the intruder said hello and answered the host's");
  for (const message of toHost.seen) hostRelay.inject(message);
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  assertRefused(host.errors, /hello from another connection than the one this end is bound to/);
  assertRefused(host.errors, /comes from another connection than the one this end is bound to/);
  await host.signaling.close();
  await intruder.signaling.close();
});

Deno.test("AuthenticatedSignaling.send() refuses messages over maxEnvelopeSize (default 61440 bytes)", async () => {
  const { host, guest, hostRelay } = await connection();
  // The body is counted as it appears in the envelope (an escaped JSON string), plus 256.
  const sized = (pad: number) => ({ type: "x", sdp: 'a="b"\r\n', pad: "a".repeat(pad) });
  const counted = (pad: number) => JSON.stringify(JSON.stringify(sized(pad))).length + 256;
  const pad = 61_440 - counted(0);
  assert.equal(counted(pad), 61_440);
  const accepted = guest.signaling.send(sized(pad));
  await assert.rejects(guest.signaling.send(sized(pad + 1)), {
    name: "RangeError",
    message:
      /^Cannot send signalling message as it is too large once sealed: at least 61441 bytes of JSON, the limit is 61440$/,
  });
  // Multi-byte characters count as their UTF-8 bytes.
  await assert.rejects(
    guest.signaling.send({ type: "x", pad: "é".repeat(30_600) }),
    RangeError,
  );
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await accepted;
  await settle();
  assert.deepEqual(host.received, [sized(pad)]);
  // The sealed envelope, with a relay's frame around it, fits a 64 KiB frame.
  const [envelope] = sealedOf(hostRelay.seen, "x");
  const frame = JSON.stringify({ type: "signal", to: "0123456789abcdef", data: envelope, id: 1 });
  assert.ok(new TextEncoder().encode(frame).length <= 65_536);
  assert.ok(new TextEncoder().encode(JSON.stringify(envelope)).length <= 61_440);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling refuses an incoming body over maxEnvelopeSize before verifying it", async () => {
  const { host, guest, hostRelay } = await connection(undefined, { maxEnvelopeSize: 400 });
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await settle();
  const [hello] = hostRelay.seen;
  hostRelay.inject({ ...hello!, seq: 50, peerNonce: hello!.nonce, body: "x".repeat(200) });
  await settle();
  assertRefused(host.errors, /it is too large: at least 456 bytes of JSON, the limit is 400/);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling.send() rejects once maxQueuedMessages (default 256) wait for the peer", async () => {
  const [a] = MemorySignaling.createPair();
  const { host } = await ticketKeys();
  const lonely = new AuthenticatedSignaling(a, { key: host, role: "host" });
  const queued = Array.from({ length: 256 }, (_, n) => lonely.send(candidate(n)));
  await assert.rejects(lonely.send(candidate(256)), {
    name: "Error",
    message:
      /^Cannot send signalling message as 256 messages already wait for the other peer's hello: is the other peer connected/,
  });
  await lonely.close();
  const results = await Promise.allSettled(queued);
  assert.ok(results.every((result) => result.status === "rejected"));
  const small = new AuthenticatedSignaling(a, { key: host, role: "host", maxQueuedMessages: 1 });
  void small.send(OFFER).catch(() => {});
  await assert.rejects(small.send(OFFER), /1 messages already wait/);
  await small.close();
});

Deno.test("AuthenticatedSignaling.send() refuses messages that are not JSON objects with a type", async () => {
  const [a] = MemorySignaling.createPair();
  const { host } = await ticketKeys();
  const signaling = new AuthenticatedSignaling(a, { key: host, role: "host" });
  await assert.rejects(signaling.send(null as unknown as SignalingMessage), {
    name: "TypeError",
    message: /not an object with a string 'type'/,
  });
  await assert.rejects(signaling.send({ type: "x", n: 1n }), {
    name: "TypeError",
    message: /^Cannot send signalling message as it cannot be serialised as JSON: /,
  });
  const cyclic: Record<string, unknown> = { type: "x" };
  cyclic.self = cyclic;
  await assert.rejects(signaling.send(cyclic as SignalingMessage), TypeError);
  await signaling.close();
});

Deno.test("AuthenticatedSignaling constructor refuses a wrong key, role or limit", async () => {
  const [a] = MemorySignaling.createPair();
  const { host } = await ticketKeys();
  const aes = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt"]);
  const sha512 = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-512" }, false, [
    "sign",
    "verify",
  ]);
  const signOnly = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  for (const key of [aes, sha512, signOnly, undefined]) {
    assert.throws(() => new AuthenticatedSignaling(a, { key: key as CryptoKey, role: "host" }), {
      name: "TypeError",
      message: /^Cannot create authenticated signalling as 'key' is not an HMAC-SHA-256 CryptoKey/,
    });
  }
  assert.throws(
    () => new AuthenticatedSignaling(a, { key: host, role: "offerer" as "host" }),
    { name: "TypeError", message: /'role' is not "host" or "guest": received "offerer"/ },
  );
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => new AuthenticatedSignaling(a, { key: host, role: "host", maxQueuedMessages: bad }),
      { name: "RangeError", message: /'maxQueuedMessages' must be a positive integer/ },
    );
    assert.throws(
      () => new AuthenticatedSignaling(a, { key: host, role: "host", maxEnvelopeSize: bad }),
      { name: "RangeError", message: /'maxEnvelopeSize' must be a positive integer/ },
    );
  }
  await a.close();
});

Deno.test("AuthenticatedSignaling.start() twice throws; close() is idempotent and fires onclose once", async () => {
  const { host, guest } = await connection();
  await host.signaling.start();
  await assert.rejects(
    host.signaling.start(),
    /already started: the transport's connect\(\) starts it/,
  );
  await host.signaling.close();
  await host.signaling.close();
  await settle();
  assert.equal(host.closed, 1);
  assert.equal(guest.closed, 1); // the inner pair closed both ends
  await assert.rejects(host.signaling.send(OFFER), /authenticated signalling is closed/);
  await assert.rejects(guest.signaling.send(OFFER), /authenticated signalling is closed/);
});

Deno.test("AuthenticatedSignaling passes the inner signalling's errors through", async () => {
  const { host, hostRelay } = await connection();
  const problem = new Error("socket hiccup");
  hostRelay.onerror?.(problem);
  assert.deepEqual(host.errors, [problem]);
  await host.signaling.close();
});

/**
 * Runs `during` with `crypto.subtle[method]` wrapped to count its calls and
 * the most of them in flight at once, and puts the original back after.
 */
async function countSubtle(
  method: "sign" | "verify",
  during: () => Promise<void>,
): Promise<{ calls: number; most: number }> {
  const subtle = crypto.subtle as unknown as Record<
    "sign" | "verify",
    (...args: unknown[]) => Promise<unknown>
  >;
  const original = subtle[method];
  const counted = { calls: 0, most: 0 };
  let inFlight = 0;
  subtle[method] = async function (...args: unknown[]) {
    counted.calls++;
    counted.most = Math.max(counted.most, ++inFlight);
    try {
      return await original.apply(crypto.subtle, args);
    } finally {
      inFlight--;
    }
  };
  try {
    await during();
  } finally {
    subtle[method] = original;
  }
  return counted;
}

Deno.test("AuthenticatedSignaling verifies every received envelope with crypto.subtle.verify", async () => {
  // Constant time by construction: codes are never compared by hand.
  const { host, guest } = await connection();
  const { calls: verifications } = await countSubtle("verify", async () => {
    await Promise.all([host.signaling.start(), guest.signaling.start()]);
    await guest.signaling.send(OFFER);
    await host.signaling.send(ANSWER);
    await settle();
  });
  // Two hellos each way, then the offer and the answer.
  assert.equal(verifications, 6);
  assert.deepEqual(host.received, [OFFER]);
  assert.deepEqual(guest.received, [ANSWER]);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling verifies a burst of envelopes side by side and delivers them in order", async () => {
  const { host, guest, hostRelay } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await settle();
  // The next three arrive together, as an offer's candidates do.
  const held: SignalingMessage[] = [];
  hostRelay.rewrite = (message) => {
    held.push(message);
    return [];
  };
  for (let n = 1; n <= 3; n++) await guest.signaling.send(candidate(n));
  await settle();
  const { most } = await countSubtle("verify", async () => {
    hostRelay.rewrite = (message) => [message];
    for (const message of held) hostRelay.inject(message);
    await eventually(() => host.received.length === 4, "the burst to be delivered");
  });
  assert.equal(most, 3);
  assert.deepEqual(host.received, [OFFER, candidate(1), candidate(2), candidate(3)]);
  assert.deepEqual(host.errors, []);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling seals a burst of messages side by side and sends them in order", async () => {
  const { host, guest } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await settle();
  const { most } = await countSubtle("sign", async () => {
    // An offer's candidates, sent together.
    await Promise.all([1, 2, 3].map((n) => guest.signaling.send(candidate(n))));
  });
  await eventually(() => host.received.length === 4, "the burst to be delivered");
  assert.equal(most, 3);
  assert.deepEqual(host.received, [OFFER, candidate(1), candidate(2), candidate(3)]);
  assert.deepEqual(host.errors, []);
  await host.signaling.close();
});

Deno.test("AuthenticatedSignaling fuzz: random and mutated envelopes are refused with AuthenticationError only", async () => {
  const { host, guest, hostRelay } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await guest.signaling.send(OFFER);
  await guest.signaling.send(candidate(1));
  await settle();
  assert.deepEqual(host.received, [OFFER, candidate(1)]);
  const captured = hostRelay.seen.slice();
  const random = prng(42);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const values: unknown[] = [
    undefined,
    null,
    0,
    1,
    -1,
    2 ** 53,
    1.5,
    NaN,
    "",
    "sealed",
    "host",
    "guest",
    "A".repeat(22),
    "A".repeat(43),
    "x".repeat(70_000),
    "{}",
    '{"type":1}',
    [],
    {},
    { toString: null },
  ];
  const fields = ["type", "v", "role", "nonce", "seq", "peerNonce", "body", "mac", "from"];
  const started = performance.now();
  const cases = 5000;
  for (let i = 0; i < cases; i++) {
    let message: unknown;
    const mode = i % 3;
    if (mode === 0) {
      const base: Record<string, unknown> = { ...pick(captured) };
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
        const field = pick(fields);
        if (random() < 0.2) delete base[field];
        else if (random() < 0.5 && typeof base[field] === "string") {
          const text = base[field] as string;
          const at = Math.floor(random() * Math.max(1, text.length));
          base[field] = text.slice(0, at) + String.fromCharCode(Math.floor(random() * 128)) +
            text.slice(at + 1);
        } else base[field] = pick(values);
      }
      message = base;
    } else if (mode === 1) {
      message = Object.fromEntries(fields.map((field) => [field, pick(values)]));
    } else {
      message = pick([null, 0, "x", [], { type: "offer" }, { type: "sealed" }, pick(captured)]);
    }
    hostRelay.inject(message as SignalingMessage);
    if (i % 100 === 99) await settle();
  }
  await eventually(() => host.errors.length >= cases, "every injected envelope to be refused");
  assert.deepEqual(host.received, [OFFER, candidate(1)], "nothing new was delivered");
  assert.equal(host.errors.length, cases);
  for (const error of host.errors) {
    assert.ok(error instanceof AuthenticationError, `${error}`);
    assert.match(error.message, /^Refused signalling message as /);
  }
  assert.ok(performance.now() - started < 20_000, "fuzzing took too long");
  // And the connection still works.
  await guest.signaling.send(candidate(2));
  await settle();
  assert.deepEqual(host.received, [OFFER, candidate(1), candidate(2)]);
  await host.signaling.close();
});

/** A host whose hello was sealed before start, and a guest given it (or not) as its peer's hello. */
async function handedOver(
  options: { give?: boolean; keys?: { host: CryptoKey; guest: CryptoKey } },
) {
  const keys = await ticketKeys();
  const [a, b] = MemorySignaling.createPair();
  const hostRelay = new Relay(a);
  const guestRelay = new Relay(b);
  const prepared = await AuthenticatedSignaling.prepareHello({ key: keys.host, role: "host" });
  const hello = prepared.message;
  const host = end(hostRelay, { key: keys.host, role: "host", hello: prepared });
  const guest = end(guestRelay, {
    key: (options.keys ?? keys).guest,
    role: "guest",
    ...(options.give === false ? {} : { peerHello: hello }),
  });
  return { host, guest, hostRelay, guestRelay, hello };
}

Deno.test("AuthenticatedSignaling: with the host's hello handed over before start, the guest's offer names the host at once and the host's first envelope is its answer", async () => {
  const { host, guest, hostRelay, guestRelay, hello } = await handedOver({});
  assert.equal(hello.type, "sealed");
  assert.equal(hello.body, undefined);
  const offer = guest.signaling.send(OFFER);
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await offer;
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  // No bare hello from the guest: everything it sent names the host's nonce.
  assert.ok(hostRelay.seen.length >= 2, JSON.stringify(hostRelay.seen));
  for (const message of hostRelay.seen) assert.equal(message.peerNonce, hello.nonce);
  // Nothing from the host before its answer: its hello went with the invitation.
  assert.deepEqual(guestRelay.seen, []);
  await host.signaling.send(ANSWER);
  await settle();
  assert.deepEqual(guest.received, [ANSWER]);
  assert.equal(guestRelay.seen.length, 1);
  assert.deepEqual(sealedOf(guestRelay.seen, "answer").length, 1);
  // Both ends are bound: the guest's candidates after the answer arrive too.
  await guest.signaling.send(candidate(1));
  await settle();
  assert.deepEqual(host.received, [OFFER, candidate(1)]);
  assert.deepEqual(host.errors, []);
  assert.deepEqual(guest.errors, []);
  await host.signaling.close();
  await guest.signaling.close();
});

Deno.test("AuthenticatedSignaling: a guest that is not given the host's handed-over hello (an earlier version) still meets that host", async () => {
  const { host, guest } = await handedOver({ give: false });
  const offer = guest.signaling.send(OFFER);
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await offer;
  await settle();
  assert.deepEqual(host.received, [OFFER]);
  await host.signaling.send(ANSWER);
  await settle();
  assert.deepEqual(guest.received, [ANSWER]);
  assert.deepEqual(host.errors, []);
  assert.deepEqual(guest.errors, []);
  await host.signaling.close();
  await guest.signaling.close();
});

Deno.test("AuthenticatedSignaling: a handed-over hello under another key is refused, and the guest says a bare hello instead", async () => {
  const { guest } = await handedOver({ keys: await ticketKeys() });
  await guest.signaling.start();
  await settle();
  assertRefused(guest.errors, /authentication code does not match/);
  const [a, b] = MemorySignaling.createPair();
  const seen: SignalingMessage[] = [];
  a.onmessage = (message) => seen.push(message);
  await a.start?.();
  const keys = await ticketKeys();
  const lone = new AuthenticatedSignaling(b, {
    key: keys.guest,
    role: "guest",
    peerHello: { type: "sealed", v: 1 },
  });
  const errors: Error[] = [];
  lone.onerror = (error) => errors.push(error);
  await lone.start();
  await settle();
  assertRefused(errors, /./);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.peerNonce, undefined);
  assert.equal(seen[0]!.body, undefined);
  await lone.close();
  await a.close();
  await guest.signaling.close();
});

Deno.test("AuthenticatedSignaling.prepareHello() is refused with a key or role that is not valid, and its hello serves one end, of its own key and role", async () => {
  const keys = await ticketKeys();
  await assert.rejects(
    AuthenticatedSignaling.prepareHello({ key: keys.host, role: "peer" as "host" }),
    TypeError,
  );
  const hello = await AuthenticatedSignaling.prepareHello({ key: keys.host, role: "host" });
  const [a, c] = MemorySignaling.createPair();
  assert.throws(
    () => new AuthenticatedSignaling(a, { key: keys.guest, role: "host", hello }),
    /not prepared with this key and role/,
  );
  assert.throws(
    () => new AuthenticatedSignaling(a, { key: keys.host, role: "guest", hello }),
    /not prepared with this key and role/,
  );
  const host = new AuthenticatedSignaling(a, { key: keys.host, role: "host", hello });
  assert.throws(
    () => new AuthenticatedSignaling(c, { key: keys.host, role: "host", hello }),
    /already serves another connection/,
  );
  await host.close();
});

Deno.test("A prepared hello: the end built on it sends no hello of its own, the guest's offer answers it, and a second copy binds nothing on a confirmed end", async () => {
  const keys = await ticketKeys();
  const hello = await AuthenticatedSignaling.prepareHello({ key: keys.host, role: "host" });
  assert.equal(hello.message.seq, 0);
  assert.equal(hello.message.peerNonce, undefined);
  const [a, b] = MemorySignaling.createPair();
  const hostRelay = new Relay(a);
  const guestRelay = new Relay(b);
  const host = new AuthenticatedSignaling(hostRelay, { key: keys.host, role: "host", hello });
  const guest = new AuthenticatedSignaling(guestRelay, { key: keys.guest, role: "guest" });
  const offers: SignalingMessage[] = [];
  const hostErrors: Error[] = [];
  host.onmessage = (message) => offers.push(message);
  host.onerror = (error) => hostErrors.push(error);
  guest.onerror = () => {};
  await host.start();
  assert.equal(guestRelay.seen.length, 0, "no hello of the host's own on start()");
  await guest.start();
  // The hello reaches the guest another way (a room's waiting hello).
  await a.send(hello.message);
  await guest.send(OFFER);
  const deadline = Date.now() + 5_000;
  while (offers.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(offers, [OFFER]);
  assert.ok(guestRelay.seen.some((message) => message.mac === hello.message.mac));
  const offer = hostRelay.seen.find((message) => message.body !== undefined)!;
  assert.equal(offer.peerNonce, hello.message.nonce);
  // A second guest holding a copy of the same hello: its offer names the same
  // nonce but another connection's, and the confirmed host refuses it.
  const [c, d] = MemorySignaling.createPair();
  const other = new AuthenticatedSignaling(d, { key: keys.guest, role: "guest" });
  const forwarded: SignalingMessage[] = [];
  c.onmessage = (message) => forwarded.push(message);
  other.onerror = () => {};
  await c.start?.();
  await other.start();
  await c.send(hello.message);
  await other.send({ type: "offer", sdp: "v=0 other" });
  while (forwarded.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  for (const message of forwarded) hostRelay.inject(message);
  while (hostErrors.length < forwarded.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(offers, [OFFER]);
  assert.ok(hostErrors.every((error) => error instanceof AuthenticationError), String(hostErrors));
  // One prepared hello serves one end.
  assert.throws(
    () => new AuthenticatedSignaling(c, { key: keys.host, role: "host", hello }),
    /already serves another connection/,
  );
  await Promise.all([host.close(), guest.close(), other.close()]);
});

Deno.test("AuthenticatedSignaling: a guest handed a stale copy of the host's hello with its start sends no bare hello, and the host answers the hello that names another nonce", async () => {
  const keys = await ticketKeys();
  // The room's copy is of a hello the host's end no longer holds: the end that
  // serves this guest is built on a newer one, which never reached it.
  const stale = await AuthenticatedSignaling.prepareHello({ key: keys.host, role: "host" });
  const fresh = await AuthenticatedSignaling.prepareHello({ key: keys.host, role: "host" });
  const [a, b] = MemorySignaling.createPair();
  const hostRelay = new Relay(a);
  const guestRelay = new Relay(b);
  const host = end(hostRelay, { key: keys.host, role: "host", hello: fresh });
  const guest = end(guestRelay, { key: keys.guest, role: "guest" });
  await host.signaling.start();
  // Handed to the guest before its start, as a room hands it right behind the welcome.
  await a.send(stale.message);
  const offer = guest.signaling.send(OFFER);
  await guest.signaling.start();
  await offer;
  await eventually(() => host.received.length === 1, "the offer at the host");
  assert.deepEqual(host.received, [OFFER]);
  await host.signaling.send(ANSWER);
  await eventually(() => guest.received.length === 1, "the answer at the guest");
  assert.deepEqual(guest.received, [ANSWER]);
  // The guest said no bare hello: its first envelope answered the stale hello.
  assert.equal(hostRelay.seen[0]!.peerNonce, stale.message.nonce);
  assert.ok(hostRelay.seen.every((message) => message.peerNonce !== undefined));
  // Its offer went again to the host's own nonce once the host answered.
  const offers = sealedOf(hostRelay.seen, "offer");
  assert.deepEqual(offers.map((message) => message.peerNonce), [
    stale.message.nonce,
    fresh.message.nonce,
  ]);
  // Only the copy sealed for the stale nonce was refused; nothing else.
  assert.equal(host.errors.length, 1);
  assertRefused(host.errors, /answers another connection's nonce/);
  assert.deepEqual(guest.errors, []);
  await Promise.all([host.signaling.close(), guest.signaling.close()]);
});

Deno.test("AuthenticatedSignaling's relay pipe says it closed only after the messages that arrived before are delivered: a goodbye still being verified tells why", async () => {
  const { host, guest, hostRelay } = await connection();
  await Promise.all([host.signaling.start(), guest.signaling.start()]);
  await settle();
  // The room's pipe to the guest: it closes as the room tells of the guest's leaving.
  const events: string[] = [];
  let closePipe = () => {};
  (hostRelay as unknown as RelayCarrier).relayPipe = () => ({
    limits: { maxFrameBytes: 1024, bytesPerSecond: 1e6 },
    send: () => Promise.resolve(),
    listen: (handlers) => (closePipe = handlers.close),
    close: () => {},
  });
  host.signaling.onmessage = (message) => events.push(`message ${message.type}`);
  host.signaling.relayPipe().listen({
    message: () => {},
    error: () => {},
    close: () => events.push("pipe closed"),
  });
  // The goodbye arrives, and the leaving right after it, before its seal is checked.
  hostRelay.rewrite = (message) => {
    queueMicrotask(closePipe);
    return [message];
  };
  await guest.signaling.send({ type: "bye", reason: "refused a frame" });
  await eventually(() => events.length === 2, "the goodbye and the pipe's close");
  assert.deepEqual(events, ["message bye", "pipe closed"]);
  await guest.signaling.close();
  await host.signaling.close();
});
