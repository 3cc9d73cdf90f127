/**
 * `connect`: on the agent's side, dials the desktop with a ticket and exposes
 * its MCP server as stdio (this process's stdin and stdout) or as a local
 * Streamable HTTP endpoint.
 *
 * @module
 */
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { settle } from "../_async.ts";
import { CLI_STOP_TIMEOUT } from "../constants.ts";
import { TicketSignaling } from "../signaling/ticket_signaling.ts";
import { assertTicketUsable, parseTicket, type Ticket } from "../ticket.ts";
import { TicketError } from "../errors.ts";
import { WebRTCConnection } from "../webrtc_connection.ts";
import {
  HTTP_FLAGS,
  HTTP_HELP,
  httpOptions,
  NETWORK_FLAGS,
  NETWORK_HELP,
  parseDuration,
  parseFlags,
  transportOptions,
} from "./args.ts";
import { UsageError } from "../errors.ts";
import { bridge, type BridgeOptions, type BridgeSide } from "./bridge.ts";
import { ExitCode, exitCodeFor, waitForStop } from "./exit.ts";
import { serveHttp, type ServeHttpOptions } from "./http.ts";
import { pathName, pathType, StatusLog } from "./log.ts";
import { reportPath } from "./path_status.ts";
import { StreamTransport } from "./stdio.ts";

/** The environment variable read when no ticket is given on the command line. */
export const TICKET_ENV = "MCP_WEBRTC_TICKET";

/** The usage of `connect`. */
export const CONNECT_HELP = `Usage:
  mcp-webrtc connect [options] <ticket>                  speak MCP on stdin/stdout
  mcp-webrtc connect [options] --http HOST:PORT <ticket> serve Streamable HTTP at /mcp

Dials the desktop that printed the ticket and exposes its MCP server: on stdio
(so any MCP client can launch this as its server command; stdout carries only
JSON-RPC, status lines go to stderr), or with --http as a local Streamable HTTP
endpoint. All HTTP sessions share one connection to the desktop, dialled when the
first session starts: each session is a data channel of its own on it (and its
own server on the desktop). DELETE or --session-idle closes a session's channel;
after the last session closes, the connection stays up for --linger so that the
next session opens at once.

The ticket can also come from --ticket-file or $${TICKET_ENV}.

Options:
  --http HOST:PORT        Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio
                          (HOST defaults to 127.0.0.1; port 0 picks one; the URL is
                          printed as the first line on stdout)
  --ticket-file FILE      Read the ticket from FILE
  --session-idle DURATION With --http: close a session after this long without any open
                          request or stream (default: 10m)
  --linger DURATION       With --http: keep the connection this long after its last
                          session closed (default: 30s; 0 closes it with the last one)
${HTTP_HELP}
  --wait DURATION         How long to wait for the desktop to be in its room (default: 30s)

${NETWORK_HELP}`;

const CONNECT_FLAGS = {
  ...NETWORK_FLAGS,
  ...HTTP_FLAGS,
  http: { type: "string" },
  "ticket-file": { type: "string" },
  wait: { type: "string" },
  "session-idle": { type: "string" },
  linger: { type: "string" },
} as const;

/**
 * Runs `connect` until the MCP client leaves (stdin ends), the connection is
 * lost, or SIGINT/SIGTERM.
 *
 * @param args The arguments after `connect`.
 * @returns The exit code.
 * @throws {UsageError} If the command line is malformed.
 * @throws {TicketError} If the ticket is malformed, expired or a host ticket.
 *
 * @example Speak MCP on stdio to the desktop of a ticket
 * ```ts ignore
 * import { connect } from "./connect.ts";
 *
 * Deno.exit(await connect([Deno.env.get("MCP_WEBRTC_TICKET")!]));
 * ```
 */
export async function connect(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, CONNECT_FLAGS);
  if (values.help) {
    console.log(CONNECT_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 1) {
    throw new UsageError(
      `Cannot connect as only one ticket may be given: received ${positionals.length} arguments`,
    );
  }
  let text: string | undefined = positionals[0];
  if (text === undefined && values["ticket-file"]) {
    text = await Deno.readTextFile(values["ticket-file"]);
  }
  text ??= Deno.env.get(TICKET_ENV);
  if (text === undefined || text.trim() === "") {
    throw new UsageError(
      `Cannot connect as no ticket is given: pass it as an argument, with --ticket-file, or in ${TICKET_ENV}`,
    );
  }
  const ticket = parseTicket(text);
  if (ticket.kind !== "guest") {
    throw new TicketError(
      "Cannot connect with a host ticket: it must stay on the desktop; use the guest ticket that serve printed",
    );
  }
  assertTicketUsable(ticket);
  const network = transportOptions(values);
  const hostTimeout = values.wait ? parseDuration(values.wait, "--wait") : undefined;
  const log = new StatusLog({ quiet: values.quiet, json: values["log-json"] });
  // The connect timeout starts once the desktop is in its room (after --wait).
  const signaling = () => new TicketSignaling(ticket, { hostTimeout });
  if (values.http !== undefined) {
    const sessionIdle = values["session-idle"]
      ? parseDuration(values["session-idle"], "--session-idle")
      : undefined;
    const linger = values.linger !== undefined
      ? parseDuration(values.linger, "--linger", { allowZero: true })
      : undefined;
    // One connection for every HTTP session, dialled when the first one starts.
    const connection = new WebRTCConnection({ signaling, linger, ...network });
    return await connectHttp(
      { ...parseAddress(values.http), sessionIdle, ...httpOptions(values) },
      connection,
      log,
      ticket,
    );
  }
  // One session; a connection of its own, so that it can be dialled again
  // and the session resumed when the path is lost.
  return await connectStdio(
    new WebRTCConnection({ signaling, linger: 0, ...network }),
    log,
    ticket,
  );
}

/** Prints a connection's resume: the path lost, each redial, the resume and its failure. */
function reportResume(connection: WebRTCConnection, log: StatusLog): void {
  connection.onpathlost = (error) =>
    log.warn(
      "path-lost",
      `Lost the path to the desktop (${error.message}): dialling it again to resume the session`,
      { reason: error.message },
    );
  connection.onresumeattempt = (attempt, previous) => {
    const why = previous ? `; the last one failed: ${previous.message}` : "";
    log.info("resume-attempt", `Dialling the desktop again (attempt ${attempt}${why})`, {
      attempt,
      ...(previous ? { reason: previous.message } : {}),
    });
  };
  connection.onresume = ({ path, ms }) =>
    log.info("resumed", `Resumed via ${pathName(path)} after ${ms} ms`, {
      ms,
      path: pathType(path),
    });
  connection.onresumefail = (error) =>
    log.error("resume-failed", `Cannot resume: ${error.message}`, { reason: error.message });
}

function endMessage(side: BridgeSide, cause?: Error): string {
  if (side === "a") return "The MCP client left";
  return cause
    ? `Cannot reach the remote MCP server: ${cause.message}`
    : "The connection to the remote MCP server closed";
}

async function connectStdio(connection: WebRTCConnection, log: StatusLog, ticket: Ticket) {
  log.info("connecting", `Connecting to the desktop through ${ticket.url}`, { url: ticket.url });
  reportResume(connection, log);
  const remote = connection.openTransport();
  const local = new StreamTransport(Deno.stdin.readable, Deno.stdout.writable);
  let connected = false;
  const ended = new Promise<{ first: BridgeSide; cause?: Error }>((resolve) => {
    const running = bridge(local, remote, {
      endMessage,
      onerror: (side, error) =>
        log.warn(side === "a" ? "client-error" : "connection-error", error.message),
      onclose: (first, cause) => resolve({ first, cause }),
    });
    running.started.then(async () => {
      connected = true;
      await reportPath(connection, log, {
        event: "connected",
        connected: (via) => `Connected via ${via}`,
        changed: (via, was) => `The path to the desktop changed: now via ${via} (was ${was})`,
      });
    }, () => {});
  });
  const stop = await waitForStop(ended);
  if (stop.kind === "signal") {
    await settle(
      Promise.allSettled([remote.close().finally(() => connection.close()), local.close()]),
      CLI_STOP_TIMEOUT,
    );
    log.info("stopped", `Stopped on ${stop.signal}`);
    return ExitCode.OK;
  }
  const { first, cause } = stop.value;
  // The process exits once this returns: the other peer is told, and the
  // connection released, first (else the desktop may take the agent as lost
  // and keep its session for a redial).
  await settle(connection.close(), CLI_STOP_TIMEOUT);
  if (first === "a") {
    log.info("done", "The MCP client closed stdin; disconnected");
    return ExitCode.OK;
  }
  if (cause) {
    log.error("connect-failed", `Cannot connect to the desktop: ${cause.message}`, {
      code: exitCodeFor(cause),
    });
    return exitCodeFor(cause) === ExitCode.FAILURE ? ExitCode.CONNECT : exitCodeFor(cause);
  }
  log.error(
    "connection-lost",
    connected
      ? "The connection to the desktop closed"
      : "The connection to the desktop closed before it opened",
  );
  return ExitCode.CONNECTION_LOST;
}

async function connectHttp(
  address: Pick<
    ServeHttpOptions,
    "hostname" | "port" | "sessionIdle" | "maxSessions" | "allowedOrigins" | "allowedHosts"
  >,
  connection: WebRTCConnection,
  log: StatusLog,
  ticket: Ticket,
) {
  let sessions = 0;
  const exposed = exposureWarning(address.hostname);
  if (exposed) log.warn("http-exposed", exposed, { hostname: address.hostname });
  reportResume(connection, log);
  connection.onconnectstep = (step) => {
    if (step !== "channel") return;
    void reportPath(connection, log, {
      event: "connected",
      connected: (via) => `Connected to the desktop via ${via}`,
      changed: (via, was) => `The path to the desktop changed: now via ${via} (was ${was})`,
    });
  };
  connection.ondisconnect = (error) =>
    log.info(
      "disconnected",
      `Disconnected from the desktop: ${error?.message ?? "no session open"}`,
    );
  const endpoint = serveHttp({
    ...address,
    dial: (): Transport => connection.openTransport(),
    bridge: (sessionId): BridgeOptions => {
      const number = ++sessions;
      return {
        endMessage,
        onerror: (side, error) =>
          log.warn(
            side === "a" ? "client-error" : "connection-error",
            `Session ${number}: ${error.message}`,
            { session: number },
          ),
        onclose: (first, cause) =>
          log.info(
            "session-closed",
            `Session ${number} ended: ${
              first === "a"
                ? cause ? cause.message : "the HTTP client closed it"
                : cause
                ? `cannot reach the desktop: ${cause.message}`
                : "the connection to the desktop closed"
            }`,
            { session: number, sessionId: sessionId() },
          ),
      };
    },
    onerror: (error) =>
      log.error("http-error", `Cannot answer an HTTP request: ${error.message}`, {
        reason: error.message,
      }),
    onlisten: (url) => {
      void Deno.stdout.write(new TextEncoder().encode(url + "\n"));
      log.info(
        "listening",
        `Serving Streamable HTTP at ${url}; sessions share one connection to the desktop through ${ticket.url}`,
        { url },
      );
    },
  });
  const stop = await waitForStop(new Promise<never>(() => {}));
  await settle(
    endpoint.close().finally(() => connection.close()),
    CLI_STOP_TIMEOUT,
  );
  log.info("stopped", `Stopped on ${stop.kind === "signal" ? stop.signal : "request"}`);
  return ExitCode.OK;
}

/**
 * The warning `connect --http` prints when it listens on an address other
 * than this machine's loopback interface (`0.0.0.0`, `::`, a LAN address, a
 * name other than `localhost`): any host that reaches it there can open
 * sessions, so use the desktop's tools; `undefined` for a loopback address.
 *
 * @param hostname The address `--http` listens on, as {@linkcode parseAddress} gives it.
 * @returns The warning, or `undefined`.
 *
 * @example Loopback addresses need no warning
 * ```ts
 * import { exposureWarning } from "./connect.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(exposureWarning("127.0.0.1"), undefined);
 * assert.equal(exposureWarning("::1"), undefined);
 * assert.match(exposureWarning("0.0.0.0")!, /any host that can reach this machine/);
 * ```
 */
export function exposureWarning(hostname: string): string | undefined {
  const name = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  const loopback = name === "localhost" || name === "::1" ||
    /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
  if (loopback) return undefined;
  return `Serving Streamable HTTP on ${
    JSON.stringify(hostname)
  }, which is not a loopback address: any host that can reach this machine there can open sessions and use the desktop's tools; listen on 127.0.0.1 unless that is meant`;
}

/**
 * Parses `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); IPv6 hosts in brackets.
 *
 * @param text The address as given to `--http`.
 * @returns The host name and port.
 * @throws {UsageError} If the port is not an integer from 0 to 65535.
 *
 * @example Addresses
 * ```ts
 * import { parseAddress } from "./connect.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseAddress("8080"), { hostname: "127.0.0.1", port: 8080 });
 * assert.deepEqual(parseAddress("[::1]:0"), { hostname: "::1", port: 0 });
 * ```
 */
export function parseAddress(text: string): { hostname: string; port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:]*):)?(\d+)$/.exec(text.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(
      `Cannot read --http as it must be HOST:PORT, :PORT or PORT with a port from 0 to 65535: received "${text}"`,
    );
  }
  const hostname = (match[1] ?? "").replace(/^\[|\]$/g, "") || "127.0.0.1";
  return { hostname, port };
}
