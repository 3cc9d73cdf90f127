/**
 * The relay link's frames inside the seal: their kinds and header, the largest
 * message and frame, and the window a relay hello grants (see `link.ts` for
 * the layout and the flow control).
 *
 * @module
 */

import { RELAY_MIN_WINDOW } from "../constants.ts";
import { RELAY_TAG_BYTES } from "./crypto.ts";

/** The kinds of frame inside the seal (see `link.ts`). */
export const OPEN = 1;
export const TEXT = 2;
export const BINARY = 3;
export const CLOSE = 4;
export const END = 5;
export const CREDIT = 6;
/** A frame's kind (1 byte) and channel number (4 bytes). */
export const HEADER_BYTES = 5;
/**
 * The largest message a relayed channel carries in one frame: what a data
 * channel carries without negotiation. The framing layer chunks to it.
 */
export const RELAY_MAX_MESSAGE_SIZE = 65_536;
/** The largest relay frame: the smallest window a peer may grant ({@linkcode RELAY_MIN_WINDOW}). */
export const RELAY_MAX_FRAME_SIZE = RELAY_MAX_MESSAGE_SIZE + HEADER_BYTES + RELAY_TAG_BYTES;

/** The windows of a flow-controlled link (see the module doc). */
export interface RelayWindows {
  /** The window the other peer granted in its hello: what this side may have in flight. */
  readonly send: number;
  /** The window this side granted in its hello: what the other side may have in flight. */
  readonly receive: number;
}

/**
 * Reads the window of a relay hello.
 *
 * @returns The window in bytes; `undefined` if the hello has none (a peer of
 * an earlier version, without flow control); `null` if it is malformed (not a
 * safe integer of at least {@linkcode RELAY_MIN_WINDOW}).
 */
export function readRelayWindow(hello: Record<string, unknown>): number | undefined | null {
  const window = hello.window;
  if (window === undefined) return undefined;
  return typeof window === "number" && Number.isSafeInteger(window) && window >= RELAY_MIN_WINDOW
    ? window
    : null;
}

/** One frame before its seal: kind, channel, payload. */
export function plainFrame(kind: number, id: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(HEADER_BYTES + payload.byteLength);
  bytes[0] = kind;
  new DataView(bytes.buffer).setUint32(1, id);
  bytes.set(payload, HEADER_BYTES);
  return bytes;
}
