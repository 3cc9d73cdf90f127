/**
 * Command-line parsing shared by the subcommands: durations, ICE options and
 * the usage error.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { IceServer, WebRTCTransportOptions } from "../webrtc_transport.ts";
import { DEFAULT_MAX_HTTP_SESSIONS, LOOPBACK_MTU } from "../constants.ts";
import { UsageError } from "../errors.ts";
import { originOf } from "./http.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `500ms`, `30s`, `15m`, `2h` or `7d`; a bare number
 * is seconds.
 *
 * @param text The duration as written on the command line.
 * @param flag The flag it was given to, for the error message.
 * @param options `allowZero`: whether `0` is accepted (e.g. "off").
 * @returns The duration in milliseconds.
 * @throws {UsageError} If the text is not a positive duration (or zero, where allowed).
 *
 * @example Durations in every unit
 * ```ts
 * import { parseDuration } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseDuration("1.5s"), 1_500);
 * assert.equal(parseDuration("10"), 10_000);
 * assert.equal(parseDuration("2h"), 7_200_000);
 * assert.equal(parseDuration("0", "--linger", { allowZero: true }), 0);
 * ```
 */
export function parseDuration(
  text: string,
  flag = "duration",
  options: { allowZero?: boolean } = {},
): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  const ms = match ? Math.round(Number(match[1]) * UNITS[match[2] ?? "s"]) : NaN;
  if (!(ms > 0 || (options.allowZero && ms === 0)) || !Number.isSafeInteger(ms)) {
    throw new UsageError(
      `Cannot read ${flag} as it must be a ${
        options.allowZero ? "" : "positive "
      }duration such as 500ms, 30s, 15m, 2h or 7d: received "${text}"`,
    );
  }
  return ms;
}

/**
 * Parses a positive integer flag value.
 *
 * @param text The value as written on the command line.
 * @param flag The flag it was given to, for the error message.
 * @returns The integer.
 * @throws {UsageError} If the text is not a positive integer.
 *
 * @example A count of agents
 * ```ts
 * import { parsePositiveInteger } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parsePositiveInteger("3", "--agents"), 3);
 * assert.throws(() => parsePositiveInteger("0", "--agents"));
 * ```
 */
export function parsePositiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(
      `Cannot read ${flag} as it must be a positive integer: received "${text}"`,
    );
  }
  return value;
}

/** The smallest `--mtu`: IPv4's minimum datagram every host must take. */
const MIN_MTU = 576;
/** The largest `--mtu`: libjuice receives into a 4096-byte buffer; larger packets never arrive. */
const MAX_MTU = 4155;

/**
 * Parses `--mtu`: an integer number of bytes from 576 to 4155.
 *
 * @throws {UsageError} If it is not.
 *
 * @example
 * ```ts
 * import { parseMtu } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseMtu("4000"), 4000);
 * assert.throws(() => parseMtu("9000"), /--mtu/);
 * ```
 */
export function parseMtu(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < MIN_MTU || value > MAX_MTU) {
    throw new UsageError(
      `Cannot read --mtu as it must be a whole number of bytes from ${MIN_MTU} to ${MAX_MTU}: received "${text}"`,
    );
  }
  return value;
}

/** The flags every subcommand that opens peer connections takes. */
export const NETWORK_FLAGS = {
  "ice-server": { type: "string", multiple: true },
  "ice-username": { type: "string" },
  "ice-credential": { type: "string" },
  "no-ice-servers": { type: "boolean" },
  "bind-address": { type: "string" },
  "relay-only": { type: "boolean" },
  mtu: { type: "string" },
  "connect-timeout": { type: "string" },
  quiet: { type: "boolean", short: "q" },
  "log-json": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

/** The help text of {@linkcode NETWORK_FLAGS}. */
export const NETWORK_HELP = `Network:
  --ice-server URL        A STUN or TURN server (repeatable), e.g. stun:stun.example:3478
                          or turn:turn.example:3478?transport=udp
                          (default: stun:stun.cloudflare.com:3478)
  --ice-username NAME     The username for the turn:/turns: servers
  --ice-credential SECRET The credential for the turn:/turns: servers
  --no-ice-servers        No STUN or TURN at all: peers on one host or LAN
  --bind-address ADDR     Use only this local address for peer connections, e.g. 127.0.0.1
  --relay-only            Connect only through TURN (hides this machine's addresses)
  --mtu BYTES             The largest packet this peer sends, ${MIN_MTU}-${MAX_MTU} (default: ${LOOPBACK_MTU}
                          with a loopback --bind-address when answering a peer of this
                          module on node-datachannel, else 1280, which fits every path)
  --connect-timeout DUR   How long to wait for a peer connection (default: 15s)

Output:
  -q, --quiet             Print no status lines on stderr, only errors
  --log-json              Print status lines on stderr as JSON, one object a line
  -h, --help              Show this help`;

/** The parsed values of {@linkcode NETWORK_FLAGS}. */
export interface NetworkValues {
  "ice-server"?: string[];
  "ice-username"?: string;
  "ice-credential"?: string;
  "no-ice-servers"?: boolean;
  "bind-address"?: string;
  "relay-only"?: boolean;
  mtu?: string;
  "connect-timeout"?: string;
}

/**
 * Turns the network flags into transport options.
 *
 * @param values The parsed flags.
 * @returns The ICE servers, RTC configuration and connect timeout to pass to a transport.
 * @throws {UsageError} If an ICE server URL is malformed or the flags contradict each other.
 *
 * @example Peers on one machine
 * ```ts
 * import { transportOptions } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * const options = transportOptions({ "no-ice-servers": true, "bind-address": "127.0.0.1" });
 * assert.deepEqual(options.iceServers, []);
 * assert.deepEqual(options.rtcConfiguration, { bindAddress: "127.0.0.1" });
 * ```
 */
export function transportOptions(
  values: NetworkValues,
): Pick<WebRTCTransportOptions, "iceServers" | "rtcConfiguration" | "connectTimeout"> {
  const options: Pick<
    WebRTCTransportOptions,
    "iceServers" | "rtcConfiguration" | "connectTimeout"
  > = {};
  const urls = values["ice-server"] ?? [];
  if (values["no-ice-servers"] && urls.length > 0) {
    throw new UsageError("Cannot use --no-ice-servers together with --ice-server: pick one");
  }
  if (values["no-ice-servers"]) options.iceServers = [];
  if (urls.length > 0) {
    options.iceServers = urls.map((url): IceServer => {
      if (!/^(stun|stuns|turn|turns):[^\s]+$/.test(url)) {
        throw new UsageError(
          `Cannot read --ice-server as it must be a stun:, stuns:, turn: or turns: URL: received "${url}"`,
        );
      }
      const turn = url.startsWith("turn");
      if (turn && (!values["ice-username"] || !values["ice-credential"])) {
        throw new UsageError(
          `Cannot use the TURN server ${url} without credentials: pass --ice-username and --ice-credential`,
        );
      }
      return turn
        ? { urls: url, username: values["ice-username"], credential: values["ice-credential"] }
        : { urls: url };
    });
  }
  const rtc: Record<string, unknown> = {};
  if (values["bind-address"]) rtc.bindAddress = values["bind-address"];
  if (values["relay-only"]) rtc.iceTransportPolicy = "relay";
  if (values.mtu !== undefined) rtc.mtu = parseMtu(values.mtu);
  if (Object.keys(rtc).length > 0) options.rtcConfiguration = rtc;
  if (values["connect-timeout"]) {
    options.connectTimeout = parseDuration(values["connect-timeout"], "--connect-timeout");
  }
  return options;
}

/** The flags of `connect --http` that bound who may use the endpoint and how much. */
export const HTTP_FLAGS = {
  "allow-origin": { type: "string", multiple: true },
  "allow-host": { type: "string", multiple: true },
  sessions: { type: "string" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

/** The help text of {@linkcode HTTP_FLAGS}. */
export const HTTP_HELP =
  `  --sessions N            With --http: the most sessions held at once; one more is refused
                          (503) until one is deleted or idle (default: ${DEFAULT_MAX_HTTP_SESSIONS})
  --allow-origin ORIGIN   With --http: also take requests from pages of ORIGIN, e.g.
                          https://app.example (repeatable; default: only pages on localhost,
                          127.0.0.1 or [::1], and clients that send no Origin)
  --allow-host NAME       With --http: also take requests that name the bridge NAME in Host
                          (repeatable; default: localhost and IP addresses only)`;

/** The parsed values of {@linkcode HTTP_FLAGS}. */
export interface HttpValues {
  "allow-origin"?: string[];
  "allow-host"?: string[];
  sessions?: string;
}

/**
 * Turns the `connect --http` flags into endpoint options.
 *
 * @param values The parsed flags.
 * @returns The most sessions, and the origins and host names allowed besides the local ones.
 * @throws {UsageError} If a value is malformed.
 *
 * @example A web app's origin and a name on the LAN
 * ```ts
 * import { httpOptions } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   httpOptions({ "allow-origin": ["https://App.example"], "allow-host": ["mcp.lan"], sessions: "8" }),
 *   { maxSessions: 8, allowedOrigins: ["https://app.example"], allowedHosts: ["mcp.lan"] },
 * );
 * assert.throws(() => httpOptions({ "allow-origin": ["*"] }), /--allow-origin/);
 * ```
 */
export function httpOptions(
  values: HttpValues,
): { maxSessions?: number; allowedOrigins: string[]; allowedHosts: string[] } {
  const allowedOrigins = (values["allow-origin"] ?? []).map((text) => {
    try {
      return originOf(text);
    } catch (error) {
      throw new UsageError(
        `Cannot read --allow-origin as it must be an origin, scheme://host[:port] such as https://app.example: received "${text}"`,
        { cause: error },
      );
    }
  });
  const allowedHosts = (values["allow-host"] ?? []).map((text) => {
    if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i.test(text)) {
      throw new UsageError(
        `Cannot read --allow-host as it must be a host name without a port, such as mcp.lan: received "${text}"`,
      );
    }
    return text.toLowerCase();
  });
  const options: { maxSessions?: number; allowedOrigins: string[]; allowedHosts: string[] } = {
    allowedOrigins,
    allowedHosts,
  };
  if (values.sessions !== undefined) {
    options.maxSessions = parsePositiveInteger(values.sessions, "--sessions");
  }
  return options;
}

/**
 * Parses a subcommand's arguments strictly with `node:util`'s `parseArgs`,
 * turning its errors into {@linkcode UsageError}s.
 *
 * @param args The arguments after the subcommand name.
 * @param options The flags the subcommand takes.
 * @returns The flag values and the positional arguments.
 * @throws {UsageError} For an unknown flag or a flag without its value.
 *
 * @example Parse a flag and a positional
 * ```ts
 * import { parseFlags } from "./args.ts";
 * import assert from "node:assert/strict";
 *
 * const { values, positionals } = parseFlags(["--http", ":8080", "TICKET"], {
 *   http: { type: "string" },
 * });
 * assert.equal(values.http, ":8080");
 * assert.deepEqual(positionals, ["TICKET"]);
 * ```
 */
export function parseFlags<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify.*$/s, ""), {
      cause: error,
    });
  }
}
