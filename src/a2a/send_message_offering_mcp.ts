/**
 * The desktop's whole side in one call: {@linkcode sendMessageOfferingMcp}
 * sends the user's message offering an MCP server, serves a fresh one when
 * the agent signals, and tells what became of its channel.
 *
 * @module
 */

import type { SendMessageRequest, StreamResponse } from "@a2a-js/sdk";
import type { Client, RequestOptions } from "@a2a-js/sdk/client";
import { settle, withResolvers } from "../_async.ts";
import { A2A_MAX_KEY_ID_LENGTH, BYE_TIMEOUT } from "../constants.ts";
import { WebRTCTransportError } from "../errors.ts";
import { AuthenticatedSignaling } from "../signaling/authenticated_signaling.ts";
import type { Signaling } from "../signaling/signaling.ts";
import type { ConnectableServer } from "../webrtc_listener.ts";
import { WebRTCConnection, type WebRTCSessionTransport } from "../webrtc_connection.ts";
import type { WebRTCServerTransport } from "../webrtc_server_transport.ts";
import type { WebRTCTransportOptions } from "../webrtc_transport.ts";
import {
  type A2AMcpOffer,
  agentDialOf,
  checkSignalingKey,
  isSignalingMessage,
  signalingExtensionVersion,
  versionMismatch,
} from "./extension.ts";
import {
  A2AClientSignaling,
  signalingClosing,
  signalingForDial,
  withExtension,
} from "./a2a_client_signaling.ts";

/** What becomes of the MCP channel a message offered: open, or failed and why. */
export type McpChannelStatus =
  | {
    /** The agent's MCP client reached the desktop's server: the data channel is open. */
    readonly state: "open";
    /**
     * The transport serving it, e.g. for `close()`. From
     * {@linkcode sendMessageOfferingMcp}: a session of a `WebRTCConnection`
     * that answers the agent again (its path:
     * `transport.connection.getConnectionPath()`).
     */
    readonly transport: WebRTCSessionTransport | WebRTCServerTransport;
  }
  | {
    /** The channel did not open. */
    readonly state: "failed";
    /** Why: the transport's `ConnectError`, an `AuthenticationError`, or a refused agent. */
    readonly error: Error;
  };

/**
 * An event of {@linkcode sendMessageOfferingMcp}'s stream that no agent sent:
 * what became of the MCP channel. Shaped like the SDK's `StreamResponse`, so
 * a `switch (event.payload?.$case)` covers both.
 */
export interface McpChannelEvent {
  /** The channel's status. */
  readonly payload: { readonly $case: "mcpChannel"; readonly value: McpChannelStatus };
}

/** Options of {@linkcode sendMessageOfferingMcp}. */
export interface SendMessageOfferingMcpOptions {
  /**
   * Makes a fresh MCP server for this message's channel (`McpServer` and
   * `Server` both fit): MCP sessions are stateful, so two messages never
   * share one. Called once, when the agent has this desktop's answer to its
   * offer (so that the answer does not wait for it; the connection's ICE and
   * DTLS go on meanwhile), or when the channel opens if that comes first;
   * never for an offer the desktop does not answer. The server is closed
   * when its transport closes, or when the connection fails before it. If
   * it throws, the agent is told why and the channel fails.
   */
  createServer: () => ConnectableServer | Promise<ConnectableServer>;
  /**
   * The key that seals signalling end to end: the `signalingKey` of
   * `await deriveTicketKeys(ticket)`, the desktop's (host) ticket whose guest
   * ticket the agent holds. The offer then says the desktop seals, and the
   * signalling is an `AuthenticatedSignaling` (role `"host"`). Present but not
   * such a key (undefined, null, a promise) is a `TypeError`: give either
   * `key` or `sealed: false`.
   */
  key?: CryptoKey;
  /**
   * `false` to offer unsealed signalling (the A2A connection is trusted):
   * said, never assumed. Give either this or `key`.
   */
  sealed?: false;
  /**
   * Tells the agent which key to seal with (a ticket's room id, say); not
   * secret.
   *
   * @default {undefined}
   */
  keyId?: string;
  /**
   * Options of the `WebRTCServerTransport` (ICE servers, timeouts).
   *
   * @default {{}}
   */
  transportOptions?: Omit<WebRTCTransportOptions, "signaling">;
  /**
   * Options of the streaming request and of every reply.
   *
   * @default {{}}
   */
  requestOptions?: RequestOptions;
}

/**
 * Sends the user's message as `client.sendMessageStream()` does, offering the
 * agent this desktop's MCP server over WebRTC: yields every event of the
 * stream but the signalling, answers the agent when it signals, serves a fresh
 * server from `options.createServer()` (made once the agent has the answer),
 * and yields one
 * {@linkcode McpChannelEvent} when that server's channel opened or failed
 * (with the reason). Messages sent at once each get their own channel.
 *
 * The message gets the extension in its `extensions` and the offer
 * ({@linkcode A2AMcpOffer}) in its `metadata`; the request gets a fresh
 * secret in its `metadata` (which replies carry, and no other client knows)
 * and the `A2A-Extensions` header. The signalling closes when the stream
 * ends; a connection already up does not depend on it. The example of
 * `A2ASignalingRouter` is a complete, runnable program with both sides.
 *
 * @param client The A2A client.
 * @param params The request, as for `client.sendMessageStream()`.
 * @param options The server factory, and the sealing key or `sealed: false`.
 * @returns The stream's events without the signalling, and the channel's.
 * @throws {TypeError} At the call: if `params.message` is missing,
 * `options.createServer` is not a function, `key` is given but is not a key,
 * or neither `key` nor `sealed: false` is given.
 *
 * @example Offer the desktop's MCP server with a message
 * ```ts
 * import { Role, type StreamResponse } from "@a2a-js/sdk";
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { sendMessageOfferingMcp } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * // An A2A Client from ClientFactory, in real life; this agent never signals.
 * const client = {
 *   sendMessage: () => Promise.reject(new Error("not reached")),
 *   async *sendMessageStream(): AsyncGenerator<StreamResponse> {},
 * };
 * const params = {
 *   tenant: "",
 *   message: {
 *     messageId: crypto.randomUUID(), contextId: "", taskId: "", role: Role.ROLE_USER,
 *     parts: [{
 *       content: { $case: "text" as const, value: "What does notes.txt say?" },
 *       mediaType: "text/plain", filename: "", metadata: undefined,
 *     }],
 *     metadata: undefined, extensions: [], referenceTaskIds: [],
 *   },
 *   configuration: undefined,
 *   metadata: undefined,
 * };
 * const createServer = () => new McpServer({ name: "desktop", version: "1.0.0" });
 * for await (const event of sendMessageOfferingMcp(client, params, { createServer, sealed: false })) {
 *   if (event.payload?.$case === "mcpChannel") console.log(event.payload.value.state);
 * }
 * // A key that is not one (here: not awaited) fails at the call, never unsealed.
 * const key = undefined as unknown as CryptoKey;
 * assert.throws(() => sendMessageOfferingMcp(client, params, { createServer, key }), TypeError);
 * ```
 */
export function sendMessageOfferingMcp(
  client: Pick<Client, "sendMessage" | "sendMessageStream">,
  params: SendMessageRequest,
  options: SendMessageOfferingMcpOptions,
): AsyncGenerator<StreamResponse | McpChannelEvent, void, undefined> {
  if (!params?.message) {
    throw new TypeError("Cannot send message as 'params.message' is missing");
  }
  if (typeof options?.createServer !== "function") {
    throw new TypeError(
      "Cannot offer the MCP server as 'options.createServer' is not a function: pass () => new McpServer(…), a fresh server for each message",
    );
  }
  let key: CryptoKey | undefined;
  if ("key" in options) {
    if (options.sealed !== undefined) {
      throw new TypeError(
        "Cannot offer the MCP server as both 'key' and 'sealed' are given: give the key to seal, or sealed: false without a key",
      );
    }
    key = checkSignalingKey(options.key, "offer the MCP server");
  } else if (options.sealed !== false) {
    throw new TypeError(
      "Cannot offer the MCP server as neither 'key' nor 'sealed: false' is given: pass { key: (await deriveTicketKeys(ticket)).signalingKey } to seal, or say { sealed: false }",
    );
  }
  if (
    options.keyId !== undefined &&
    (typeof options.keyId !== "string" || options.keyId.length > A2A_MAX_KEY_ID_LENGTH)
  ) {
    throw new TypeError(
      `Cannot offer the MCP server as 'keyId' is not a string of at most A2A_MAX_KEY_ID_LENGTH (${A2A_MAX_KEY_ID_LENGTH}) characters: name the key with a shorter string, e.g. the room id`,
    );
  }
  return offering(client, params, options, key);
}

async function* offering(
  client: Pick<Client, "sendMessage" | "sendMessageStream">,
  params: SendMessageRequest,
  options: SendMessageOfferingMcpOptions,
  key: CryptoKey | undefined,
): AsyncGenerator<StreamResponse | McpChannelEvent, void, undefined> {
  const requestOptions = withExtension(options.requestOptions);
  const signaling = new A2AClientSignaling(client, { requestOptions });
  const wrap = (dial: A2AClientSignaling): Signaling =>
    key ? new AuthenticatedSignaling(dial, { key, role: "host" }) : dial;
  // Sealed, the first dial's hello goes inside the offer: the agent's offer
  // then needs no request to learn this end's nonce.
  const hello = key ? await AuthenticatedSignaling.prepareHello({ key, role: "host" }) : undefined;
  const first = hello
    ? new AuthenticatedSignaling(signaling, { key: key!, role: "host", hello })
    : signaling;
  const offer: A2AMcpOffer = {
    version: 2,
    sealed: key !== undefined,
    ...(options.keyId === undefined ? {} : { keyId: options.keyId }),
    resume: true,
    ...(hello === undefined ? {} : { hello: hello.message }),
  };
  const dials = new Dials(signaling, first, wrap);
  const channel = new ChannelWatch();
  // An agent whose card announces only another version of the extension will not take the offer.
  const theirs = await otherVersionOf(client);
  if (theirs !== undefined) {
    channel.fail(
      new WebRTCTransportError(
        `Cannot offer the MCP server as ${versionMismatch(theirs, "desktop")}`,
      ),
    );
  }
  const stream = client.sendMessageStream(signaling.offer(params, offer), requestOptions);
  let serving = theirs !== undefined; // A refused agent is never served.
  try {
    let next = stream.next();
    while (true) {
      const outcome = await Promise.race([next, channel.changed()]);
      yield* channel.take();
      if (outcome === CHANGED) continue;
      if (outcome.done) break;
      next = stream.next();
      const event = outcome.value;
      const target = dials.route(event);
      if (!target.receive(event)) {
        yield event;
        continue;
      }
      if (target.failure) channel.fail(target.failure);
      else if (!serving) {
        serving = true;
        channel.serve(options, dials);
      }
      yield* channel.take();
    }
  } finally {
    await dials.end();
    void stream.return?.(undefined);
  }
  // The stream is over: a channel still opening learns why it cannot (the
  // agent's goodbye, or the signalling's end) from its connection.
  if (serving) await channel.settled();
  yield* channel.take();
}

const CHANGED = Symbol("changed");

/**
 * The agent's dials on one stream, each with its own signalling (the same
 * secret and task, its replies saying which dial they answer): the agent's
 * messages go to their dial's signalling, and the serving connection takes
 * each new dial's signalling in turn.
 */
class Dials {
  readonly #first: A2AClientSignaling;
  /** The first dial's signalling as the connection takes it (sealed, its hello handed over). */
  readonly #firstWrapped: Signaling;
  readonly #wrap: (signaling: A2AClientSignaling) => Signaling;
  /** The dials whose signalling is open, by number. */
  readonly #open = new Map<number, A2AClientSignaling>();
  #highest = 1;
  #handedFirst = false;
  /** The newest dial, not yet taken by the connection. */
  #next?: A2AClientSignaling;
  #waiter?: { resolve: (signaling: A2AClientSignaling) => void; reject: (error: Error) => void };
  #ended = false;
  /** Called once the stream ended. */
  onend?: () => void;

  constructor(
    first: A2AClientSignaling,
    firstWrapped: Signaling,
    wrap: (signaling: A2AClientSignaling) => Signaling,
  ) {
    this.#first = first;
    this.#firstWrapped = firstWrapped;
    this.#wrap = wrap;
    this.#open.set(1, first);
  }

  /** The first dial's signalling, as the connection takes it (for a goodbye before any connection). */
  get first(): Signaling {
    this.#handedFirst = true;
    return this.#firstWrapped;
  }

  /** The signalling that takes `event`: its dial's (a new dial's is made), or the first's for what is not signalling. */
  route(event: StreamResponse): A2AClientSignaling {
    const message = event?.payload?.$case === "statusUpdate"
      ? event.payload.value.status?.message
      : undefined;
    if (!isSignalingMessage(message)) return this.#first;
    const dial = agentDialOf(message);
    if (dial === undefined) return this.#first;
    const open = this.#open.get(dial);
    if (open) return open;
    if (dial <= this.#highest || this.#ended) return this.#spent(dial);
    // A new dial: the earlier ones that closed are forgotten; one not taken yet is superseded.
    this.#highest = dial;
    for (const [number, signaling] of this.#open) {
      if (signalingClosing(signaling)) this.#open.delete(number);
    }
    const next = signalingForDial(this.#first, dial);
    this.#open.set(dial, next);
    if (this.#next) void this.#next.close();
    if (this.#waiter) {
      this.#waiter.resolve(next);
      this.#waiter = undefined;
    } else this.#next = next;
    return next;
  }

  /** The next dial's signalling, for the serving connection: the first, then each new dial's once it signals. */
  take(): Promise<Signaling> {
    if (!this.#handedFirst) return Promise.resolve(this.first);
    if (this.#next) {
      const next = this.#next;
      this.#next = undefined;
      return Promise.resolve(this.#wrap(next));
    }
    if (this.#ended) return Promise.reject(endedError());
    this.#waiter?.reject(endedError());
    return new Promise<A2AClientSignaling>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    }).then((next) => {
      this.#next = undefined;
      return this.#wrap(next);
    });
  }

  /** Whether the stream ended: no dial comes any more. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The stream ended: every dial's signalling closes, and no new dial is taken. */
  async end(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#waiter?.reject(endedError());
    this.#waiter = undefined;
    this.#next = undefined;
    await Promise.allSettled([...this.#open.values()].map((signaling) => signaling.close()));
    this.onend?.();
  }

  /** A closed signalling that consumes an earlier dial's late messages. */
  #spent(dial: number): A2AClientSignaling {
    const spent = signalingForDial(this.#first, dial);
    void spent.close();
    return spent;
  }
}

function endedError(): Error {
  return new WebRTCTransportError(
    "Cannot answer the agent again as the stream of the message that offered the MCP server ended",
  );
}

/** Serves one message's channel, and tells what became of it, once. */
class ChannelWatch {
  #events: McpChannelEvent[] = [];
  #decided = false;
  #wake?: () => void;
  #settled = withResolvers<void>();

  /** Resolves with {@linkcode CHANGED} once an event waits. */
  changed(): Promise<typeof CHANGED> {
    if (this.#events.length > 0) return Promise.resolve(CHANGED);
    return new Promise((resolve) => (this.#wake = () => resolve(CHANGED)));
  }

  /** The events that wait, taken. */
  take(): McpChannelEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }

  /** Resolves once the channel opened or failed. */
  settled(): Promise<void> {
    return this.#settled.promise;
  }

  fail(error: Error): void {
    this.#decide({ state: "failed", error });
  }

  /**
   * Serves the message's one session on a connection that answers each of
   * the agent's dials, so that the session outlives a lost peer connection
   * while the stream is open. The server is made once the agent has the
   * answer (or when the session opens, if that comes first): the answer does
   * not wait for it, as a listener's connects do not.
   */
  serve(options: SendMessageOfferingMcpOptions, dials: Dials): void {
    /** The signalling of the dial under way: the goodbye that says why goes there. */
    let dialled: Signaling | undefined;
    const connection = new WebRTCConnection({
      ...options.transportOptions,
      signaling: async () => (dialled = await dials.take()),
      initiator: false,
      resume: true,
    });
    let error: Error | undefined;
    let session: WebRTCSessionTransport | undefined;
    let made: Promise<ConnectableServer> | undefined;
    const end = () => {
      this.fail(
        error ??
          new WebRTCTransportError(
            "Cannot serve the agent as the MCP channel closed before it opened",
          ),
      );
      void made?.then((server) => server.close(), () => {});
      void connection.close();
    };
    const server = () =>
      made ??= (async () => {
        try {
          return await options.createServer();
        } catch (cause) {
          error ??= new WebRTCTransportError(
            `Cannot serve the agent as createServer() failed: ${
              cause instanceof Error ? cause.message : String(cause)
            }`,
            { cause },
          );
          // The agent learns why at once, not at its connect timeout, on the
          // signalling of the dial that asked (the server is made only once a
          // dial answered, or a session opened on one).
          if (dialled) {
            await settle(dialled.send({ type: "bye", reason: error.message }), BYE_TIMEOUT);
          }
          end();
          throw error;
        }
      })();
    connection.onconnectstep = (step) => {
      if (step === "answer") server().catch(() => {});
    };
    connection.onerror = (reported) => {
      error ??= reported;
    };
    // Without the stream no dial comes: a lost connection cannot be answered again.
    connection.ondisconnect = () => {
      if (dials.ended || !session) end();
    };
    dials.onend = () => {
      if (!connection.connected) end();
    };
    connection.ontransport = (transport) => {
      if (session) return void transport.close(); // One session per message.
      session = transport;
      void transport.closed.then(end);
      server().then(async (served) => {
        await served.connect(transport);
        this.#decide({ state: "open", transport });
      }).catch((cause) => {
        error ??= cause as Error;
        void transport.close();
        end();
      });
    };
    // Not awaited: the agent's messages that the dial waits for come on the stream this call reads.
    connection.connect().catch((cause) => {
      error ??= cause as Error;
      end();
    });
  }
  #decide(status: McpChannelStatus): void {
    if (this.#decided) return;
    this.#decided = true;
    this.#events.push({ payload: { $case: "mcpChannel", value: status } });
    this.#settled.resolve();
    this.#wake?.();
    this.#wake = undefined;
  }
}

/**
 * The version of the extension the agent's card announces, if the client can
 * read the card and it announces only another version than this one.
 */
async function otherVersionOf(client: object): Promise<number | undefined> {
  const read = (client as Partial<Pick<Client, "getAgentCard">>).getAgentCard;
  if (typeof read !== "function") return undefined;
  const card = await read.call(client).catch(() => undefined);
  const versions = (card?.capabilities?.extensions ?? [])
    .map((extension) => signalingExtensionVersion(extension?.uri))
    .filter((version) => version !== undefined);
  return versions.length > 0 && !versions.includes(2) ? versions[0] : undefined;
}
