/**
 * Invites on the command line: the host ticket file that keeps a room and its
 * invites across restarts, the loopback control port through which `invite`,
 * `revoke` and `invites` reach a running `serve`, and those three commands.
 *
 * The host ticket file (mode 0600) holds JSON:
 *
 * ```text
 * {"host":"mcpwebrtc1.host.…","invites":[{"name":"ci","ticket":"mcpwebrtc1.guest.…","tools":["search"]}],
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
import { connect as connectTcp, createServer, type Server, type Socket } from "node:net";
import { decodeBase64Url, encodeBase64Url, timingSafeEqual } from "../_base64url.ts";
import {
  CONTROL_MAX_CONNECTIONS,
  CONTROL_MAX_REQUEST_BYTES,
  CONTROL_REPLY_TIMEOUT,
  CONTROL_REQUEST_TIMEOUT,
} from "../constants.ts";
import { UsageError, WebRTCTransportError } from "../errors.ts";
import { INVITE_NAME } from "../signaling/room_protocol.ts";
import { formatTicket, parseTicket, type Ticket } from "../ticket.ts";
import type { InviteRecord } from "../webrtc_listener.ts";
import { parseDuration, parseFlags } from "./args.ts";
import { ExitCode } from "./exit.ts";

/** What the host ticket file holds. */
export interface HostFile {
  /** The host ticket. */
  host: Ticket;
  /** The invites made on this room, as the listener lists them. */
  invites: InviteRecord[];
  /** Where the running `serve` takes `invite`, `revoke` and `invites`. */
  control?: { port: number; token: string };
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

/** A request to the control port. */
export type ControlRequest =
  | { op: "invite"; name: string; tools?: string[]; expiresAt?: string }
  | { op: "revoke"; name: string }
  | { op: "list" };

/** What `serve` does for each request; an error's message is the reply. */
export type ControlHandler = (request: ControlRequest) => Promise<Record<string, unknown>>;

/** The control port of a running `serve`. */
export interface ControlServer {
  /** The loopback port it listens on. */
  readonly port: number;
  /** The token a request must carry (base64url, 256 bits). */
  readonly token: string;
  /** Stops listening. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1 for `invite`, `revoke` and `invites`: one JSON line
 * per connection, with the token, answered with one JSON line.
 *
 * @param handler What to do with a request that carries the token.
 * @returns The port and the token, to write to the host ticket file.
 *
 * @example Answer a listing
 * ```ts
 * import { sendControl, startControlServer } from "./invites.ts";
 * import assert from "node:assert/strict";
 *
 * const server = await startControlServer(() => Promise.resolve({ invites: [] }));
 * const reply = await sendControl({ port: server.port, token: server.token }, { op: "list" });
 * assert.deepEqual(reply, { ok: true, invites: [] });
 * await server.close();
 * ```
 */
export function startControlServer(handler: ControlHandler): Promise<ControlServer> {
  const token = encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
  const expected = decodeBase64Url(token)!;
  let open = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      open--;
    });
    socket.on("error", () => {});
    open++;
    if (open > CONTROL_MAX_CONNECTIONS) {
      return void reply(socket, {
        ok: false,
        error:
          `serve is answering ${CONTROL_MAX_CONNECTIONS} requests already (CONTROL_MAX_CONNECTIONS): try again`,
      });
    }
    const timer = setTimeout(() => {
      reply(socket, {
        ok: false,
        error:
          `The request did not arrive within ${CONTROL_REQUEST_TIMEOUT} ms (CONTROL_REQUEST_TIMEOUT)`,
      });
    }, CONTROL_REQUEST_TIMEOUT);
    let buffer = "";
    let done = false;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      if (done) return;
      buffer += chunk;
      if (buffer.length > CONTROL_MAX_REQUEST_BYTES) {
        done = true;
        clearTimeout(timer);
        return reply(socket, {
          ok: false,
          error:
            `The request is larger than ${CONTROL_MAX_REQUEST_BYTES} bytes (CONTROL_MAX_REQUEST_BYTES)`,
        });
      }
      const newline = buffer.indexOf("\n");
      if (newline === -1) return;
      done = true;
      clearTimeout(timer);
      void answer(buffer.slice(0, newline)).then((result) => reply(socket, result));
    });
  });
  const answer = async (line: string): Promise<Record<string, unknown>> => {
    let request: Record<string, unknown>;
    try {
      request = JSON.parse(line);
    } catch {
      return { ok: false, error: "The request is not JSON" };
    }
    const presented = typeof request?.token === "string"
      ? decodeBase64Url(request.token)
      : undefined;
    if (
      !presented || presented.length !== expected.length || !timingSafeEqual(presented, expected)
    ) {
      return {
        ok: false,
        error: "The control token does not match: use the host ticket file of the running serve",
      };
    }
    try {
      return { ok: true, ...(await handler(request as unknown as ControlRequest)) };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : 0,
        token,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

function reply(socket: Socket, body: Record<string, unknown>): void {
  socket.end(JSON.stringify(body) + "\n");
}

/**
 * Sends one request to a running `serve` and waits for its answer.
 *
 * @param control The port and token from the host ticket file.
 * @param request The request.
 * @returns The answer: `ok`, and `error` or the request's result.
 * @throws {Error} If nobody answers on the port, or not within `CONTROL_REPLY_TIMEOUT`.
 *
 * @example See {@linkcode startControlServer}.
 * ```ts ignore
 * import { sendControl } from "./invites.ts";
 *
 * console.log(await sendControl({ port: 41234, token: "…" }, { op: "list" }));
 * ```
 */
export function sendControl(
  control: { port: number; token: string },
  request: ControlRequest,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const socket = connectTcp({ host: "127.0.0.1", port: control.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new WebRTCTransportError(
          `Cannot reach serve as it did not answer within ${CONTROL_REPLY_TIMEOUT} ms (CONTROL_REPLY_TIMEOUT): is it still running?`,
        ),
      );
    }, CONTROL_REPLY_TIMEOUT);
    socket.setEncoding("utf8");
    socket.on(
      "connect",
      () => socket.write(JSON.stringify({ ...request, token: control.token }) + "\n"),
    );
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      if (buffer.length > CONTROL_MAX_REQUEST_BYTES * 16) socket.destroy();
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(
        new WebRTCTransportError(
          `Cannot reach serve on 127.0.0.1:${control.port}: ${error.message}: is serve running with this --host-ticket-file?`,
          { cause: error },
        ),
      );
    });
    socket.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buffer.trim()));
      } catch {
        reject(
          new WebRTCTransportError(
            "Cannot read the answer of serve: it closed the connection without one",
          ),
        );
      }
    });
  });
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
