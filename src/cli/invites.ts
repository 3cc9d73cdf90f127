/**
 * Invites on the command line: the host ticket file that keeps a room and its
 * invites across restarts, and the commands `invite`, `revoke` and `invites`,
 * which reach a running `serve` through its loopback control port
 * (`control.ts`).
 *
 * The host ticket file (mode 0600) holds JSON:
 *
 * ```text
 * {"host":"mcpwebrtc2.host.…","invites":[{"name":"ci","ticket":"mcpwebrtc2.guest.…","tools":["search"]}],
 *  "control":{"port":41234,"token":"…"}}
 * ```
 *
 * A file that holds only a host ticket (as earlier versions wrote it) is read
 * as a room without invites. `serve` is the only writer; the other commands
 * read the control port and token from it and ask `serve`, which answers only
 * after the room and the desktop acted.
 *
 * @module
 */
import { encodeBase64Url } from "../_base64url.ts";
import { UsageError } from "../errors.ts";
import { INVITE_NAME } from "../signaling/room_protocol.ts";
import { formatTicket, parseTicket, type Ticket } from "../ticket.ts";
import {
  type ControlHandler,
  type ControlRequest,
  type ControlServer,
  sendControl,
  startControlServer,
} from "./control.ts";
import type { InviteRecord } from "../webrtc_listener.ts";
import { parseDuration, parseFlags } from "./args.ts";
import { ExitCode } from "./exit.ts";

export { sendControl, startControlServer };
export type { ControlHandler, ControlRequest, ControlServer };

/** What the host ticket file holds. */
export interface HostFile {
  /** The host ticket. */
  host: Ticket;
  /** The invites made on this room, as the listener lists them. */
  invites: InviteRecord[];
  /** Where the running `serve` takes `invite`, `revoke` and `invites`. */
  control?: { port: number; token: string };
  /** Whether the one guest ticket was revoked: `serve` then serves the invites only. */
  guestRevoked?: boolean;
}

/**
 * Reads the host ticket file: JSON as written by `serve`, or a bare host
 * ticket (the earlier form).
 *
 * @param file The file's path.
 * @returns Its content, or `undefined` if there is no such file.
 * @throws {UsageError} If the file holds something else, or a guest ticket.
 *
 * @example A missing file
 * ```ts
 * import { readHostFile } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await readHostFile("/nonexistent/host-ticket"), undefined);
 * ```
 */
export async function readHostFile(file: string): Promise<HostFile | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) {
    return { host: hostTicketOf(parseTicket(trimmed), file), invites: [] };
  }
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(trimmed);
  } catch (error) {
    throw new UsageError(
      `Cannot read the host ticket file ${file} as it is not JSON: restore it, or remove it to open a new room`,
      { cause: error },
    );
  }
  if (typeof data?.host !== "string") {
    throw new UsageError(`Cannot read the host ticket file ${file} as it has no "host" ticket`);
  }
  const invites = Array.isArray(data.invites) ? data.invites as InviteRecord[] : [];
  for (const invite of invites) {
    if (
      typeof invite?.name !== "string" || typeof invite.ticket !== "string" ||
      (invite.tools !== undefined && !Array.isArray(invite.tools))
    ) {
      throw new UsageError(
        `Cannot read the host ticket file ${file} as an invite in it is not {"name","ticket","tools"?}`,
      );
    }
  }
  const control = data.control as { port?: unknown; token?: unknown } | undefined;
  return {
    host: hostTicketOf(parseTicket(data.host), file),
    invites,
    ...(typeof control?.port === "number" && typeof control.token === "string"
      ? { control: { port: control.port, token: control.token } }
      : {}),
    ...(data.guestRevoked === true ? { guestRevoked: true } : {}),
  };
}

/**
 * Writes the host ticket file, mode 0600, whole: into a temporary file in the
 * same folder, then renamed over it, so a reader never sees half of it.
 *
 * @param file The file's path.
 * @param data What it holds.
 *
 * @example Write and read back
 * ```ts
 * import { createTicket } from "@mcp/webrtc";
 * import { readHostFile, writeHostFile } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * const file = await Deno.makeTempFile();
 * const host = await createTicket({ url: "wss://signal.example" });
 * await writeHostFile(file, { host, invites: [] });
 * assert.deepEqual((await readHostFile(file))?.host, host);
 * await Deno.remove(file);
 * ```
 */
export async function writeHostFile(file: string, data: HostFile): Promise<void> {
  const text = JSON.stringify({
    host: formatTicket(data.host),
    invites: data.invites.map(({ name, ticket, tools }) =>
      tools ? { name, ticket, tools } : { name, ticket }
    ),
    ...(data.control ? { control: data.control } : {}),
    ...(data.guestRevoked ? { guestRevoked: true } : {}),
  }) + "\n";
  const temporary = `${file}.${encodeBase64Url(crypto.getRandomValues(new Uint8Array(6)))}.tmp`;
  await Deno.writeTextFile(temporary, text, { mode: 0o600 });
  if (Deno.build.os !== "windows") await Deno.chmod(temporary, 0o600);
  await Deno.rename(temporary, file);
}

function hostTicketOf(ticket: Ticket, file: string): Ticket {
  if (ticket.kind !== "host") {
    throw new UsageError(
      `Cannot reopen the room as ${file} holds a guest ticket: --host-ticket-file needs the host ticket`,
    );
  }
  return ticket;
}

/**
 * Parses `NAME[=TOOL,TOOL…]` as given to `--invite` and `invite`.
 *
 * @param text The argument.
 * @param where What it was given to, for the error message.
 * @returns The name, and the tools if listed.
 * @throws {UsageError} If the name or a tool is malformed.
 *
 * @example An invite limited to two tools
 * ```ts
 * import { parseInviteSpec } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseInviteSpec("ci=search,read"), { name: "ci", tools: ["search", "read"] });
 * assert.deepEqual(parseInviteSpec("laptop"), { name: "laptop" });
 * ```
 */
export function parseInviteSpec(
  text: string,
  where = "--invite",
): { name: string; tools?: string[] } {
  const equals = text.indexOf("=");
  const name = equals === -1 ? text : text.slice(0, equals);
  if (!INVITE_NAME.test(name)) {
    throw new UsageError(
      `Cannot read ${where} as NAME[=TOOL,TOOL…]: the name must be 1 to 64 letters, digits, ".", "_" or "-": received "${
        text.slice(0, 80)
      }"`,
    );
  }
  if (equals === -1) return { name };
  const tools = text.slice(equals + 1).split(",").map((tool) => tool.trim());
  if (tools.some((tool) => tool === "" || tool.length > 128)) {
    throw new UsageError(
      `Cannot read ${where} as NAME=TOOL,TOOL…: each tool name must be 1 to 128 characters, without empty ones: received "${
        text.slice(0, 80)
      }"`,
    );
  }
  return { name, tools };
}

const CONTROL_FLAGS = {
  "host-ticket-file": { type: "string" },
  expires: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** The usage of `invite`, `revoke` and `invites`. */
export const INVITES_HELP = `Usage:
  mcp-webrtc invite NAME[=TOOL,TOOL…] --host-ticket-file FILE [--expires DURATION]
  mcp-webrtc revoke NAME --host-ticket-file FILE
  mcp-webrtc invites --host-ticket-file FILE [--json]

Ask the serve that runs with --host-ticket-file FILE to make an invite (its
ticket is printed on stdout once the room admits it: the agent can connect at
once), to revoke one (its connections are closed and its ticket refused before
this exits 0; an unknown name exits 2), or to list them (name, expiry, tools,
and whether an agent is connected).

Options:
  --host-ticket-file FILE The file serve keeps its room and invites in
  --expires DURATION      invite: refuse the agent after this long, e.g. 8h (default: never)
  --json                  invites: one JSON object per invite, a line each
  -h, --help              Show this help`;

async function controlOf(
  values: { "host-ticket-file"?: string },
  command: string,
): Promise<{ port: number; token: string }> {
  const file = values["host-ticket-file"];
  if (!file) {
    throw new UsageError(
      `Cannot ${command} as --host-ticket-file is missing: pass the file serve was started with`,
    );
  }
  const data = await readHostFile(file);
  if (!data?.control) {
    throw new UsageError(
      `Cannot ${command} as ${file} names no running serve: start serve with --host-ticket-file ${file}`,
    );
  }
  return data.control;
}

/**
 * `invite NAME[=TOOL,…] --host-ticket-file FILE`: prints the new ticket.
 *
 * @param args The arguments after `invite`.
 * @returns The exit code.
 * @throws {UsageError} If the command line is malformed.
 *
 * @example Show the usage
 * ```ts
 * import { invite } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await invite(["--help"]), 0);
 * ```
 */
export async function invite(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, CONTROL_FLAGS);
  if (values.help) {
    console.log(INVITES_HELP);
    return ExitCode.OK;
  }
  if (positionals.length !== 1) {
    throw new UsageError("Cannot invite as it takes one NAME[=TOOL,TOOL…]");
  }
  const spec = parseInviteSpec(positionals[0], "invite");
  const expiresAt = values.expires
    ? new Date(Date.now() + parseDuration(values.expires, "--expires")).toISOString()
    : undefined;
  const reply = await sendControl(await controlOf(values, "invite"), {
    op: "invite",
    ...spec,
    ...(expiresAt ? { expiresAt } : {}),
  });
  if (!reply.ok) throw new UsageError(`Cannot invite "${spec.name}": ${reply.error}`);
  await Deno.stdout.write(new TextEncoder().encode(`${reply.ticket}\n`));
  return ExitCode.OK;
}

/**
 * `revoke NAME --host-ticket-file FILE`: exits 0 once NAME's connections are closed.
 *
 * @param args The arguments after `revoke`.
 * @returns The exit code.
 * @throws {UsageError} If the command line is malformed or no invite has that name.
 *
 * @example Show the usage
 * ```ts
 * import { revoke } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await revoke(["--help"]), 0);
 * ```
 */
export async function revoke(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, CONTROL_FLAGS);
  if (values.help) {
    console.log(INVITES_HELP);
    return ExitCode.OK;
  }
  if (positionals.length !== 1) throw new UsageError("Cannot revoke as it takes one NAME");
  const name = positionals[0];
  const reply = await sendControl(await controlOf(values, "revoke"), { op: "revoke", name });
  if (!reply.ok) throw new UsageError(String(reply.error));
  console.error(
    `Revoked "${name}": ${reply.closed} connection${reply.closed === 1 ? "" : "s"} closed`,
  );
  return ExitCode.OK;
}

/**
 * `invites --host-ticket-file FILE`: lists the invites of the running `serve`.
 *
 * @param args The arguments after `invites`.
 * @returns The exit code.
 * @throws {UsageError} If the command line is malformed.
 *
 * @example Show the usage
 * ```ts
 * import { listInvites } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await listInvites(["--help"]), 0);
 * ```
 */
export async function listInvites(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, CONTROL_FLAGS);
  if (values.help) {
    console.log(INVITES_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 0) throw new UsageError("Cannot list invites as it takes no NAME");
  const reply = await sendControl(await controlOf(values, "list invites"), { op: "list" });
  if (!reply.ok) throw new UsageError(String(reply.error));
  const invites = reply.invites as {
    name: string;
    expiresAt?: string;
    tools?: string[];
    connected: boolean;
  }[];
  const lines = values.json ? invites.map((invite) => JSON.stringify(invite)) : [
    "NAME\tEXPIRES\tTOOLS\tCONNECTED",
    ...invites.map((invite) =>
      [
        invite.name,
        invite.expiresAt ?? "never",
        invite.tools?.join(",") ?? "all",
        invite.connected ? "yes" : "no",
      ].join("\t")
    ),
  ];
  await Deno.stdout.write(new TextEncoder().encode(lines.map((line) => line + "\n").join("")));
  return ExitCode.OK;
}
