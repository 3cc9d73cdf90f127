/**
 * The STUN binding request and response (RFC 8489, which keeps RFC 5389's
 * wire format) that `doctor` sends to learn the public address a NAT gives
 * this machine: a 20-byte request, and the `XOR-MAPPED-ADDRESS` (or the
 * older `MAPPED-ADDRESS`) of the success response.
 *
 * Written here rather than taken from a package: it is about a hundred lines,
 * and the STUN packages on npm either last changed years ago or bring four
 * dependencies of their own into a command line whose only dependencies are
 * node-datachannel and ws. Everything read from a packet is bounds-checked:
 * a malformed or hostile answer is an error, never a crash or a wrong address.
 *
 * @module
 */

/** The constant every RFC 5389 message carries in bytes 4 to 7. */
export const MAGIC_COOKIE = 0x2112a442;
/** The length of a STUN header, and of a binding request without attributes. */
const HEADER_LENGTH = 20;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const BINDING_ERROR = 0x0111;
const MAPPED_ADDRESS = 0x0001;
const ERROR_CODE = 0x0009;
const XOR_MAPPED_ADDRESS = 0x0020;

/** The address a STUN server saw a binding request come from. */
export interface MappedAddress {
  /** `4` or `6`. */
  family: 4 | 6;
  /** The address, e.g. `203.0.113.2` or `2001:db8::1`. */
  address: string;
  /** The port. */
  port: number;
}

/**
 * Writes a binding request with the given transaction id and no attributes.
 *
 * @param transactionId 12 random bytes that the response echoes.
 * @returns The 20-byte request.
 * @throws {RangeError} If the transaction id is not 12 bytes.
 *
 * @example A request starts with its type and the magic cookie
 * ```ts
 * import { bindingRequest } from "./_stun.ts";
 * import assert from "node:assert/strict";
 *
 * const request = bindingRequest(new Uint8Array(12).fill(7));
 * assert.equal(request.length, 20);
 * assert.deepEqual([...request.subarray(0, 8)], [0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
 * ```
 */
export function bindingRequest(transactionId: Uint8Array): Uint8Array<ArrayBuffer> {
  if (transactionId.length !== 12) {
    throw new RangeError(
      `Cannot write a STUN binding request as the transaction id must be 12 bytes: received ${transactionId.length}`,
    );
  }
  const packet = new Uint8Array(HEADER_LENGTH);
  const view = new DataView(packet.buffer);
  view.setUint16(0, BINDING_REQUEST);
  view.setUint16(2, 0);
  view.setUint32(4, MAGIC_COOKIE);
  packet.set(transactionId, 8);
  return packet;
}

/**
 * Reads the transaction id of a packet that looks like a STUN message, so a
 * response can be matched to its request before it is read in full.
 *
 * @returns The 12 bytes, or `undefined` if the packet is not a STUN message.
 *
 * @example Not STUN
 * ```ts
 * import { transactionIdOf } from "./_stun.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(transactionIdOf(new Uint8Array(4)), undefined);
 * ```
 */
export function transactionIdOf(packet: Uint8Array): Uint8Array | undefined {
  if (packet.length < HEADER_LENGTH || (packet[0] & 0xc0) !== 0) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  if (view.getUint32(4) !== MAGIC_COOKIE) return undefined;
  return packet.subarray(8, 20);
}

/**
 * Reads a binding response: the mapped address of a success response.
 *
 * @param packet The UDP payload received.
 * @param transactionId The id of the request it should answer.
 * @returns The address the server saw the request come from.
 * @throws {TypeError} If the packet is not a well-formed binding response to
 *   that request, carries no mapped address, or is an error response (the
 *   message then quotes the server's reason, which the caller must escape
 *   before printing it).
 *
 * @example The IPv4 response of RFC 5769's test vectors
 * ```ts
 * import { readBindingResponse } from "./_stun.ts";
 * import assert from "node:assert/strict";
 *
 * const hex = "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220" +
 *   "00200008" + "0001a147e112a643" +
 *   "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7" + "80280004c07d4c96";
 * const packet = new Uint8Array(hex.match(/../g)!.map((byte) => parseInt(byte, 16)));
 * const id = packet.slice(8, 20);
 * assert.deepEqual(readBindingResponse(packet, id), {
 *   family: 4,
 *   address: "192.0.2.1",
 *   port: 32853,
 * });
 * ```
 */
export function readBindingResponse(packet: Uint8Array, transactionId: Uint8Array): MappedAddress {
  const fail = (why: string): never => {
    throw new TypeError(`Cannot read the STUN response as ${why}`);
  };
  if (packet.length < HEADER_LENGTH) {
    fail(`it is ${packet.length} bytes, shorter than a STUN header (${HEADER_LENGTH})`);
  }
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const type = view.getUint16(0);
  const length = view.getUint16(2);
  if (view.getUint32(4) !== MAGIC_COOKIE) fail("it lacks the STUN magic cookie");
  if ((packet[0] & 0xc0) !== 0 || length % 4 !== 0) fail("its header is malformed");
  if (HEADER_LENGTH + length !== packet.length) {
    fail(`its header says ${length} bytes of attributes but ${packet.length - 20} follow`);
  }
  if (!sameBytes(packet.subarray(8, 20), transactionId)) {
    fail("it answers another request (its transaction id differs)");
  }
  if (type !== BINDING_SUCCESS && type !== BINDING_ERROR) {
    fail(`it is not a binding response (message type 0x${type.toString(16).padStart(4, "0")})`);
  }
  let xorMapped: MappedAddress | undefined;
  let mapped: MappedAddress | undefined;
  let error: string | undefined;
  for (let offset = HEADER_LENGTH; offset < packet.length;) {
    if (offset + 4 > packet.length) fail("an attribute header is cut short");
    const attribute = view.getUint16(offset);
    const size = view.getUint16(offset + 2);
    const start = offset + 4;
    if (start + size > packet.length) {
      fail(`attribute 0x${attribute.toString(16)} runs past the end of the message`);
    }
    const value = packet.subarray(start, start + size);
    if (attribute === XOR_MAPPED_ADDRESS && !xorMapped) {
      xorMapped = readAddress(value, packet.subarray(4, 20), fail);
    } else if (attribute === MAPPED_ADDRESS && !mapped) {
      mapped = readAddress(value, undefined, fail);
    } else if (attribute === ERROR_CODE && error === undefined) {
      if (size < 4) fail("its ERROR-CODE attribute is cut short");
      const code = (value[2] & 0x07) * 100 + value[3];
      const reason = new TextDecoder().decode(value.subarray(4)).slice(0, 128);
      error = `${code}${reason ? ` ${reason}` : ""}`;
    }
    offset = start + size + ((4 - (size % 4)) % 4);
  }
  if (type === BINDING_ERROR) fail(`the server refused the request: ${error ?? "no reason given"}`);
  return xorMapped ?? mapped ?? fail("it carries no mapped address");
}

/** An address attribute's value; XOR'ed with the cookie and transaction id if `mask` is given. */
function readAddress(
  value: Uint8Array,
  mask: Uint8Array | undefined,
  fail: (why: string) => never,
): MappedAddress {
  const family = value[1];
  const size = family === 0x01 ? 4 : family === 0x02 ? 16 : fail(
    `its address attribute has the unknown family ${family}`,
  );
  if (value.length !== 4 + size) {
    fail(`its address attribute is ${value.length} bytes, not ${4 + size}`);
  }
  // The port is XOR'ed with the cookie's first two bytes, the address with the
  // cookie (IPv4) or the cookie and the transaction id (IPv6).
  const port = ((value[2] ^ (mask?.[0] ?? 0)) << 8) | (value[3] ^ (mask?.[1] ?? 0));
  const raw = value.slice(4, 4 + size);
  if (mask) { for (let i = 0; i < raw.length; i++) raw[i] ^= mask[i]; }
  if (size === 4) return { family: 4, address: raw.join("."), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((raw[i] << 8) | raw[i + 1]).toString(16));
  return { family: 6, address: groups.join(":"), port };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
