/**
 * `serve`: on the desktop, opens a signalling room, prints the guest ticket
 * and, for each MCP session an agent opens (an agent holds one connection and
 * any number of sessions on it), bridges it to its own MCP server: a child
 * process speaking stdio, or a session with a Streamable HTTP server.
 *
 * Its parts live beside it: the bridge of one session (`session_bridge.ts`),
 * the control port (`control.ts`) and what serve answers on it
 * (`serve_control.ts`). It is over 400 lines because `serve()` is one
 * command read top to bottom (flags, the host ticket, the room and the
 * listener, the log of each agent and session, the stop), and its help text
 * and flag table take nearly a hundred of its lines.
 *
 * @module
 */
import { clockOf } from "../_clock.ts";
import { delay, settle } from "../_async.ts";
import {
  CLI_STOP_TIMEOUT,
  DEFAULT_MAX_AGENTS,
  DEFAULT_MAX_AGENTS_PER_INVITE,
} from "../constants.ts";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { createTicket, type Ticket } from "../ticket.ts";
import { SignalingRoomError, WebRTCTransportError } from "../errors.ts";
import { WebRTCListener } from "../webrtc_listener.ts";
import type { WebRTCConnection } from "../webrtc_connection.ts";
import {
  DEFAULT_MAX_SESSIONS_PER_AGENT,
  DEFAULT_MAX_UNFINISHED_BYTES,
  DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT,
  DEFAULT_SESSION_STARTS_PER_SECOND,
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT,
} from "../constants.ts";
import {
  NETWORK_FLAGS,
  NETWORK_HELP,
  parseDuration,
  parseFlags,
  parsePositiveInteger,
  transportOptions,
} from "./args.ts";
import { UsageError } from "../errors.ts";
import { ExitCode, waitForStop } from "./exit.ts";
import { HttpUpstreamTransport } from "./http.ts";
import { AuditFile, auditLine, parseToolList } from "./policy.ts";
import { pathName, pathType, StatusLog } from "./log.ts";
import { reportPath } from "./path_status.ts";
import { ChildProcessTransport } from "./stdio.ts";
import { type ControlServer, startControlServer } from "./control.ts";
import { type HostFile, parseInviteSpec, readHostFile, writeHostFile } from "./invites.ts";
import { answerControl } from "./serve_control.ts";
import { SessionBridge } from "./session_bridge.ts";
import { GUEST_INVITE } from "../signaling/room_protocol.ts";

/** The environment variable read when `--signal` is not given. */
export const SIGNAL_ENV = "MCP_WEBRTC_SIGNAL";

/** The usage of `serve`. */
export const SERVE_HELP = `Usage:
  mcp-webrtc serve [options] -- <command> [args...]   bridge a stdio MCP server
  mcp-webrtc serve [options] --url <endpoint>          bridge a Streamable HTTP MCP server

Opens a room on the signalling service and prints the guest ticket as the first
line on stdout (with --invite: one line NAME<TAB>TICKET per invite instead). Each agent that connects with it holds one peer connection, and
each MCP session it opens on that connection gets its own server process
(stdio), or its own session with the HTTP server.

Options:
  --signal URL            The signalling service, e.g. wss://signal.example
                          (default: $${SIGNAL_ENV}; for a local one: mcp-webrtc signal)
  --url URL               Bridge this Streamable HTTP endpoint instead of a command
  --header "NAME: VALUE"  A header sent to the --url endpoint (repeatable)
  --agents N              The most agents (connections) served at once (default: ${DEFAULT_MAX_AGENTS})
  --agents-per-invite N   The most agents one --invite may hold at once; one more of it is
                          refused (default: ${DEFAULT_MAX_AGENTS_PER_INVITE})
  --sessions N            The most MCP sessions one agent may hold open; one more is
                          refused with an error the agent sees (default: ${DEFAULT_MAX_SESSIONS_PER_AGENT})
  --session-starts N      The most sessions one agent may start per second, after a
                          burst of --sessions; one more is refused with an error the
                          agent sees (default: ${DEFAULT_SESSION_STARTS_PER_SECOND})
  --unfinished-bytes-per-agent BYTES
                          The most bytes one agent's unfinished messages may hold; a
                          message over it is refused with an error naming it
                          (default: ${DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT})
  --unfinished-bytes BYTES
                          The same for all agents together (default: ${DEFAULT_MAX_UNFINISHED_BYTES})
  --unfinished-timeout DURATION
                          Drop a message, and close its session, when no chunk of it
                          came for this long (default: ${
  DEFAULT_UNFINISHED_MESSAGE_TIMEOUT / 1000
}s)
  --expires DURATION      Refuse agents after this long, e.g. 8h (default: never)
  --ticket-version 1|2    The version of a new host ticket: 1 for agents of a version of
                          mcp-webrtc that reads only mcpwebrtc1 tickets (default: 2)
  --ticket-file FILE      Also write the guest ticket to FILE (mode 0600)
  --invite NAME[=TOOL,TOOL…]
                          Make an invite: a ticket of its own for one agent, named NAME,
                          limited to these tools if listed (repeatable); the one guest
                          ticket is then not admitted
  --host-ticket-file FILE Keep the room and its invites across restarts: reopen the room
                          of the host ticket in FILE, or create one and save it there
                          (mode 0600); while serve runs, mcp-webrtc invite, revoke and
                          invites reach it through FILE
  --tools TOOL,TOOL       Agents may list and call only these tools; a call of another
                          is refused with an error naming the limit (repeatable;
                          default: every tool; resources and prompts are not limited);
                          an invite's own tools are limited to these too
  --audit FILE            Append one JSON line to FILE (mode 0600) for each request and
                          notification of an agent: agent, session, method, tool, start,
                          durationMs, ok or error code

${NETWORK_HELP}`;

const SERVE_FLAGS = {
  ...NETWORK_FLAGS,
  signal: { type: "string" },
  url: { type: "string" },
  header: { type: "string", multiple: true },
  agents: { type: "string" },
  "agents-per-invite": { type: "string" },
  sessions: { type: "string" },
  "session-starts": { type: "string" },
  "unfinished-bytes-per-agent": { type: "string" },
  "unfinished-bytes": { type: "string" },
  "unfinished-timeout": { type: "string" },
  expires: { type: "string" },
  "ticket-version": { type: "string" },
  "ticket-file": { type: "string" },
  "host-ticket-file": { type: "string" },
  invite: { type: "string", multiple: true },
  tools: { type: "string", multiple: true },
  audit: { type: "string" },
} as const;

/**
 * Runs `serve` until SIGINT or SIGTERM, or until the room is lost for good.
 *
 * @param args The arguments after `serve`.
 * @returns The exit code.
 * @throws {UsageError} If the command line is malformed.
 * @throws {TicketError} If the host ticket file holds no usable host ticket.
 * @throws {SignalingRoomError} If the signalling service cannot be reached or refused the room.
 *
 * @example Bridge a server command until interrupted
 * ```ts ignore
 * import { serve } from "./serve.ts";
 *
 * const code = await serve([
 *   "--signal", "ws://127.0.0.1:8787",
 *   "--", "npx", "-y", "@modelcontextprotocol/server-everything",
 * ]);
 * Deno.exit(code);
 * ```
 */
export async function serve(args: string[]): Promise<number> {
  const split = args.indexOf("--");
  const flagArgs = split === -1 ? args : args.slice(0, split);
  const command = split === -1 ? [] : args.slice(split + 1);
  const { values, positionals } = parseFlags(flagArgs, SERVE_FLAGS);
  if (values.help) {
    console.log(SERVE_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 0) {
    throw new UsageError(
      `Cannot serve as the server command must follow "--": received ${positionals.join(" ")}`,
    );
  }
  if (values.url && command.length > 0) {
    throw new UsageError("Cannot serve both --url and a command: pick one");
  }
  if (!values.url && command.length === 0) {
    throw new UsageError(
      "Cannot serve as no MCP server is given: pass -- <command> [args...] or --url <endpoint>",
    );
  }
  let upstreamUrl: URL | undefined;
  if (values.url) {
    try {
      upstreamUrl = new URL(values.url);
    } catch {
      throw new UsageError(`Cannot read --url as it is not a URL: received "${values.url}"`);
    }
    if (upstreamUrl.protocol !== "http:" && upstreamUrl.protocol !== "https:") {
      throw new UsageError(
        `Cannot read --url as it must be http: or https:: received "${values.url}"`,
      );
    }
  }
  const headers = parseHeaders(values.header ?? []);
  const network = transportOptions(values);
  const maxAgents = values.agents
    ? parsePositiveInteger(values.agents, "--agents")
    : DEFAULT_MAX_AGENTS;
  const maxAgentsPerInvite = values["agents-per-invite"]
    ? parsePositiveInteger(values["agents-per-invite"], "--agents-per-invite")
    : DEFAULT_MAX_AGENTS_PER_INVITE;
  const maxSessionsPerAgent = values.sessions
    ? parsePositiveInteger(values.sessions, "--sessions")
    : DEFAULT_MAX_SESSIONS_PER_AGENT;
  const budgets = {
    ...(values["session-starts"] &&
      {
        sessionStartsPerSecond: parsePositiveInteger(values["session-starts"], "--session-starts"),
      }),
    ...(values["unfinished-bytes-per-agent"] && {
      maxUnfinishedBytesPerAgent: parsePositiveInteger(
        values["unfinished-bytes-per-agent"],
        "--unfinished-bytes-per-agent",
      ),
    }),
    ...(values["unfinished-bytes"] && {
      maxUnfinishedBytes: parsePositiveInteger(values["unfinished-bytes"], "--unfinished-bytes"),
    }),
    ...(values["unfinished-timeout"] && {
      unfinishedMessageTimeout: parseDuration(values["unfinished-timeout"], "--unfinished-timeout"),
    }),
  };
  const expiresAt = values.expires
    ? new Date(clockOf(serve).now() + parseDuration(values.expires, "--expires"))
    : undefined;
  const ticketVersion = values["ticket-version"];
  if (ticketVersion !== undefined && ticketVersion !== "1" && ticketVersion !== "2") {
    throw new UsageError(
      `Cannot serve as --ticket-version must be 1 or 2: received "${ticketVersion.slice(0, 40)}"`,
    );
  }
  const log = new StatusLog({ quiet: values.quiet, json: values["log-json"] });
  const tools = values.tools && [
    ...new Set(values.tools.flatMap((text) => parseToolList(text, "--tools"))),
  ];

  if (command.length > 0 && !(await findCommand(command[0]))) {
    log.error(
      "server-not-found",
      `Cannot start the MCP server as the command "${
        command[0]
      }" was not found: check the name and PATH`,
    );
    return ExitCode.SERVER_START;
  }

  const audit = values.audit ? await AuditFile.open(values.audit) : undefined;
  if (audit) {
    audit.ondrop = (reason) =>
      log.warn("audit-dropped", `Audit records are being dropped: ${reason}`, { reason });
  }
  const specs = (values.invite ?? []).map((text) => parseInviteSpec(text));
  const named = new Set<string>();
  for (const { name } of specs) {
    if (named.has(name)) {
      throw new UsageError(
        `Cannot serve as --invite ${name} is given twice: name each invite once`,
      );
    }
    if (name === GUEST_INVITE) {
      throw new UsageError(
        `Cannot serve with --invite ${GUEST_INVITE} as that name is the one guest ticket's: pick another name`,
      );
    }
    named.add(name);
  }
  const hostFile = values["host-ticket-file"];
  const saved = await hostTicket(
    hostFile,
    values.signal,
    expiresAt,
    ticketVersion === "1" ? 1 : 2,
  );
  const host = saved.host;
  const guestRevoked = saved.guestRevoked === true;
  if (specs.length === 0 && guestRevoked && saved.invites.length === 0) {
    throw new UsageError(
      `Cannot serve as the guest ticket of ${hostFile} was revoked and the file keeps no invite: serve with --invite NAME, or remove the file to open a new room with a new guest ticket`,
    );
  }
  const upstream = (label: string): Transport =>
    upstreamUrl
      ? new HttpUpstreamTransport(upstreamUrl, { headers })
      : new ChildProcessTransport(command[0], {
        args: command.slice(1),
        onstderr: (line) => log.info("server-stderr", `${label} server: ${line}`, { line }),
      });
  // Agents are numbered in the order they are first seen.
  const numbers = new Map<string, number>();
  const numberOf = (peer: string) => {
    if (!numbers.has(peer)) numbers.set(peer, numbers.size + 1);
    return numbers.get(peer)!;
  };
  let listener: WebRTCListener;
  try {
    listener = await WebRTCListener.listen({
      hostTicket: host,
      expiresAt: expiresAt ?? host.expiresAt,
      maxAgents,
      maxAgentsPerInvite,
      maxSessionsPerAgent,
      ...budgets,
      ...network,
      ...(tools && { tools }),
      ...(audit && {
        onaudit: (record) =>
          audit.write(
            auditLine(record, {
              agent: record.peer === undefined ? undefined : numberOf(record.peer),
            }),
          ),
      }),
      // Without --invite, the one guest ticket as before (unless it was
      // revoked); with it, only invites.
      guestTicket: specs.length === 0 && !guestRevoked,
      invites: saved.invites,
      createServer: ({ peer, session, agent: { name } }) => {
        const agent = numberOf(peer);
        const label = `agent ${agent}${nameLabel(name)} session ${session}`;
        log.info("session-opened", `Agent ${agent}${nameLabel(name)} opened session ${session}`, {
          agent,
          session,
          peer,
          ...(name === undefined ? {} : { name }),
        });
        return new SessionBridge(
          label,
          { agent, session },
          upstream(label),
          log,
          upstreamUrl !== undefined,
        );
      },
    });
  } catch (error) {
    throw new WebRTCTransportError(
      `Cannot open a room on the signalling service ${host.url}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  listener.onagent = ({ peer, name, connection }) => {
    const agent = numberOf(peer);
    const who = `Agent ${agent}${nameLabel(name)}`;
    void reportPath(connection, log, {
      event: "agent-connected",
      connected: (via) => `${who} connected via ${via}`,
      changed: (via, was) => `${who}'s path changed: now via ${via} (was ${was})`,
      fields: { agent, ...(name === undefined ? {} : { name }) },
    }, () => connectionPath(connection));
  };
  listener.onagentleave = ({ peer, name }, error) => {
    const agent = numberOf(peer);
    const why = !error || /goodbye|closed/.test(error.message)
      ? "the agent disconnected"
      : error.message;
    log.info("agent-left", `Agent ${agent}${nameLabel(name)} left: ${why}`, {
      agent,
      reason: why,
      ...(name === undefined ? {} : { name }),
    });
  };
  listener.onagentlost = ({ peer, name }, error) => {
    const agent = numberOf(peer);
    log.warn(
      "agent-lost",
      `Agent ${agent}${nameLabel(name)}'s path was lost (${
        error?.message ?? "no reason given"
      }): its sessions are held for it to come back`,
      { agent, reason: error?.message, ...(name === undefined ? {} : { name }) },
    );
  };
  listener.onagentresume = ({ peer }, was, { path, ms }) => {
    const agent = numberOf(was.peer);
    // The agent's new connection speaks for it from now on.
    const arrived = numberOf(peer);
    numbers.set(peer, agent);
    log.info(
      "agent-resumed",
      `Agent ${agent}${nameLabel(was.name)} is back (as agent ${arrived}) via ${
        pathName(path)
      } after ${ms} ms: its sessions resumed`,
      {
        agent,
        arrived,
        ms,
        path: pathType(path),
        ...(was.name === undefined ? {} : { name: was.name }),
      },
    );
  };
  listener.onerror = (error) => log.warn("agent-refused", error.message);
  const room = listener.hub;

  // The invites named on the command line: one kept in the file keeps its
  // ticket if its tools are the same; the others are made.
  const lines: string[] = [];
  try {
    for (const spec of specs) {
      const kept = listener.invites.find((invite) => invite.name === spec.name);
      let ticket = kept?.ticket;
      if (kept && JSON.stringify(kept.tools) !== JSON.stringify(spec.tools)) {
        await listener.revoke(spec.name);
        ticket = undefined;
      }
      ticket ??= await listener.invite(spec);
      lines.push(`${spec.name}\t${ticket}`);
    }
  } catch (error) {
    await listener.close().catch(() => {});
    throw error;
  }
  let control: ControlServer | undefined;
  let saving = Promise.resolve();
  const save = (): Promise<void> => {
    if (!hostFile) return Promise.resolve();
    const data: HostFile = {
      host,
      invites: listener.invites.filter(({ name }) => name !== GUEST_INVITE),
      ...(control ? { control: { port: control.port, token: control.token } } : {}),
      // Served, and no longer listed: revoked (now or before).
      ...(guestRevoked ||
          (specs.length === 0 && !listener.invites.some(({ name }) => name === GUEST_INVITE))
        ? { guestRevoked: true }
        : {}),
    };
    saving = saving.then(() => writeHostFile(hostFile, data));
    return saving;
  };
  if (hostFile) {
    control = await startControlServer((request) => answerControl(listener, request, save));
    await save();
  }

  const lost = new Promise<Error | undefined>((resolve) => {
    room.onclose = (error) => resolve(error);
    room.onerror = (error) => log.warn("signaling-retry", error.message);
  });
  // Listening for SIGINT and SIGTERM before the tickets are out: whoever
  // reads them may stop this process at once.
  const stopping = waitForStop(lost);
  // Without --invite: the guest ticket, or, once it was revoked, the kept invites.
  if (specs.length === 0 && !listener.ticket) {
    for (const { name, ticket } of listener.invites) lines.push(`${name}\t${ticket}`);
  }
  const text = specs.length > 0 || !listener.ticket ? lines.join("\n") : listener.ticket;
  if (values["ticket-file"]) await writeSecret(values["ticket-file"], text + "\n");
  await Deno.stdout.write(new TextEncoder().encode(text + "\n"));
  log.info(
    "waiting",
    `Waiting for agents at ${host.url}: give them the ticket printed above${
      values["ticket-file"] ? ` (also in ${values["ticket-file"]})` : ""
    }`,
    { url: host.url, room: host.room, expiresAt: (expiresAt ?? host.expiresAt)?.toISOString() },
  );

  const stop = await stopping;
  const shutdown = Promise.all([
    listener.close().catch(() => {}).then(() => audit?.close()),
    // The file then names no running serve: the commands say so instead of dialling a stale port.
    control?.close().then(() => {
      control = undefined;
      return save();
    }).catch(() => {}),
  ]);
  await settle(shutdown, CLI_STOP_TIMEOUT);
  if (stop.kind === "signal") {
    log.info("stopped", `Stopped on ${stop.signal}`);
    return ExitCode.OK;
  }
  const error = stop.value as Error | undefined;
  log.error(
    "signaling-lost",
    `The signalling room closed for good${error ? `: ${error.message}` : ""}`,
    { code: error instanceof SignalingRoomError ? error.code : undefined },
  );
  return ExitCode.SIGNALING;
}

/** The path of a just-opened connection; it is known shortly after the channel opens. */
async function connectionPath(connection: WebRTCConnection) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const path = await connection.getConnectionPath().catch(() => undefined);
    if (path) return path;
    await delay(50);
  }
  return undefined;
}

async function hostTicket(
  file: string | undefined,
  signal: string | undefined,
  expiresAt: Date | undefined,
  version: 1 | 2,
): Promise<HostFile> {
  if (file) {
    const saved = await readHostFile(file);
    if (saved) return saved;
  }
  const url = signal ?? Deno.env.get(SIGNAL_ENV);
  if (!url) {
    throw new UsageError(
      `Cannot serve as no signalling service is given: pass --signal wss://… or set ${SIGNAL_ENV} (for a local one, run: mcp-webrtc signal)`,
    );
  }
  let ticket: Ticket;
  try {
    ticket = await createTicket({ url, expiresAt, version });
  } catch (error) {
    throw new UsageError(`Cannot use the signalling URL "${url}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (file) await writeHostFile(file, { host: ticket, invites: [] });
  return { host: ticket, invites: [] };
}

/** How an agent's invite shows in a log line: not for the one guest ticket. */
function nameLabel(name: string | undefined): string {
  return name === undefined || name === GUEST_INVITE ? "" : ` (${name})`;
}

async function writeSecret(file: string, text: string): Promise<void> {
  await Deno.writeTextFile(file, text, { mode: 0o600 });
  if (Deno.build.os !== "windows") await Deno.chmod(file, 0o600);
}

function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon < 1) {
      throw new UsageError(`Cannot read --header as it must be "NAME: VALUE": received "${line}"`);
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** Whether the command exists: a path to a file, or a name found on PATH. */
async function findCommand(command: string): Promise<boolean> {
  const isFile = async (path: string) => {
    try {
      return (await Deno.stat(path)).isFile;
    } catch {
      return false;
    }
  };
  if (command.includes("/") || command.includes("\\")) return await isFile(command);
  const windows = Deno.build.os === "windows";
  const extensions = windows
    ? ["", ...(Deno.env.get("PATHEXT") ?? ".EXE;.CMD;.BAT;.COM").split(";")]
    : [""];
  for (const dir of (Deno.env.get("PATH") ?? "").split(windows ? ";" : ":")) {
    if (!dir) continue;
    for (const extension of extensions) {
      if (await isFile(`${dir}/${command}${extension}`)) return true;
    }
  }
  return false;
}
