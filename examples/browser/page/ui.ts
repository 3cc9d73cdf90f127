/// <reference lib="dom" />
/**
 * What both panels of the page share: element look-up, the network settings
 * read from the page's address, and errors put into words.
 *
 * @module
 */
import { type IceServer, SignalingRoomError } from "../../../mod.ts";

/** The element with this id; a missing one is a bug of the page, said plainly. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The page has no element #${id}`);
  return element as T;
}

/** The wall-clock time, e.g. `10:04:12`. */
export function clock(): string {
  return new Date().toLocaleTimeString([], { hour12: false });
}

/** Network settings from the page's query string. */
export interface NetworkSettings {
  /** The signalling service to open rooms on (`?signal=`). */
  signal?: string;
  /**
   * The STUN and TURN servers (`?ice=none` for none: peers on one machine,
   * no traffic beyond it); `undefined` keeps the module's default.
   */
  iceServers?: IceServer[];
  /** Milliseconds to connect before giving up (`?timeout=`). */
  connectTimeout?: number;
}

/**
 * Reads `?signal=`, `?ice=` and `?timeout=`. `ice` is `none`, or a
 * comma-separated list of `stun:` URLs.
 */
export function readNetworkSettings(query: URLSearchParams): NetworkSettings {
  const settings: NetworkSettings = {};
  const signal = query.get("signal");
  if (signal) settings.signal = signal;
  const ice = query.get("ice");
  if (ice === "none") settings.iceServers = [];
  else if (ice) settings.iceServers = ice.split(",").map((urls) => ({ urls: urls.trim() }));
  const timeout = Number(query.get("timeout"));
  if (Number.isSafeInteger(timeout) && timeout > 0) settings.connectTimeout = timeout;
  return settings;
}

/** What the person reads for each way a room can refuse or fail. */
const ROOM_HINTS: Partial<Record<string, string>> = {
  key_refused:
    "The room refused this ticket's key: the ticket is not the one the desktop printed " +
    "(or its room was opened again with another): ask for a new ticket.",
  room_not_found:
    "There is no such room: the desktop is not sharing any more; ask for a new ticket.",
  room_full: "The room is full: the desktop serves its maximum of agents; try again later.",
  host_absent: "The desktop is not in its room: it stopped sharing, or is not running.",
  unreachable: "The signalling service cannot be reached: check its URL and your connection.",
};

/** A leading "Cannot connect" of a message, which the page says once itself. */
const CANNOT_CONNECT = /^Cannot connect(?: to the host| through signalling)?( as |: )/;

/**
 * An error in words for the page: its message, with a sentence for the ways
 * a room refuses us (and the room's own words on a second line).
 */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // A room's refusal may arrive wrapped, e.g. in the ConnectError of a transport.
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const hint = cause instanceof SignalingRoomError ? ROOM_HINTS[cause.code] : undefined;
    if (hint) return `${hint}\n(${cause.message.replace(CANNOT_CONNECT, "")})`;
  }
  return message;
}

/**
 * Why connecting to the desktop failed, in one sentence that says "Cannot
 * connect" once: `Cannot connect to the desktop as …` or `…: …`.
 */
export function describeConnectFailure(error: unknown): string {
  const text = describeError(error);
  const match = CANNOT_CONNECT.exec(text);
  return match
    ? `Cannot connect to the desktop${match[1]}${text.slice(match[0].length)}`
    : `Cannot connect to the desktop: ${text}`;
}
