import { prng } from "./_test_prng.ts";
import assert from "node:assert/strict";
import { createHash, hkdfSync } from "node:crypto";
import {
  assertTicketUsable,
  createGuestTicket,
  createTicket,
  deriveTicketKeys,
  formatTicket,
  guestDialKeys,
  isTicketExpired,
  keyVerifier,
  parseTicket,
  type Ticket,
  verifyKey,
} from "./ticket.ts";
import { pairRoomId } from "./signaling/room_protocol.ts";
import { TicketError } from "./errors.ts";
import { decodeBase64Url, encodeBase64Url, timingSafeEqual } from "./_base64url.ts";

const URL_ = "wss://signal.example.com/";
const encoder = new TextEncoder();

/** A ticket string with the given kind and raw payload text. */
function ticketWith(payload: string, kind = "guest"): string {
  return `mcpwebrtc1.${kind}.${encodeBase64Url(encoder.encode(payload))}`;
}

/** A valid payload object, to be altered by tests. */
function validPayload(): Record<string, unknown> {
  return { u: URL_, r: "A".repeat(22), s: "B".repeat(42) + "A" };
}

Deno.test("createTicket() makes a host ticket whose room id binds its host key's and guest key's verifiers", async () => {
  const ticket = await createTicket({ url: "wss://signal.example.com" });
  assert.equal(ticket.kind, "host");
  assert.equal(ticket.url, URL_);
  assert.match(ticket.room, /^[A-Za-z0-9_-]{43}$/);
  assert.match(ticket.secret, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(ticket.expiresAt, undefined);
  const { hostKey, guestVerifier } = await deriveTicketKeys(ticket);
  assert.equal(await keyVerifier(hostKey!), ticket.hostVerifier);
  assert.equal(await pairRoomId(ticket.hostVerifier!, guestVerifier), ticket.room);
  // The guest ticket carries the host verifier, so its holder can show it to the room.
  const guest = await createGuestTicket(ticket);
  assert.equal(guest.hostVerifier, ticket.hostVerifier);
  assert.equal((await deriveTicketKeys(guest)).guestVerifier, guestVerifier);
  const other = await createTicket({ url: "wss://signal.example.com" });
  assert.notEqual(other.secret, ticket.secret);
  assert.notEqual(other.room, ticket.room);
});

Deno.test("createTicket() normalises http(s) to ws(s) and accepts a URL object", async () => {
  assert.equal(
    (await createTicket({ url: "https://a.example/x?y=1" })).url,
    "wss://a.example/x?y=1",
  );
  assert.equal((await createTicket({ url: "http://127.0.0.1:8787" })).url, "ws://127.0.0.1:8787/");
  assert.equal((await createTicket({ url: new URL("ws://localhost:1") })).url, "ws://localhost:1/");
});

Deno.test("createTicket() without a url makes a signalling-only ticket whose keys host and guest share", async () => {
  const host = await createTicket();
  assert.equal(host.url, "");
  const guest = await createGuestTicket(host);
  const text = formatTicket(guest);
  assert.deepEqual(parseTicket(text), guest);
  const payload = JSON.parse(
    new TextDecoder().decode(decodeBase64Url(text.split(".")[2]!)),
  );
  assert.equal(Object.hasOwn(payload, "u"), false, "no signalling URL is written");
  const hostKeys = await deriveTicketKeys(host);
  const guestKeys = await deriveTicketKeys(parseTicket(text));
  assert.equal(guestKeys.guestKey, hostKeys.guestKey);
  assert.equal(parseTicket(ticketWith(JSON.stringify({ ...validPayload(), u: "" }))).url, "");
  // Tickets with a URL are what they were.
  assert.equal((await createTicket({ url: URL_ })).url, URL_);
});

Deno.test("roomUrl() refuses a signalling-only ticket with a TypeError that says what to do", async () => {
  const { roomUrl } = await import("./signaling/room_protocol.ts");
  assert.throws(
    () => roomUrl({ url: "", room: "A".repeat(22) }),
    (error: unknown) =>
      error instanceof TypeError && /signalling-only.*AuthenticatedSignaling/.test(error.message),
  );
});

Deno.test("createTicket() rounds the expiry down to the second", async () => {
  const ticket = await createTicket({
    url: URL_,
    expiresAt: new Date("2030-01-01T00:00:00.999Z"),
  });
  assert.deepEqual(ticket.expiresAt, new Date("2030-01-01T00:00:00Z"));
});

Deno.test("createTicket() refuses bad URLs and expiries", async () => {
  const cases: [Parameters<typeof createTicket>[0], typeof Error, RegExp][] = [
    [
      { url: "ftp://a.example" },
      TypeError,
      /scheme is not ws:, wss:, http: or https:: received "ftp:"/,
    ],
    [{ url: "not a url" }, TypeError, /is not a valid URL/],
    [{ url: "wss://user:pw@a.example" }, TypeError, /user name or password/],
    [{ url: "wss://a.example/#room" }, TypeError, /fragment/],
    [{ url: "wss://a.example/#" }, TypeError, /fragment/],
    [{ url: URL_, expiresAt: new Date(NaN) }, TypeError, /'expiresAt' is not a valid Date/],
    [{ url: URL_, expiresAt: new Date(-5000) }, RangeError, /'expiresAt' is out of range/],
    [{ url: URL_, expiresAt: new Date("+010000-01-01T00:00:00Z") }, RangeError, /out of range/],
  ];
  for (const [options, type, message] of cases) {
    await assert.rejects(createTicket(options), (error: Error) => {
      assert.ok(error instanceof type, `${error} for ${JSON.stringify(options)}`);
      assert.match(error.message, /^Cannot create ticket as /);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("formatTicket() and parseTicket() round-trip host and guest tickets", async () => {
  for (const expiresAt of [undefined, new Date("2031-02-03T04:05:06Z")]) {
    const host = await createTicket({ url: "wss://signal.example.com/base?x=1", expiresAt });
    const guest = await createGuestTicket(host);
    for (const ticket of [host, guest]) {
      const text = formatTicket(ticket);
      assert.match(text, new RegExp(`^mcpwebrtc2\\.${ticket.kind}\\.[A-Za-z0-9_-]+$`));
      assert.deepEqual(parseTicket(text), ticket);
      assert.equal(formatTicket(parseTicket(text)), text);
    }
  }
});

Deno.test("parseTicket() ignores whitespace anywhere, such as line wrapping", async () => {
  const ticket = await createGuestTicket(await createTicket({ url: URL_ }));
  const text = formatTicket(ticket);
  const wrapped = `\n  ${text.slice(0, 30)}\r\n${text.slice(30, 70)}\n\t${text.slice(70)}  \n`;
  assert.deepEqual(parseTicket(wrapped), ticket);
});

Deno.test("parseTicket() ignores unknown payload fields", () => {
  const ticket = parseTicket(ticketWith(JSON.stringify({ ...validPayload(), z: [1, 2] })));
  assert.deepEqual(ticket, {
    kind: "guest",
    ...{ url: URL_, room: "A".repeat(22) },
    secret: "B".repeat(42) + "A",
  });
});

Deno.test("parseTicket() refuses every malformed form with a TicketError that says what is wrong", () => {
  const with_ = (changes: Record<string, unknown>) =>
    ticketWith(JSON.stringify({ ...validPayload(), ...changes }));
  const without = (field: string) => {
    const payload = validPayload();
    delete payload[field];
    return ticketWith(JSON.stringify(payload));
  };
  const cases: [unknown, RegExp][] = [
    ["", /it is empty/],
    [" \n\t ", /it is empty/],
    ["hello", /does not start with "mcpwebrtc2\."/],
    ["mcp+webrtc://a.example/room#secret", /does not start with "mcpwebrtc2\."/],
    [ticketWith("{}").slice(1), /does not start with/],
    ["mcpwebrtc3.guest.e30", /version "mcpwebrtc3" is not supported/],
    [
      `mcpwebrtc2.guest.${encodeBase64Url(encoder.encode(JSON.stringify(validPayload())))}`,
      /no "h" field \(the host verifier\)/,
    ],
    [
      `mcpwebrtc2.guest.${
        encodeBase64Url(encoder.encode(JSON.stringify({ ...validPayload(), h: "C".repeat(42) })))
      }`,
      /host verifier is not 43 base64url characters/,
    ],
    ["mcpwebrtc1", /three dot-separated parts/],
    ["mcpwebrtc1.guest", /three dot-separated parts/],
    ["mcpwebrtc1.guest.e30.e30", /three dot-separated parts/],
    ["mcpwebrtc1.admin.e30", /kind is not "host" or "guest": received "admin"/],
    ["mcpwebrtc1.guest.", /payload is not base64url/],
    ["mcpwebrtc1.guest.e30=", /payload is not base64url/],
    ["mcpwebrtc1.guest.e3+/", /payload is not base64url/],
    ["mcpwebrtc1.guest.e31", /payload is not base64url/], // non-canonical last character
    ["mcpwebrtc1.guest.eyJ1", /payload is not JSON/], // "{"u"
    [`mcpwebrtc1.guest.${encodeBase64Url(new Uint8Array([0xff, 0xfe, 0x7b]))}`, /not UTF-8/],
    [ticketWith("[1,2]"), /payload is not a JSON object/],
    [ticketWith("null"), /payload is not a JSON object/],
    [ticketWith('"x"'), /payload is not a JSON object/],
    [without("r"), /no "r" field \(the room id\)/],
    [without("s"), /no "s" field \(the secret\)/],
    [with_({ u: 42 }), /"u" field \(the signalling URL\) is not a string/],
    [with_({ r: null }), /"r" field \(the room id\) is not a string/],
    [with_({ u: "ftp://a.example" }), /scheme is not ws:, wss:, http: or https:/],
    [with_({ u: "javascript:alert(1)" }), /scheme is not/],
    [with_({ u: "//a.example" }), /not a valid URL/],
    [with_({ u: "wss://u:p@a.example" }), /user name or password/],
    [with_({ u: "wss://a.example/#x" }), /fragment/],
    [with_({ u: `wss://a.example/${"x".repeat(2100)}` }), /URL is too long/],
    [with_({ r: "A".repeat(21) }), /room id is not 22 to 128 base64url characters: received 21/],
    [with_({ r: "A".repeat(129) }), /room id is not 22 to 128/],
    [with_({ r: "A".repeat(21) + "+" }), /room id is not 22 to 128/],
    [with_({ s: "B".repeat(42) }), /secret is not 32 bytes/],
    [with_({ s: "B".repeat(44) }), /secret is not 32 bytes/],
    [with_({ s: "B".repeat(43) }), /secret is not 32 bytes/], // non-canonical: trailing bits set
    [with_({ s: "B".repeat(42) + "=" }), /secret is not 32 bytes/],
    [with_({ e: "2030" }), /"e" field \(the expiry\)/],
    [with_({ e: 1.5 }), /"e" field \(the expiry\)/],
    [with_({ e: -1 }), /"e" field \(the expiry\)/],
    [with_({ e: 0 }), /"e" field \(the expiry\)/],
    [with_({ e: 1e20 }), /"e" field \(the expiry\)/],
    [with_({ e: null }), /"e" field \(the expiry\)/],
    [`mcpwebrtc1.guest.${"A".repeat(5000)}`, /too long: 5017 characters, the limit is 4096/],
    [42, /not a string: received number/],
    [undefined, /not a string: received undefined/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseTicket(text as string), (error: Error) => {
      assert.ok(error instanceof TicketError, `${error} for ${String(text).slice(0, 80)}`);
      assert.equal(error.name, "TicketError");
      assert.match(error.message, /^Cannot parse ticket as [^A-Z]/);
      assert.doesNotMatch(error.message, /\.$/);
      assert.match(error.message, message, `for ${String(text).slice(0, 80)}`);
      return true;
    });
  }
});

Deno.test("parseTicket() does not put the secret in its error messages", () => {
  const secret = "s3cr3t".repeat(7) + "X";
  try {
    parseTicket(ticketWith(JSON.stringify({ ...validPayload(), s: secret })));
    assert.fail("parsed");
  } catch (error) {
    assert.ok(error instanceof TicketError);
    assert.ok(!error.message.includes(secret));
  }
});

Deno.test("formatTicket() refuses a malformed ticket object", async () => {
  const good = await createTicket({ url: URL_ });
  const bad: [unknown, RegExp][] = [
    [{ ...good, kind: "admin" }, /kind is not "host" or "guest"/],
    [{ ...good, url: "ftp://x.example" }, /scheme/],
    [{ ...good, room: "short" }, /room id/],
    [{ ...good, secret: "short" }, /secret/],
    [{ ...good, expiresAt: new Date(NaN) }, /expiry/],
    [null, /not a ticket object/],
  ];
  for (const [ticket, message] of bad) {
    assert.throws(() => formatTicket(ticket as Ticket), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^Cannot format ticket as /);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("createGuestTicket() is deterministic and refuses a guest ticket", async () => {
  const host = await createTicket({ url: URL_, expiresAt: new Date("2030-01-01T00:00:00Z") });
  const guest = await createGuestTicket(host);
  assert.deepEqual(await createGuestTicket(host), guest);
  assert.equal(guest.kind, "guest");
  assert.equal(guest.url, host.url);
  assert.equal(guest.room, host.room);
  assert.deepEqual(guest.expiresAt, host.expiresAt);
  assert.notEqual(guest.secret, host.secret);
  await assert.rejects(createGuestTicket(guest), {
    name: "TypeError",
    message: /already a guest ticket/,
  });
});

Deno.test("isTicketExpired() and assertTicketUsable() check the expiry at the given time", async () => {
  const expiresAt = new Date("2030-01-01T00:00:00Z");
  const ticket = await createTicket({ url: URL_, expiresAt });
  const before = new Date("2029-12-31T23:59:59.999Z");
  assert.equal(isTicketExpired(ticket, before), false);
  assert.equal(isTicketExpired(ticket, expiresAt), true);
  assertTicketUsable(ticket, before);
  assert.throws(() => assertTicketUsable(ticket, expiresAt), {
    name: "TicketError",
    message:
      "Cannot use ticket as it expired at 2030-01-01T00:00:00.000Z: ask the host for a new one",
  });
  const forever = await createTicket({ url: URL_ });
  assert.equal(isTicketExpired(forever, new Date("9999-01-01T00:00:00Z")), false);
  assertTicketUsable(forever);
  // An expired ticket still parses, so that it can be shown.
  const old = await createTicket({ url: URL_, expiresAt: new Date("2001-01-01T00:00:00Z") });
  assert.deepEqual(parseTicket(formatTicket(old)).expiresAt, old.expiresAt);
  assert.equal(isTicketExpired(old), true);
});

async function macOf(key: CryptoKey): Promise<string> {
  return encodeBase64Url(
    new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode("probe"))),
  );
}

Deno.test("deriveTicketKeys() is deterministic, and host and guest agree", async () => {
  const host = await createTicket({ url: URL_ });
  const guest = await createGuestTicket(host);
  const a = await deriveTicketKeys(host);
  const b = await deriveTicketKeys(parseTicket(formatTicket(host)));
  const g = await deriveTicketKeys(guest);
  assert.equal(a.hostKey, b.hostKey);
  assert.equal(a.guestKey, b.guestKey);
  assert.equal(a.guestKey, g.guestKey);
  assert.equal(a.guestVerifier, g.guestVerifier);
  assert.equal(await macOf(a.signalingKey), await macOf(g.signalingKey));
  assert.equal(await macOf(a.signalingKey), await macOf(b.signalingKey));
  assert.equal(g.hostKey, undefined);
  assert.ok(!("hostKey" in g));
  assert.equal(a.signalingKey.extractable, false);
  assert.deepEqual([...a.signalingKey.usages].sort(), ["sign", "verify"]);
  assert.equal(a.guestVerifier, await keyVerifier(a.guestKey));
});

Deno.test("guestDialKeys() gives a guest the keys deriveTicketKeys() gives, and refuses a host ticket", async () => {
  const host = await createTicket({ url: URL_ });
  const guest = await createGuestTicket(host);
  const expected = await deriveTicketKeys(guest);
  const keys = guestDialKeys(guest);
  assert.equal(await keys.guestKey, expected.guestKey);
  const signalingKey = await keys.signalingKey;
  assert.equal(await macOf(signalingKey), await macOf(expected.signalingKey));
  assert.equal(signalingKey.extractable, false);
  assert.deepEqual([...signalingKey.usages].sort(), ["sign", "verify"]);
  assert.throws(() => guestDialKeys(host), TicketError);
  assert.throws(() => guestDialKeys({ ...guest, secret: "short" }), TypeError);
});

Deno.test("deriveTicketKeys() gives distinct keys, and different tickets different keys", async () => {
  const host = await createTicket({ url: URL_ });
  const other = await createTicket({ url: URL_ });
  const a = await deriveTicketKeys(host);
  const b = await deriveTicketKeys(other);
  const values = [
    host.secret,
    host.room,
    (await createGuestTicket(host)).secret,
    a.hostKey,
    a.guestKey,
    a.guestVerifier,
    await macOf(a.signalingKey),
    b.hostKey,
    b.guestKey,
    await macOf(b.signalingKey),
  ];
  assert.equal(new Set(values).size, values.length);
});

Deno.test("deriveTicketKeys() follows the documented HKDF table (checked against node:crypto)", async () => {
  const secretBytes = new Uint8Array(32).map((_, i) => i);
  const secret = encodeBase64Url(secretBytes);
  const hkdf = (ikm: Uint8Array, salt: string | Uint8Array, info: string) =>
    new Uint8Array(hkdfSync("sha256", ikm, salt, info, 32));
  const hostKey = encodeBase64Url(hkdf(secretBytes, new Uint8Array(), "mcp-webrtc/v1 host key"));
  const room = await keyVerifier(hostKey);
  const guestSecret = hkdf(secretBytes, room, "mcp-webrtc/v1 guest secret");
  const guestKey = encodeBase64Url(hkdf(guestSecret, room, "mcp-webrtc/v1 guest key"));
  const signalingBytes = hkdf(guestSecret, room, "mcp-webrtc/v1 signaling key");

  const host: Ticket = { kind: "host", url: URL_, room, secret };
  const keys = await deriveTicketKeys(host);
  assert.equal(keys.hostKey, hostKey);
  assert.equal(keys.guestKey, guestKey);
  assert.equal(keys.guestVerifier, await keyVerifier(guestKey));
  const expectedKey = await crypto.subtle.importKey(
    "raw",
    signalingBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  assert.equal(await macOf(keys.signalingKey), await macOf(expectedKey));
  assert.equal((await createGuestTicket(host)).secret, encodeBase64Url(guestSecret));

  // Pinned vectors: a change here breaks every ticket already handed out.
  assert.equal(room, "gjqLT_mAGVy00pv4TebYUQGHUaUoEan0ahyMsJXJ0BA");
  assert.equal(hostKey, "jhFnt0rB0isMcTvVFWFCRlmcgcZD8qumY9ec1xLjnRc");
  assert.equal(guestKey, "zxRRyA1F1Qtmi9F9caUMGxIa-LfhACrulbolUi7W8Wg");
});

Deno.test("a version 2 ticket's room id binds both verifiers, and its keys are salted with the host verifier (checked against node:crypto)", async () => {
  const secretBytes = new Uint8Array(32).map((_, i) => i);
  const secret = encodeBase64Url(secretBytes);
  const hkdf = (ikm: Uint8Array, salt: string | Uint8Array, info: string) =>
    new Uint8Array(hkdfSync("sha256", ikm, salt, info, 32));
  const sha = (text: string) => encodeBase64Url(createHash("sha256").update(text).digest());
  const hostKey = encodeBase64Url(hkdf(secretBytes, new Uint8Array(), "mcp-webrtc/v1 host key"));
  const hostVerifier = sha(hostKey);
  const guestSecret = hkdf(secretBytes, hostVerifier, "mcp-webrtc/v1 guest secret");
  const guestKey = encodeBase64Url(hkdf(guestSecret, hostVerifier, "mcp-webrtc/v1 guest key"));
  const room = sha(`mcp-webrtc/v2 room ${hostVerifier} ${sha(guestKey)}`);

  const host: Ticket = { kind: "host", url: URL_, room, hostVerifier, secret };
  const keys = await deriveTicketKeys(host);
  assert.equal(keys.hostKey, hostKey);
  assert.equal(keys.guestKey, guestKey);
  const guest = await createGuestTicket(host);
  assert.deepEqual(guest, {
    kind: "guest",
    url: URL_,
    room,
    hostVerifier,
    secret: encodeBase64Url(guestSecret),
  });
  assert.equal((await deriveTicketKeys(guest)).guestKey, guestKey);
  assert.equal(await guestDialKeys(guest).guestKey, guestKey);
  // A host ticket whose room id or host verifier was changed is refused.
  for (const altered of [{ ...host, room: sha("x") }, { ...host, hostVerifier: sha("x") }]) {
    await assert.rejects(deriveTicketKeys(altered), /room id does not match its host secret/);
  }
  // Pinned: a change here breaks every version 2 ticket already handed out.
  assert.equal(room, "UzMX_puPRCuiK6AmRxVp27yorBOBuiNzp5i8xj3wM5o");
});

Deno.test("a version 1 ticket is still made, read, and formatted as version 1", async () => {
  const made = await createTicket({ url: URL_, version: 1 });
  assert.equal(made.hostVerifier, undefined);
  assert.equal(await keyVerifier((await deriveTicketKeys(made)).hostKey!), made.room);
  await assert.rejects(
    createTicket({ url: URL_, version: 3 as 2 }),
    /'version' must be 1 or 2: received 3/,
  );
  const v2 = await createTicket({ url: URL_ });
  const { hostKey } = await deriveTicketKeys(v2);
  const v1: Ticket = { kind: "host", url: URL_, room: v2.hostVerifier!, secret: v2.secret };
  const text = formatTicket(v1);
  assert.match(text, /^mcpwebrtc1\.host\./);
  assert.deepEqual(parseTicket(text), v1);
  // Its room id is its host verifier, which also salts its keys: the same keys.
  const keys = await deriveTicketKeys(v1);
  assert.equal(keys.hostKey, hostKey);
  assert.equal(keys.guestKey, (await deriveTicketKeys(v2)).guestKey);
  const guest = await createGuestTicket(v1);
  assert.equal(guest.hostVerifier, undefined);
  assert.match(formatTicket(guest), /^mcpwebrtc1\.guest\./);
  // A later version 1 writer's "h" is not read.
  const payload = { u: URL_, r: v1.room, s: v1.secret, h: "C".repeat(43) };
  assert.equal(parseTicket(ticketWith(JSON.stringify(payload), "host")).hostVerifier, undefined);
});

Deno.test("a guest ticket cannot be turned into the host ticket", async () => {
  const host = await createTicket({ url: URL_ });
  const guest = await createGuestTicket(host);
  const { hostKey } = await deriveTicketKeys(host);
  // Relabelling a guest ticket as a host ticket does not yield the host key:
  // its room id is not the verifier of what it derives.
  const forged: Ticket = { ...guest, kind: "host" };
  await assert.rejects(deriveTicketKeys(forged), {
    name: "TicketError",
    message: /room id does not match its host secret/,
  });
  // And nothing a guest can derive is the host key.
  const g = await deriveTicketKeys(guest);
  assert.ok(![g.guestKey, g.guestVerifier, guest.secret].includes(hostKey!));
});

Deno.test("deriveTicketKeys() refuses a host ticket whose room id was changed", async () => {
  const host = await createTicket({ url: URL_ });
  await assert.rejects(deriveTicketKeys({ ...host, room: "A".repeat(43) }), TicketError);
  await assert.rejects(deriveTicketKeys({ ...host, secret: "x" }), {
    name: "TypeError",
    message: /^Cannot derive ticket keys as its secret/,
  });
});

Deno.test("keyVerifier() hashes the UTF-8 bytes of the key string", async () => {
  // SHA-256("abc"), RFC 6234.
  assert.equal(await keyVerifier("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      encoder.encode("Q7TvqG6l1Zj6iaV9BlpE4ZMI2kl3ZH0yVwa4eOOb0Qk"),
    ),
  );
  assert.equal(
    await keyVerifier("Q7TvqG6l1Zj6iaV9BlpE4ZMI2kl3ZH0yVwa4eOOb0Qk"),
    encodeBase64Url(digest),
  );
});

Deno.test("verifyKey() accepts the right key only, whatever the verifier's form", async () => {
  const verifier = await keyVerifier("key");
  assert.equal(await verifyKey("key", verifier), true);
  assert.equal(await verifyKey("kez", verifier), false);
  assert.equal(await verifyKey("key", verifier.slice(0, -1)), false);
  assert.equal(await verifyKey("key", ""), false);
  assert.equal(await verifyKey("key", "not base64url!"), false);
});

Deno.test("base64url helpers round-trip and refuse non-canonical text", () => {
  const random = prng(7);
  for (let length = 0; length < 70; length++) {
    const bytes = new Uint8Array(length).map(() => Math.floor(random() * 256));
    const text = encodeBase64Url(bytes);
    assert.match(text, /^[A-Za-z0-9_-]*$/);
    assert.deepEqual(decodeBase64Url(text), bytes);
  }
  assert.equal(encodeBase64Url(encoder.encode("hello?>")), "aGVsbG8_Pg");
  for (const bad of ["A", "AB=", "AB C", "AB+/", "AF", "AAB", "é"]) {
    assert.equal(decodeBase64Url(bad), undefined, bad);
  }
});

Deno.test("timingSafeEqual() compares correctly", () => {
  const b = (...values: number[]) => new Uint8Array(values);
  assert.equal(timingSafeEqual(b(), b()), true);
  assert.equal(timingSafeEqual(b(1, 2, 3), b(1, 2, 3)), true);
  assert.equal(timingSafeEqual(b(1, 2, 3), b(1, 2, 4)), false);
  assert.equal(timingSafeEqual(b(0, 2, 3), b(1, 2, 3)), false);
  assert.equal(timingSafeEqual(b(1, 2), b(1, 2, 0)), false);
  assert.equal(timingSafeEqual(b(1, 2, 0), b(1, 2)), false);
  assert.equal(timingSafeEqual(b(), b(0)), false);
  for (let bit = 0; bit < 8; bit++) {
    assert.equal(timingSafeEqual(b(1 << bit), b(0)), false);
  }
});

Deno.test("timingSafeEqual() reads every byte whatever the first difference (no early exit)", () => {
  const reads = (a: Uint8Array, b: Uint8Array) => {
    let count = 0;
    const spy = (bytes: Uint8Array) =>
      new Proxy(bytes, {
        get(target, property) {
          if (typeof property === "string" && /^\d+$/.test(property)) count++;
          const value = Reflect.get(target, property, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    timingSafeEqual(spy(a), spy(b));
    return count;
  };
  const base = new Uint8Array(32).fill(7);
  const differsFirst = base.slice();
  differsFirst[0] = 8;
  const differsLast = base.slice();
  differsLast[31] = 8;
  const same = reads(base, base.slice());
  assert.equal(same, 64);
  assert.equal(reads(base, differsFirst), same);
  assert.equal(reads(base, differsLast), same);
});

Deno.test("parseTicket() fuzz: random and mutated inputs only ever throw TicketError", async () => {
  const random = prng(20240601);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const host = await createTicket({ url: URL_, expiresAt: new Date("2030-01-01T00:00:00Z") });
  const seeds = [formatTicket(host), formatTicket(await createGuestTicket(host))];
  const alphabet = "mcpwebrtc1.hostguest" + "ABCabc019-_+/=. \n\t{}\"':,[]é\u0000\uffff\ud800";
  const payloadValues: unknown[] = [
    null,
    true,
    0,
    -1,
    1.5,
    1e308,
    "",
    "wss://a.example",
    "A".repeat(22),
    "B".repeat(43),
    [],
    {},
    { u: 1 },
    "\u0000",
    "ws://[::1]:1/",
  ];
  const started = performance.now();
  let parsed = 0;
  for (let i = 0; i < 5000; i++) {
    let text: string;
    const mode = i % 4;
    if (mode === 0) {
      text = Array.from({ length: Math.floor(random() * 80) }, () => pick([...alphabet])).join("");
    } else if (mode === 1) {
      const chars = [...pick(seeds)];
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) {
        const at = Math.floor(random() * chars.length);
        const action = Math.floor(random() * 3);
        if (action === 0) chars[at] = pick([...alphabet]);
        else if (action === 1) chars.splice(at, 1);
        else chars.splice(at, 0, pick([...alphabet]));
      }
      text = chars.join("");
    } else if (mode === 2) {
      const payload: Record<string, unknown> = validPayload();
      for (const key of ["u", "r", "s", "e", "x"]) {
        if (random() < 0.3) payload[key] = pick(payloadValues);
        if (random() < 0.1) delete payload[key];
      }
      text = ticketWith(JSON.stringify(payload), pick(["host", "guest", "x"]));
    } else {
      const bytes = new Uint8Array(Math.floor(random() * 200)).map(() =>
        Math.floor(random() * 256)
      );
      text = `mcpwebrtc1.${pick(["host", "guest"])}.${encodeBase64Url(bytes)}`;
    }
    try {
      const ticket = parseTicket(text);
      formatTicket(ticket); // anything that parses must format
      parsed++;
    } catch (error) {
      if (!(error instanceof TicketError)) {
        throw new Error(`parseTicket threw ${error} for ${JSON.stringify(text)}`);
      }
      assert.match(error.message, /^Cannot parse ticket as /);
    }
  }
  assert.ok(parsed > 0, "some mutated tickets stay valid");
  assert.ok(performance.now() - started < 10_000, "fuzzing took too long");
});
