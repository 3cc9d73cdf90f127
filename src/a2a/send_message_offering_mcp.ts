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
import { WebRTCServerTransport } from "../webrtc_server_transport.ts";
import type { WebRTCTransportOptions } from "../webrtc_transport.ts";
import {
  type A2AMcpOffer,
  checkSignalingKey,
  signalingExtensionVersion,
  versionMismatch,
} from "./extension.ts";
import { A2AClientSignaling, withExtension } from "./a2a_client_signaling.ts";

/** What becomes of the MCP channel a message offered: open, or failed and why. */
export type McpChannelStatus =
  | {
    /** The agent's MCP client reached the desktop's server: the data channel is open. */
    readonly state: "open";
    /** The transport serving it, e.g. for `getConnectionPath()` or `close()`. */
    readonly transport: WebRTCServerTransport;
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
   * share one. Called once, when the agent first signals; the server is
   * closed when its transport closes.
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
 * stream but the signalling, serves a fresh server from
 * `options.createServer()` when the agent signals, and yields one
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
  const offer: A2AMcpOffer = options.keyId === undefined
    ? { version: 2, sealed: key !== undefined }
    : { version: 2, sealed: key !== undefined, keyId: options.keyId };
  const requestOptions = withExtension(options.requestOptions);
  const signaling = new A2AClientSignaling(client, { requestOptions });
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
      if (!signaling.receive(event)) {
        yield event;
        continue;
      }
      if (signaling.failure) channel.fail(signaling.failure);
      else if (!serving) {
        serving = true;
        await channel.serve(
          options,
          key ? new AuthenticatedSignaling(signaling, { key, role: "host" }) : signaling,
        );
      }
      yield* channel.take();
    }
  } finally {
    await signaling.close();
    void stream.return?.(undefined);
  }
  // The stream is over: a channel still opening learns why it cannot (the
  // agent's goodbye, or the signalling's end) from its transport.
  if (serving) await channel.settled();
  yield* channel.take();
}

const CHANGED = Symbol("changed");

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

  async serve(options: SendMessageOfferingMcpOptions, signaling: Signaling): Promise<void> {
    let server: ConnectableServer;
    try {
      server = await options.createServer();
    } catch (cause) {
      const error = new WebRTCTransportError(
        `Cannot serve the agent as createServer() failed: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { cause },
      );
      // The agent learns why at once, not at its connect timeout.
      await signaling.start?.({ initiator: false });
      await settle(signaling.send({ type: "bye", reason: error.message }), BYE_TIMEOUT);
      return this.fail(error);
    }
    const transport = new WebRTCServerTransport({ ...options.transportOptions, signaling });
    let error: Error | undefined;
    transport.onconnectstep = (step) => {
      if (step === "channel") this.#decide({ state: "open", transport });
    };
    // Kept by server.connect(), which chains its own handlers after them.
    transport.onerror = (reported) => {
      error ??= reported;
    };
    transport.onclose = () => {
      this.fail(
        error ??
          new WebRTCTransportError(
            "Cannot serve the agent as the MCP channel closed before it opened",
          ),
      );
      void server.close();
    };
    try {
      await server.connect(transport);
    } catch (cause) {
      this.fail(cause as Error);
      await transport.close();
    }
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
