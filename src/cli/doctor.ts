/**
 * `doctor`: from this machine, measures in a few seconds what an agent's
 * connection to it would go through, and says which path it would most
 * likely get: directly, through TURN, through the signalling room's relay,
 * or not at all, and why.
 *
 * What it measures, in order:
 * 1. the signalling service: `GET /health` over HTTP, then a room joined over
 *    WebSocket as a desktop does (with the time each took), and the room's
 *    TURN credentials (asked for where the room hands them out on request);
 * 2. UDP to every STUN server given and every one the room names, all from
 *    ONE local socket, so the public ports the NAT gave toward two
 *    destinations can be compared: the same port is an endpoint-independent
 *    mapping (hole punching works), a new port per destination a symmetric
 *    one (it rarely does); one destination is too few to tell;
 * 3. TURN over UDP, with the room's credentials (or `--ice-username` and
 *    `--ice-credential` for a TURN server given with `--ice-server`): a
 *    relay-only peer connection on node-datachannel that gathers a relay
 *    candidate proves the server allocated a relay;
 * 4. the room's relay: a guest joins the same room and sends the host one
 *    relay frame, as an agent without any UDP path would.
 *
 * The probes themselves are in `_doctor_probes.ts`; this module runs them,
 * reads the NAT's mapping and the verdict from their results, and prints the
 * report.
 *
 * About 450 lines: the report's types (the `--json` output, documented
 * field by field), the mapping and verdict as pure functions with their
 * examples, and the printing of the report, which read best side by side.
 *
 * @module
 */
import { DEFAULT_ICE_SERVERS, type IceServer } from "../peer.ts";
import { roomUrl } from "../signaling/room_protocol.ts";
import { createTicket, deriveTicketKeys } from "../ticket.ts";
import { parseFlags, transportOptions } from "./args.ts";
import { UsageError } from "../errors.ts";
import { ExitCode } from "./exit.ts";
import { escapeControls } from "./log.ts";
import { SIGNAL_ENV } from "./serve.ts";
import {
  joinRoom,
  localAddresses,
  type Probe,
  probeHttp,
  probeRelay,
  probeStun,
  probeTurn,
  type RelayProbe,
  type StunProbe,
  turnChecks,
  type TurnProbe,
} from "./_doctor_probes.ts";

export type { Probe, RelayProbe, StunProbe, TurnProbe };

/** The usage of `doctor`. */
export const DOCTOR_HELP = `Usage:
  mcp-webrtc doctor [options]

Checks, in a few seconds, what this machine can reach and which path an agent
would most likely get to it: the signalling service (HTTP and WebSocket), UDP
to the STUN servers and the mapping your NAT gives, the room's TURN server over
UDP, and the room's relay. Ends with one sentence: agents will reach you
directly / through TURN / through the room's relay / not at all, because ...

Options:
  --signal URL            The signalling service, e.g. wss://signal.example
                          (default: $${SIGNAL_ENV})
  --ice-server URL        A STUN or TURN server to check besides the room's (repeatable;
                          default: stun:stun.cloudflare.com:3478); two STUN servers on
                          different addresses are needed to tell the NAT's mapping
  --ice-username NAME     The username for the turn: servers given
  --ice-credential SECRET The credential for the turn: servers given
  --no-ice-servers        Check only the servers the room hands out
  --json                  Print one JSON object instead of the report
  -h, --help              Show this help

Exit codes: 0 if agents can reach you by some path, 3 if the signalling
service cannot be used, 4 if it can but no path is left.`;

const DOCTOR_FLAGS = {
  signal: { type: "string" },
  "ice-server": { type: "string", multiple: true },
  "ice-username": { type: "string" },
  "ice-credential": { type: "string" },
  "no-ice-servers": { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** The path an agent would most likely get: see {@linkcode DoctorReport}. */
export type Verdict = "direct" | "turn" | "relay" | "none";

/**
 * How this machine's NAT maps one local UDP port: the same public port toward
 * every destination (`endpoint-independent`: hole punching works), a new one
 * per destination (`symmetric`), no NAT at all (`none`: the public address is
 * this machine's own), or `unknown` (fewer than two destinations answered).
 */
export type Mapping = "endpoint-independent" | "symmetric" | "none" | "unknown";

/** What `doctor` measured, and its verdict (the `--json` output). */
export interface DoctorReport {
  /** The path an agent would most likely get. */
  verdict: Verdict;
  /** The verdict as one sentence, with its reason. */
  summary: string;
  /** The signalling service. */
  signal: {
    /** The URL checked. */
    url: string;
    /** `GET /health`, with its HTTP status when one came. */
    http: Probe & { status?: number };
    /** A room joined as a desktop: the time to its welcome. */
    websocket: Probe;
    /** The room's answer to the request for ICE servers, where it hands them out on request. */
    iceServers?: Probe;
    /** How many STUN/TURN URLs the room handed out (in its welcome, or on request). */
    handedOut: number;
  };
  /** Whether any STUN server answered over UDP. */
  udp: boolean;
  /** Every STUN server asked, in order. */
  stun: StunProbe[];
  /** How the NAT maps, from the answers of different destinations. */
  mapping: Mapping;
  /** Why the mapping is what it is, e.g. that one destination is too few to tell. */
  mappingNote: string;
  /** Every TURN server asked for a relay over UDP; others are listed in `turnSkipped`. */
  turn: TurnProbe[];
  /** TURN servers not checked, with why (TCP or TLS transport, no credentials). */
  turnSkipped: { url: string; why: string }[];
  /** The room's relay: a frame sent by a guest reached the host. */
  relay: RelayProbe;
  /** How long the whole run took, in milliseconds. */
  elapsedMs: number;
}

/**
 * Runs `doctor` and prints its report (or `--json`: one object) on stdout.
 *
 * @param args The arguments after `doctor`.
 * @returns `0` if agents can reach this machine by some path, `3` if the
 *   signalling service cannot be used, `4` if no other path is left.
 * @throws {UsageError} If the command line is malformed.
 *
 * @example Check the path agents would get through a signalling service
 * ```ts ignore
 * import { doctor } from "./doctor.ts";
 *
 * Deno.exit(await doctor(["--signal", "wss://signal.example"]));
 * ```
 */
export async function doctor(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, DOCTOR_FLAGS);
  if (values.help) {
    console.log(DOCTOR_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Cannot run doctor with arguments: received ${positionals.join(" ")}`);
  }
  const signal = values.signal ?? Deno.env.get(SIGNAL_ENV);
  if (!signal) {
    throw new UsageError(
      `Cannot run doctor as no signalling service is given: pass --signal wss://… or set ${SIGNAL_ENV}`,
    );
  }
  // TURN servers given are checked with their credentials; the usual check asks for them.
  const { iceServers } = transportOptions(values);
  const report = await diagnose(signal, iceServers ?? [...DEFAULT_ICE_SERVERS]);
  console.log(
    values.json
      ? JSON.stringify(
        report,
        (_key, value) => typeof value === "string" ? escapeControls(value) : value,
      )
      : formatReport(report),
  );
  if (report.verdict !== "none") return ExitCode.OK;
  return report.signal.websocket.ok ? ExitCode.CONNECT : ExitCode.SIGNALING;
}

/**
 * Measures everything and decides.
 *
 * @param signal The signalling service's URL.
 * @param given The STUN and TURN servers to check besides the room's.
 */
async function diagnose(signal: string, given: IceServer[]): Promise<DoctorReport> {
  const started = performance.now();
  let url: string;
  let keys: Awaited<ReturnType<typeof deriveTicketKeys>>;
  let ticket: Awaited<ReturnType<typeof createTicket>>;
  try {
    ticket = await createTicket({ url: signal });
    url = roomUrl(ticket);
    keys = await deriveTicketKeys(ticket);
  } catch (error) {
    throw new UsageError(
      `Cannot use the signalling URL "${signal}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  const http = probeHttp(signal);
  const room = await joinRoom(url, keys.hostKey!, keys.guestVerifier);
  const servers = [...given, ...(room.iceServers ?? [])];
  const stunUrls = [
    ...new Set(servers.flatMap((server) => [server.urls].flat()).filter((u) => /^stun:/i.test(u))),
  ];
  const { turn, turnSkipped } = turnChecks(given, room.iceServers ?? []);
  const [stun, turnProbes, relay] = await Promise.all([
    probeStun(stunUrls),
    Promise.all(turn.map(probeTurn)),
    room.host
      ? probeRelay(room.host, url, keys.guestKey, ticket.hostVerifier)
      : Promise.resolve(undefined),
  ]);
  await room.host?.close();
  const { mapping, mappingNote } = mappingOf(stun);
  const measured = {
    signal: {
      url: signal,
      http: await http,
      websocket: room.websocket,
      iceServers: room.asked,
      handedOut: (room.iceServers ?? []).flatMap((server) => [server.urls].flat()).length,
    },
    udp: stun.some((probe) => probe.ok),
    stun,
    mapping,
    mappingNote,
    turn: turnProbes,
    turnSkipped,
    relay: relay ??
      { ok: false, error: "not checked: the signalling service could not be used" },
  };
  const { verdict, summary } = verdictOf(measured);
  return { verdict, summary, ...measured, elapsedMs: Math.round(performance.now() - started) };
}

/**
 * Tells the NAT's mapping from the STUN answers of one socket: the same
 * public address and port from two destinations or more is an
 * endpoint-independent mapping, different ones a symmetric NAT.
 *
 * @param probes The STUN servers asked from one socket.
 * @param local This machine's own addresses (to tell a machine with no NAT).
 * @returns The mapping, and a sentence that says why.
 *
 * @example One destination is too few to tell
 * ```ts
 * import { mappingOf } from "./doctor.ts";
 * import assert from "node:assert/strict";
 *
 * const one = [{ url: "stun:a", ok: true, destination: "192.0.2.1:3478", mapped: "198.51.100.7:4000" }];
 * assert.equal(mappingOf(one, []).mapping, "unknown");
 * const two = [...one, { ...one[0], url: "stun:b", destination: "192.0.2.2:3478", mapped: "198.51.100.7:4100" }];
 * assert.equal(mappingOf(two, []).mapping, "symmetric");
 * ```
 */
export function mappingOf(
  probes: StunProbe[],
  local: string[] = localAddresses(),
): { mapping: Mapping; mappingNote: string } {
  const answered = probes.filter((probe) => probe.ok && probe.mapped && probe.destination);
  const addresses = new Set(answered.map((probe) => probe.mapped));
  if (answered.some((probe) => local.includes(probe.mapped!.replace(/:\d+$/, "")))) {
    return {
      mapping: "none",
      mappingNote: "the STUN servers see this machine's own address: no NAT in between",
    };
  }
  if (answered.length < 2) {
    return {
      mapping: "unknown",
      mappingNote: answered.length === 0
        ? "no STUN server answered"
        : "only one destination answered, too few to tell the mapping: give a second STUN server on another address with --ice-server",
    };
  }
  return addresses.size === 1
    ? {
      mapping: "endpoint-independent",
      mappingNote: `${answered.length} destinations saw the same public address and port, ${
        [...addresses][0]
      }`,
    }
    : {
      mapping: "symmetric",
      mappingNote: `${answered.length} destinations saw ${addresses.size} different public ports, ${
        [...addresses].join(", ")
      }: the NAT maps each destination to a port of its own`,
    };
}

/**
 * Decides the path an agent would most likely get from what was measured:
 * ICE tries a direct path first, then TURN; the room's relay is the last
 * resort of this module's peers.
 *
 * @param measured The measurements of a {@linkcode DoctorReport}.
 * @returns The verdict, and the sentence that gives it with its reason.
 *
 * @example UDP blocked, the room relays
 * ```ts
 * import { verdictOf } from "./doctor.ts";
 * import assert from "node:assert/strict";
 *
 * const { verdict, summary } = verdictOf({
 *   signal: {
 *     url: "wss://signal.example",
 *     http: { ok: true },
 *     websocket: { ok: true },
 *     handedOut: 0,
 *   },
 *   udp: false,
 *   stun: [{ url: "stun:stun.example:3478", ok: false, error: "no answer" }],
 *   mapping: "unknown",
 *   mappingNote: "no STUN server answered",
 *   turn: [],
 *   relay: { ok: true },
 * });
 * assert.equal(verdict, "relay");
 * assert.match(summary, /^Agents will reach you through the room's relay, because/);
 * ```
 */
export function verdictOf(
  measured: Pick<
    DoctorReport,
    "signal" | "udp" | "stun" | "mapping" | "mappingNote" | "turn" | "relay"
  >,
): { verdict: Verdict; summary: string } {
  const { signal, udp, stun, mapping, turn, relay } = measured;
  if (!signal.websocket.ok) {
    const http = signal.http.ok
      ? "it answers HTTP, but its rooms do not: "
      : signal.http.error
      ? `${signal.http.error}; `
      : "";
    return {
      verdict: "none",
      summary:
        `Agents will not reach you at all, because the signalling service at ${signal.url} cannot be used: ${http}${signal.websocket.error}`,
    };
  }
  const turnOk = turn.find((probe) => probe.ok);
  if (udp && mapping !== "symmetric") {
    const why = mapping === "none"
      ? "no NAT stands between this machine and the STUN servers (they see its own address)"
      : mapping === "endpoint-independent"
      ? "UDP reaches the STUN servers and your NAT keeps one public port for every destination (endpoint-independent mapping)"
      : `UDP reaches a STUN server (${measured.mappingNote})`;
    return {
      verdict: "direct",
      summary: `Agents will reach you directly, because ${why}${
        turnOk ? ", and TURN is there if their own network needs it" : ""
      }.`,
    };
  }
  const blocked = udp
    ? "your NAT gives each destination a public port of its own (symmetric), which defeats direct paths"
    : stun.length === 0
    ? "no STUN server was given or handed out, so UDP was not checked"
    : "no STUN server answered over UDP";
  if (turnOk) {
    return {
      verdict: "turn",
      summary:
        `Agents will reach you through TURN, because ${blocked}, and ${turnOk.url} allocated a relay over UDP.`,
    };
  }
  const noTurn = turn.length === 0
    ? "the room hands out no TURN server"
    : "no TURN server allocated a relay";
  if (relay.ok) {
    return {
      verdict: "relay",
      summary:
        `Agents will reach you through the room's relay, because ${blocked} and ${noTurn}; the room relayed a test frame.`,
    };
  }
  return {
    verdict: "none",
    summary:
      `Agents will not reach you at all, because ${blocked}, ${noTurn}, and the room's relay failed: ${relay.error}.`,
  };
}

/**
 * The report for people, in the manner of `tailscale netcheck`.
 *
 * @example The last line is the verdict
 * ```ts ignore
 * console.log(formatReport(report));
 * ```
 */
function formatReport(report: DoctorReport): string {
  const e = escapeControls;
  const probe = (p: Probe, good: string) => p.ok ? good : `failed: ${e(p.error ?? "")}`;
  const { signal } = report;
  const lines = [
    "Report:",
    `  * Signalling service: ${e(signal.url)}`,
    `      HTTP /health: ${probe(signal.http, `${signal.http.status} in ${signal.http.ms} ms`)}`,
    `      WebSocket: ${probe(signal.websocket, `joined a room in ${signal.websocket.ms} ms`)}`,
  ];
  if (signal.websocket.ok) {
    const asked = signal.iceServers;
    lines.push(
      `      ICE servers: ${
        asked && !asked.ok
          ? `asked for, failed: ${e(asked.error ?? "")}`
          : `${signal.handedOut} URLs handed out ${
            asked ? `on request in ${asked.ms} ms` : "in the welcome"
          }`
      }`,
    );
  }
  lines.push(`  * UDP: ${report.udp ? "yes" : "no"}`, "  * STUN:");
  for (const stun of report.stun) {
    lines.push(
      `      ${e(stun.url)}: ${
        probe(
          stun,
          `mapped to ${stun.mapped} in ${stun.ms} ms${
            stun.url.includes(stun.destination ?? "") ? "" : ` (asked at ${stun.destination})`
          }`,
        )
      }`,
    );
  }
  if (report.stun.length === 0) lines.push("      none given or handed out");
  lines.push(`  * Mapping: ${report.mapping} (${e(report.mappingNote)})`, "  * TURN over UDP:");
  for (const turn of report.turn) {
    lines.push(
      `      ${e(turn.url)} (${turn.credentials}'s credentials): ${
        probe(turn, `relay ${turn.relayed} allocated in ${turn.ms} ms`)
      }`,
    );
  }
  for (const skipped of report.turnSkipped) {
    lines.push(`      ${e(skipped.url)}: not checked, ${e(skipped.why)}`);
  }
  if (report.turn.length + report.turnSkipped.length === 0) lines.push("      none handed out");
  lines.push(
    `  * Room's relay: ${
      probe(
        report.relay,
        `a frame relayed in ${report.relay.ms} ms (${report.relay.bytesPerSecond} B/s per room, frames up to ${report.relay.maxFrameBytes} B)`,
      )
    }`,
    "",
    e(report.summary),
  );
  return lines.join("\n");
}
