/**
 * The room over plain TCP for the worker's tests: an upgrade request written
 * by hand, and the server's WebSocket frames read back as bytes, so a test can
 * be a client that never reads, or send what no WebSocket client would.
 */
import { GUEST_KEY } from "./_peer.ts";

/** Resolves as `promise` does, or fails the test after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Expected ${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The chunks as one array. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Connects to `url`'s host and writes an upgrade request: `line`, `protocols` and `headers`. */
export async function sendUpgrade(
  url: string | URL,
  line: string,
  protocols: string[],
  headers: string[] = [],
): Promise<Deno.TcpConn> {
  const { hostname, port, host } = new URL(url);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  const request = [
    line,
    `Host: ${host}`,
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    `Sec-WebSocket-Protocol: ${protocols.join(", ")}`,
    ...headers,
    "",
    "",
  ].join("\r\n");
  await connection.write(new TextEncoder().encode(request));
  return connection;
}

/** A guest on a raw TCP connection that has sent its upgrade to `room` and read nothing yet. */
export function rawGuest(url: string | URL, room: string): Promise<Deno.TcpConn> {
  return sendUpgrade(url, `GET /v1/rooms/${room}?role=guest HTTP/1.1`, [
    "mcp-webrtc.v1",
    `mcp-webrtc.key.${GUEST_KEY}`,
  ]);
}

/**
 * Sends an upgrade request (as {@linkcode sendUpgrade}) and reads the whole
 * answer: its head and `content-length` bytes of body (none for `HEAD`).
 */
export async function upgradeAnswer(
  url: string | URL,
  line: string,
  protocols: string[],
  headers: string[] = [],
): Promise<{ status: number; text: string }> {
  const connection = await sendUpgrade(url, line, protocols, headers);
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(8192);
  let text = "";
  try {
    for (let i = 0; i < 1000; i++) {
      const read = await within(connection.read(buffer), 5_000, `an answer to ${line}`);
      if (read === null) break;
      chunks.push(buffer.slice(0, read));
      text = new TextDecoder().decode(concat(chunks));
      const bodyAt = text.indexOf("\r\n\r\n");
      const length = line.startsWith("HEAD ")
        ? 0
        : Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      if (bodyAt >= 0 && text.length - bodyAt - 4 >= length) break;
    }
  } finally {
    connection.close();
  }
  return { status: Number(text.split(" ")[1]), text };
}

/** A server frame read off a raw connection. */
export interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

/** What follows the HTTP response's head: the WebSocket's frames. */
export function bodyOf(bytes: Uint8Array): Uint8Array {
  const head = new TextDecoder().decode(bytes.subarray(0, 4096)).indexOf("\r\n\r\n");
  return head < 0 ? new Uint8Array() : bytes.slice(head + 4);
}

/** Parses the unmasked frames a server sent, as far as they are complete. */
export function parseFrames(bytes: Uint8Array): RawFrame[] {
  const frames: RawFrame[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let length = bytes[at + 1]! & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
      start = at + 4;
    } else if (length === 127) {
      length = Number(new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8).getBigUint64(0));
      start = at + 10;
    }
    if (start + length > bytes.length) break;
    frames.push({ opcode, payload: bytes.slice(start, start + length) });
    at = start + length;
  }
  return frames;
}

/** The JSON text frames among `frames`, parsed. */
export function textFrames(frames: RawFrame[]): Record<string, unknown>[] {
  return frames.filter((frame) => frame.opcode === 1).map((frame) =>
    JSON.parse(new TextDecoder().decode(frame.payload)) as Record<string, unknown>
  );
}
