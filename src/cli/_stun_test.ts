import assert from "node:assert/strict";
import { bindingRequest, MAGIC_COOKIE, readBindingResponse, transactionIdOf } from "./_stun.ts";

/** RFC 5769 §2.2: a success response carrying 192.0.2.1:32853 (with SOFTWARE, MESSAGE-INTEGRITY, FINGERPRINT). */
const RFC5769_IPV4 = bytes(
  "0101003c2112a442b7e7a701bc34d686fa87dfae" +
    "8022000b7465737420766563746f7220" +
    "002000080001a147e112a643" +
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7" +
    "80280004c07d4c96",
);
/** RFC 5769 §2.3: the same for 2001:db8:1234:5678:11:2233:4455:6677 port 32853. */
const RFC5769_IPV6 = bytes(
  "010100482112a442b7e7a701bc34d686fa87dfae" +
    "8022000b7465737420766563746f7220" +
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9" +
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41" +
    "80280004c8fb0b4c",
);
const ID = RFC5769_IPV4.slice(8, 20);

function bytes(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
}

/** A response of `type` with the given attributes (type, value), padded as STUN pads them. */
function response(type: number, attributes: [number, Uint8Array][], id = ID): Uint8Array {
  const body: number[] = [];
  for (const [attribute, value] of attributes) {
    body.push(attribute >> 8, attribute & 0xff, value.length >> 8, value.length & 0xff, ...value);
    while (body.length % 4) body.push(0);
  }
  const packet = new Uint8Array(20 + body.length);
  const view = new DataView(packet.buffer);
  view.setUint16(0, type);
  view.setUint16(2, body.length);
  view.setUint32(4, MAGIC_COOKIE);
  packet.set(id, 8);
  packet.set(body, 20);
  return packet;
}

Deno.test("readBindingResponse() reads RFC 5769's IPv4 and IPv6 test vectors", () => {
  assert.deepEqual(readBindingResponse(RFC5769_IPV4, ID), {
    family: 4,
    address: "192.0.2.1",
    port: 32853,
  });
  assert.deepEqual(readBindingResponse(RFC5769_IPV6, RFC5769_IPV6.slice(8, 20)), {
    family: 6,
    address: "2001:db8:1234:5678:11:2233:4455:6677",
    port: 32853,
  });
});

Deno.test("readBindingResponse() falls back to MAPPED-ADDRESS, which is not XOR'ed", () => {
  const mapped = new Uint8Array([0, 1, 0x0f, 0xa0, 198, 51, 100, 7]);
  assert.deepEqual(readBindingResponse(response(0x0101, [[0x0001, mapped]]), ID), {
    family: 4,
    address: "198.51.100.7",
    port: 4000,
  });
});

Deno.test("readBindingResponse() refuses malformed packets with a reason, never a crash", () => {
  const cases: [string, Uint8Array, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(0), ID, /0 bytes, shorter than a STUN header/],
    ["cut in its header", RFC5769_IPV4.slice(0, 19), ID, /19 bytes/],
    ["cut in its attributes", RFC5769_IPV4.slice(0, 40), ID, /says 60 bytes of attributes/],
    [
      "longer than its header says",
      new Uint8Array([...RFC5769_IPV4, 0, 0, 0, 0]),
      ID,
      /says 60 bytes of attributes but 64 follow/,
    ],
    ["without the magic cookie", patch(RFC5769_IPV4, 4, 0), ID, /magic cookie/],
    ["with the top bits set", patch(RFC5769_IPV4, 0, 0xc1), ID, /header is malformed/],
    ["with a length not a multiple of 4", lengthOf(RFC5769_IPV4, 59), ID, /header is malformed/],
    ["for another request", RFC5769_IPV4, new Uint8Array(12), /another request/],
    ["a binding request", bindingRequest(ID), ID, /not a binding response \(message type 0x0001\)/],
    [
      "with an attribute past the end",
      response(0x0101, [[0x0020, new Uint8Array(8)]]).slice(0, 28).map((b, i) => i === 3 ? 8 : b),
      ID,
      /runs past the end/,
    ],
    [
      "with an address of an unknown family",
      response(0x0101, [[0x0020, new Uint8Array([0, 3, 0, 0, 1, 2, 3, 4])]]),
      ID,
      /unknown family 3/,
    ],
    [
      "with an IPv4 address cut short",
      response(0x0101, [[0x0020, new Uint8Array([0, 1, 0, 0, 1, 2])]]),
      ID,
      /is 6 bytes, not 8/,
    ],
    [
      "with an IPv6 family but 4 address bytes",
      response(0x0101, [[0x0020, new Uint8Array([0, 2, 0, 0, 1, 2, 3, 4])]]),
      ID,
      /is 8 bytes, not 20/,
    ],
    ["without any address", response(0x0101, [[0x8022, bytes("6869")]]), ID, /no mapped address/],
    [
      "with an ERROR-CODE cut short",
      response(0x0111, [[0x0009, new Uint8Array([0, 0])]]),
      ID,
      /ERROR-CODE attribute is cut short/,
    ],
  ];
  for (const [what, packet, id, message] of cases) {
    assert.throws(
      () => readBindingResponse(packet, id),
      (error: Error) => {
        assert.ok(error instanceof TypeError, `${what}: ${error}`);
        assert.match(error.message, /^Cannot read the STUN response as /, what);
        assert.match(error.message, message, what);
        return true;
      },
      what,
    );
  }
});

Deno.test("readBindingResponse() reports an error response with the server's code and reason", () => {
  const reason = new TextEncoder().encode("Bad Request\x1b[2K");
  const packet = response(0x0111, [[0x0009, new Uint8Array([0, 0, 4, 0, ...reason])]]);
  assert.throws(
    () => readBindingResponse(packet, ID),
    // The reason is the server's text, quoted as it is; the report escapes it when printing.
    {
      message:
        "Cannot read the STUN response as the server refused the request: 400 Bad Request\x1b[2K",
    },
  );
  assert.throws(
    () => readBindingResponse(response(0x0111, []), ID),
    /refused the request: no reason given/,
  );
});

Deno.test("readBindingResponse() survives random bytes after a valid header", () => {
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff;
  for (let round = 0; round < 2_000; round++) {
    const length = 4 * (random() % 16);
    const packet = new Uint8Array(20 + length);
    packet.set(RFC5769_IPV4.subarray(0, 20));
    new DataView(packet.buffer).setUint16(2, length);
    for (let i = 20; i < packet.length; i++) packet[i] = random();
    try {
      const mapped = readBindingResponse(packet, ID);
      assert.ok(mapped.port >= 0 && mapped.port <= 65535);
    } catch (error) {
      assert.ok(error instanceof TypeError, String(error));
    }
  }
});

Deno.test("bindingRequest() writes 20 bytes that transactionIdOf() reads back", () => {
  const id = crypto.getRandomValues(new Uint8Array(12));
  const request = bindingRequest(id);
  assert.equal(request.length, 20);
  assert.deepEqual(transactionIdOf(request), id);
  assert.throws(() => bindingRequest(new Uint8Array(11)), RangeError);
  assert.equal(transactionIdOf(new Uint8Array(19)), undefined);
  assert.equal(transactionIdOf(patch(RFC5769_IPV4, 5, 0)), undefined);
  assert.equal(transactionIdOf(patch(RFC5769_IPV4, 0, 0x80)), undefined);
});

function patch(packet: Uint8Array, index: number, value: number): Uint8Array {
  const copy = packet.slice();
  copy[index] = value;
  return copy;
}

function lengthOf(packet: Uint8Array, length: number): Uint8Array {
  const copy = packet.slice();
  new DataView(copy.buffer).setUint16(2, length);
  return copy;
}
