/**
 * What an agent may do in one MCP session, enforced on the server's side, and
 * a record of what it did: a {@linkcode PolicyTransport} wraps the transport
 * an MCP server is connected to, where every JSON-RPC message of the session
 * passes in the clear.
 *
 * The tool limit covers tools only: `tools/list` answers hold the allowed
 * tools alone (page by page, the cursor kept), a `tools/call` of any other
 * tool is answered by the wrapper with a JSON-RPC error and never reaches the
 * server, and `notifications/tools/list_changed` passes, so that the client
 * lists again and sees the filtered list. Resources, prompts, completions and
 * every other method pass as they are.
 *
 * Over 400 lines, and one file, because the request a tool call or listing
 * started and the answer that closes it (the audit record, the filtered
 * page) are matched through one table of pending requests; the two
 * directions read best side by side. More than a third of it is doc comments.
 *
 * @module
 */
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage, MessageExtraInfo } from "@modelcontextprotocol/sdk/types";
import { clockOf } from "./_clock.ts";
import { WebRTCTransportError } from "./errors.ts";
import {
  DEFAULT_MAX_TRACKED_REQUESTS,
  SESSION_LIMIT_REACHED,
  TOOL_NOT_ALLOWED,
} from "./constants.ts";

/** The JSON-RPC code of a request refused for reusing the id of one awaiting its answer. */
const INVALID_REQUEST = -32_600;
/** The most allowed tool names a refusal lists before it says how many more there are. */
const NAMES_SHOWN = 20;

/**
 * One request, or notification, that the client of a session sent: who, what,
 * when, how long and how it ended. Requests are recorded once answered (or
 * refused, cancelled, or left unanswered when the session closed),
 * notifications as they arrive.
 */
export interface AuditRecord {
  /** The agent's name (e.g. an invite's), if it has one. */
  readonly agent?: string;
  /** The agent's peer id, if known. */
  readonly peer?: string;
  /** The session's number among the agent's sessions, if known. */
  readonly session?: number;
  /** A request (it has an id and awaits an answer) or a notification. */
  readonly kind: "request" | "notification";
  /** The JSON-RPC method, e.g. `tools/call`. */
  readonly method: string;
  /** The tool named by a `tools/call`, when it names one. */
  readonly tool?: string;
  /** When it arrived, in milliseconds since the epoch (as the clock reads). */
  readonly start: number;
  /** Milliseconds from its arrival to its answer; `0` for a notification. */
  readonly durationMs: number;
  /** Whether it was answered with a result (a notification: `true`). */
  readonly ok: boolean;
  /** The JSON-RPC error code it was answered with, if any. */
  readonly error?: number;
  /**
   * The limit that refused it, if the wrapper answered it instead of the
   * server: `tools` (a tool outside the limit), `maxTrackedRequests` (too
   * many requests awaiting their answer) or `id` (the id of a request still
   * awaiting its answer).
   */
  readonly refused?: "tools" | "maxTrackedRequests" | "id";
  /**
   * Why it ended without an answer: the client cancelled it, or the session
   * closed first.
   */
  readonly unanswered?: "cancelled" | "closed";
}

/** Options of {@linkcode PolicyTransport}. */
export interface PolicyTransportOptions {
  /**
   * The only tools the client may list and call; `undefined` allows every
   * tool, `[]` none.
   *
   * @default {undefined}
   */
  tools?: readonly string[];
  /**
   * Called with a record of each request once it is answered, and of each
   * notification from the client as it arrives. An exception it throws goes
   * to `onerror`.
   *
   * @default {undefined}
   */
  onaudit?: (record: AuditRecord) => void;
  /**
   * Whose session it is, copied into every record.
   *
   * @default {{}}
   */
  agent?: { readonly name?: string; readonly peer?: string; readonly session?: number };
  /**
   * The most requests awaiting their answer that the wrapper tracks; one more
   * is refused with a JSON-RPC error (code `-32000`) naming this limit, and
   * not forwarded.
   *
   * @default {1024}
   */
  maxTrackedRequests?: number;
}

type Id = string | number;

interface Pending {
  readonly method: string;
  readonly tool?: string;
  readonly start: number;
}

/**
 * Wraps the server's side of one MCP session: limits the tools its client may
 * list and call, and reports an {@linkcode AuditRecord} for each request and
 * notification of the client. Connect the MCP server to the wrapper instead
 * of the transport; the wrapper starts, sends on and closes the transport.
 *
 * - `tools/list` answers keep only the allowed tools, on every page (the
 *   `nextCursor` passes as it is, so a page may come back shorter or empty).
 * - A `tools/call` of another tool is answered by the wrapper with JSON-RPC
 *   error `-32602` naming the limit (`data.limit: "tools"`), and the server
 *   never sees it.
 * - `notifications/tools/list_changed` passes: the client lists again and
 *   gets the filtered list.
 * - Nothing else is limited: resources, prompts and completions pass as
 *   they are.
 *
 * To match answers to requests, the wrapper tracks the requests awaiting
 * their answer, at most `maxTrackedRequests` (an answer to a cancelled
 * `tools/list` that the server sends anyway is filtered all the same).
 *
 * @param transport The server's transport, not started.
 * @param options The allowed tools, the audit callback and whose session it is.
 * @throws {TypeError} If `tools` is not an array of strings.
 * @throws {RangeError} If `maxTrackedRequests` is not a positive integer.
 *
 * @example Limit a client to one tool and audit its calls
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * // @ts-types="@modelcontextprotocol/sdk/inMemory"
 * import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
 * import { type AuditRecord, PolicyTransport } from "@mcp/webrtc";
 * import assert from "node:assert/strict";
 *
 * const server = new McpServer({ name: "desktop", version: "1.0.0" });
 * for (const name of ["read", "write"]) {
 *   server.registerTool(name, {}, () => ({ content: [{ type: "text", text: name }] }));
 * }
 * const records: AuditRecord[] = [];
 * const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
 * await server.connect(
 *   new PolicyTransport(serverSide, {
 *     tools: ["read"],
 *     agent: { name: "ci" },
 *     onaudit: (record) => records.push(record),
 *   }),
 * );
 * const client = new Client({ name: "agent", version: "1.0.0" });
 * await client.connect(clientSide);
 *
 * assert.deepEqual((await client.listTools()).tools.map((tool) => tool.name), ["read"]);
 * await assert.rejects(client.callTool({ name: "write" }), /tools limit/);
 * const calls = records.filter((record) => record.method === "tools/call");
 * assert.deepEqual(calls.map((record) => [record.agent, record.tool, record.refused]), [
 *   ["ci", "write", "tools"],
 * ]);
 * await client.close();
 * ```
 */
export class PolicyTransport implements Transport {
  readonly #inner: Transport;
  readonly #allowed?: ReadonlySet<string>;
  readonly #onaudit?: (record: AuditRecord) => void;
  readonly #agent: { name?: string; peer?: string; session?: number };
  readonly #max: number;
  readonly #pending = new Map<Id, Pending>();

  /** Called when the session closed. */
  onclose?: () => void;
  /** Called for the transport's errors, and an `onaudit` that threw. */
  onerror?: (error: Error) => void;
  /** Called for each message of the client that the wrapper lets through. */
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;

  constructor(transport: Transport, options: PolicyTransportOptions = {}) {
    const { tools, maxTrackedRequests = DEFAULT_MAX_TRACKED_REQUESTS } = options;
    if (
      tools !== undefined && (!Array.isArray(tools) || tools.some((t) => typeof t !== "string"))
    ) {
      throw new TypeError(
        `Cannot limit the session's tools as 'tools' must be an array of tool names: received ${
          JSON.stringify(tools)
        }`,
      );
    }
    if (!Number.isSafeInteger(maxTrackedRequests) || maxTrackedRequests < 1) {
      throw new RangeError(
        `Cannot create the policy as 'maxTrackedRequests' must be a positive integer: received ${maxTrackedRequests}`,
      );
    }
    this.#inner = transport;
    this.#allowed = tools && new Set(tools);
    this.#onaudit = options.onaudit;
    this.#agent = { ...options.agent };
    this.#max = maxTrackedRequests;
    transport.onmessage = (message, extra) => this.#receive(message, extra);
    transport.onerror = (error) => this.onerror?.(error);
    transport.onclose = () => {
      const now = this.#now();
      for (const [, pending] of this.#pending) {
        this.#record(pending, now, { ok: false, unanswered: "closed" });
      }
      this.#pending.clear();
      this.onclose?.();
    };
  }

  /** The wrapped transport's session id. */
  get sessionId(): string | undefined {
    return this.#inner.sessionId;
  }

  /** Starts the wrapped transport. */
  start(): Promise<void> {
    return this.#inner.start();
  }

  /** Closes the wrapped transport. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  /** Passes the negotiated protocol version to the wrapped transport. */
  setProtocolVersion(version: string): void {
    this.#inner.setProtocolVersion?.(version);
  }

  /**
   * Sends the server's message: an answer to a `tools/list` keeps only the
   * allowed tools, and an answer to a tracked request is audited.
   */
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (!("method" in message) && "id" in message && message.id !== undefined) {
      const id = message.id as Id;
      const pending = this.#pending.get(id);
      if (pending) {
        this.#pending.delete(id);
        if (pending.method === "tools/list") message = this.#filter(message);
        const error = "error" in message ? message.error.code : undefined;
        this.#record(pending, this.#now(), { ok: error === undefined, error });
      } else {
        // An answer to a request no longer tracked (cancelled): filtered
        // by its shape, so that a tools/list answered anyway stays limited.
        message = this.#filter(message);
      }
    }
    return this.#inner.send(message, options);
  }

  #receive(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (!("method" in message)) return void this.onmessage?.(message, extra);
    const start = this.#now();
    const method = message.method;
    const params = message.params as Record<string, unknown> | undefined;
    if (!("id" in message) || message.id === undefined) {
      if (method === "notifications/cancelled") {
        const id = params?.requestId as Id | undefined;
        const pending = id === undefined ? undefined : this.#pending.get(id);
        if (pending) {
          this.#pending.delete(id!);
          this.#record(pending, start, { ok: false, unanswered: "cancelled" });
        }
      }
      this.#record({ method, start }, start, { ok: true }, "notification");
      return void this.onmessage?.(message, extra);
    }
    const id = message.id as Id;
    const name = method === "tools/call" ? params?.name : undefined;
    const tool = typeof name === "string" ? name : undefined;
    const pending: Pending = { method, tool, start };
    if (this.#pending.has(id)) {
      return this.#refuse(id, pending, "id", INVALID_REQUEST, {
        message:
          "Cannot take the request as its id is that of a request still awaiting its answer: use a new id",
      });
    }
    if (this.#pending.size >= this.#max) {
      return this.#refuse(id, pending, "maxTrackedRequests", SESSION_LIMIT_REACHED, {
        message:
          `Cannot take another request as ${this.#pending.size} of this session await their answer, the most the desktop tracks (maxTrackedRequests): wait for some to finish, or spread them over more sessions`,
        data: { limit: "maxTrackedRequests" },
      });
    }
    if (
      method === "tools/call" && this.#allowed && !(tool !== undefined && this.#allowed.has(tool))
    ) {
      return this.#refuse(id, pending, "tools", TOOL_NOT_ALLOWED, {
        message: `Cannot call the tool ${
          showName(name)
        } as this agent may use only ${this.#allowedText()} (its tools limit): use one of those, or ask the desktop's owner to allow this tool`,
        data: { limit: "tools", tool: tool ?? null },
      });
    }
    this.#pending.set(id, pending);
    this.onmessage?.(message, extra);
  }

  #refuse(
    id: Id,
    pending: Pending,
    limit: NonNullable<AuditRecord["refused"]>,
    code: number,
    error: { message: string; data?: Record<string, unknown> },
  ): void {
    this.#record(pending, this.#now(), { ok: false, error: code, refused: limit });
    this.#inner.send({ jsonrpc: "2.0", id, error: { code, ...error } }).catch((cause) =>
      this.onerror?.(cause as Error)
    );
  }

  #filter(message: JSONRPCMessage): JSONRPCMessage {
    const allowed = this.#allowed;
    if (!allowed || !("result" in message)) return message;
    const result = message.result as { tools?: unknown };
    if (!Array.isArray(result.tools)) return message;
    const tools = result.tools.filter((tool) =>
      typeof tool?.name === "string" && allowed.has(tool.name)
    );
    return { ...message, result: { ...message.result, tools } };
  }

  #allowedText(): string {
    const names = [...this.#allowed!];
    if (names.length === 0) return "no tools";
    const shown = names.slice(0, NAMES_SHOWN).map(showName).join(", ");
    return `the tools ${shown}${
      names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : ""
    }`;
  }

  #now(): number {
    return clockOf(this).now();
  }

  #record(
    pending: { method: string; tool?: string; start: number },
    end: number,
    outcome: Pick<AuditRecord, "ok" | "error" | "refused" | "unanswered">,
    kind: AuditRecord["kind"] = "request",
  ): void {
    const onaudit = this.#onaudit;
    if (!onaudit) return;
    const { name, peer, session } = this.#agent;
    const record: AuditRecord = {
      ...(name !== undefined && { agent: name }),
      ...(peer !== undefined && { peer }),
      ...(session !== undefined && { session }),
      kind,
      method: pending.method,
      ...(pending.tool !== undefined && { tool: pending.tool }),
      start: pending.start,
      durationMs: Math.max(0, end - pending.start),
      ...Object.fromEntries(Object.entries(outcome).filter(([, value]) => value !== undefined)),
    } as AuditRecord;
    try {
      onaudit(Object.freeze(record));
    } catch (error) {
      this.onerror?.(
        new WebRTCTransportError(
          `Cannot audit the ${pending.method} request as onaudit threw: ${String(error)}`,
          {
            cause: error,
          },
        ),
      );
    }
  }
}

/**
 * The tools allowed under two limits, each `undefined` for "every tool": the
 * tools in both, in the order of the first.
 *
 * @param outer One limit, e.g. the listener's for every agent.
 * @param inner The other, e.g. one agent's own.
 * @returns The tools allowed by both, or `undefined` if neither limits.
 *
 * @example A desktop's limit and an agent's
 * ```ts
 * import { combineTools } from "./policy_transport.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(combineTools(["read", "search"], ["search", "write"]), ["search"]);
 * assert.deepEqual(combineTools(undefined, ["write"]), ["write"]);
 * assert.equal(combineTools(undefined, undefined), undefined);
 * ```
 */
export function combineTools(
  outer: readonly string[] | undefined,
  inner: readonly string[] | undefined,
): readonly string[] | undefined {
  if (outer === undefined) return inner;
  if (inner === undefined) return outer;
  const allowed = new Set(inner);
  return outer.filter((tool) => allowed.has(tool));
}

/** A name as a refusal shows it: quoted, and cut if it is long (an agent chose it). */
function showName(name: unknown): string {
  if (typeof name !== "string") return `named by ${JSON.stringify(name ?? null)?.slice(0, 40)}`;
  return JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}
