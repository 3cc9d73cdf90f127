/**
 * Joins two MCP transports at the JSON-RPC message level, so that every MCP
 * feature (requests both ways, notifications, cancellation, pings) passes
 * through unchanged.
 *
 * @module
 */
import { settle } from "../_async.ts";
import {
  BRIDGE_DRAIN_TIMEOUT,
  BRIDGE_FAILURE_TIMEOUT,
  DEFAULT_MAX_QUEUED_BYTES,
} from "../constants.ts";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";

/** The JSON-RPC error code the bridge answers with when the other side is gone. */
export const BRIDGE_ERROR_CODE = -32000;

/** Which end of a bridge: `a` (the first transport) or `b` (the second). */
export type BridgeSide = "a" | "b";

/** Options of {@linkcode bridge}. */
export interface BridgeOptions {
  /**
   * The error message answered to the requests in flight from one side when
   * the other side ended; `side` is the side that ended, `cause` the error
   * its `start()` failed with, if it did.
   *
   * @default {"The other end of the MCP bridge closed"}
   */
  endMessage?: (side: BridgeSide, cause?: Error) => string;
  /**
   * Milliseconds a side waits, after the other side ended before it sent any
   * message, for its first request so that it gets an error instead of a
   * silent close (an agent still connecting to a server that died at start).
   *
   * @default {0}
   */
  linger?: Partial<Record<BridgeSide, number>>;
  /**
   * The most characters of JSON that messages may hold while they wait for a
   * side that is still taking an earlier one (the one being sent does not
   * count). A side that stops reading (a server whose stdin is not read, an
   * agent whose channel is full) while the other keeps sending would
   * otherwise make them pile up here without bound: past it, that side is
   * closed with an error naming this limit, and the bridge ends.
   *
   * @default {DEFAULT_MAX_QUEUED_BYTES} (134217728)
   */
  maxQueuedBytes?: number;
  /**
   * Called for errors of either transport.
   *
   * @default {undefined}
   */
  onerror?: (side: BridgeSide, error: Error) => void;
  /**
   * Called once, when both sides are closed; with the side that ended first
   * and the error its `start()` failed with, if it did.
   *
   * @default {undefined}
   */
  onclose?: (first: BridgeSide, cause?: Error) => void;
}

/** A running bridge: see {@linkcode bridge}. */
export interface Bridge {
  /** Resolves once both sides are closed. */
  readonly closed: Promise<void>;
  /** Resolves once both sides started; rejects with the first failure. */
  readonly started: Promise<void>;
  /** Closes both sides. */
  close(): Promise<void>;
}

type Id = string | number;

interface End {
  readonly side: BridgeSide;
  readonly transport: Transport;
  /** Resolves once started; sends wait for it. */
  ready: Promise<void>;
  /** Sends to this side, in order. */
  queue: Promise<void>;
  /** Messages handed to `queue` and not yet sent (or failed). */
  busy: number;
  /** Characters of JSON of the messages waiting behind the one being sent. */
  waiting: number;
  /** Requests this side sent that the other side has not answered. */
  readonly pending: Set<Id>;
  heard: boolean;
  ended: boolean;
  cause?: Error;
}

function isRequest(
  message: JSONRPCMessage,
): message is JSONRPCMessage & { id: Id; method: string } {
  return "method" in message && "id" in message && message.id !== undefined;
}

function isResponse(message: JSONRPCMessage): message is JSONRPCMessage & { id: Id } {
  return !("method" in message) && "id" in message && message.id !== undefined &&
    message.id !== null;
}

/**
 * Forwards every message of `a` to `b` and back, and starts both. When one
 * side ends, the requests the other side has in flight are answered with a
 * JSON-RPC error (code {@linkcode BRIDGE_ERROR_CODE}) instead of hanging,
 * then that side is closed too. A request whose forwarding fails is answered
 * the same way.
 *
 * @param a One transport, not started.
 * @param b The other transport, not started.
 * @param options Error messages and callbacks.
 * @returns The running bridge.
 *
 * @example Bridge a client to a server over two in-memory pairs
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * // @ts-types="@modelcontextprotocol/sdk/server/mcp"
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * // @ts-types="@modelcontextprotocol/sdk/inMemory"
 * import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
 * import { bridge } from "./bridge.ts";
 * import assert from "node:assert/strict";
 *
 * const [clientSide, bridgeA] = InMemoryTransport.createLinkedPair();
 * const [bridgeB, serverSide] = InMemoryTransport.createLinkedPair();
 * const server = new McpServer({ name: "far", version: "1.0.0" });
 * await server.connect(serverSide);
 * const running = bridge(bridgeA, bridgeB);
 * await running.started;
 * const client = new Client({ name: "near", version: "1.0.0" });
 * await client.connect(clientSide);
 * assert.equal(client.getServerVersion()?.name, "far");
 * await client.close();
 * await running.closed;
 * ```
 */
export function bridge(a: Transport, b: Transport, options: BridgeOptions = {}): Bridge {
  const endMessage = options.endMessage ??
    (() => "The other end of the MCP bridge closed");
  const make = (side: BridgeSide, transport: Transport): End => ({
    side,
    transport,
    ready: Promise.resolve(),
    queue: Promise.resolve(),
    busy: 0,
    waiting: 0,
    pending: new Set(),
    heard: false,
    ended: false,
  });
  const ends = { a: make("a", a), b: make("b", b) };
  const other = (end: End) => end.side === "a" ? ends.b : ends.a;
  let first: End | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const closedSides = new Set<BridgeSide>();
  const lingering = new Map<BridgeSide, () => void>();

  const maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  if (!Number.isSafeInteger(maxQueued) || maxQueued < 1) {
    throw new RangeError(
      `Cannot bridge as 'maxQueuedBytes' must be a positive integer: received ${maxQueued}`,
    );
  }

  const enqueue = (to: End, message: JSONRPCMessage, from?: End) => {
    // Behind another, a message waits: its size counts until its turn comes.
    let size = to.busy > 0 ? JSON.stringify(message).length : 0;
    if (to.waiting + size > maxQueued) {
      const error = new Error(
        `Cannot forward a message (${size} characters) as the messages waiting for side ${to.side} to read would exceed 'maxQueuedBytes' (${maxQueued} characters, ${to.waiting} held): it is not reading what it is sent; it is closed`,
      );
      options.onerror?.(to.side, error);
      if (from && isRequest(message) && from.pending.delete(message.id)) {
        enqueue(from, errorResponse(message.id, error.message));
      }
      void to.transport.close().catch(() => {});
      return;
    }
    to.waiting += size;
    to.busy++;
    to.queue = to.queue.then(async () => {
      to.waiting -= size;
      size = 0;
      try {
        await to.ready;
        await to.transport.send(message);
      } catch (error) {
        // A request that could not be delivered is answered, not dropped.
        if (from && isRequest(message) && from.pending.delete(message.id)) {
          enqueue(from, errorResponse(message.id, deliveryMessage(to, error)));
        }
      } finally {
        to.busy--;
      }
    });
  };

  const deliveryMessage = (to: End, error: unknown) =>
    to.ended ? endMessage(to.side, to.cause) : `Cannot forward the message: ${String(error)}`;

  const errorResponse = (id: Id, message: string): JSONRPCMessage => ({
    jsonrpc: "2.0",
    id,
    error: { code: BRIDGE_ERROR_CODE, message },
  });

  const receive = (from: End, message: JSONRPCMessage) => {
    from.heard = true;
    const to = other(from);
    if (isRequest(message)) from.pending.add(message.id);
    else if (isResponse(message)) to.pending.delete(message.id);
    else if ("method" in message && message.method === "notifications/cancelled") {
      const id = (message.params as { requestId?: Id } | undefined)?.requestId;
      if (id !== undefined) from.pending.delete(id);
    }
    if (to.ended) {
      if (isRequest(message) && from.pending.delete(message.id)) {
        enqueue(from, errorResponse(message.id, endMessage(to.side, to.cause)));
        lingering.get(from.side)?.();
      }
      return;
    }
    enqueue(to, message, from);
  };

  const end = (gone: End, cause?: Error) => {
    if (gone.ended) return;
    gone.ended = true;
    gone.cause ??= cause;
    first ??= gone;
    const survivor = other(gone);
    if (survivor.ended) return;
    for (const id of survivor.pending) {
      enqueue(survivor, errorResponse(id, endMessage(gone.side, gone.cause)));
    }
    survivor.pending.clear();
    const linger = survivor.heard ? 0 : options.linger?.[survivor.side] ?? 0;
    void (async () => {
      if (linger > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, linger);
          lingering.set(survivor.side, () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      // Let the answers leave before closing, within bounds.
      await settle(survivor.queue, BRIDGE_DRAIN_TIMEOUT);
      await survivor.transport.close().catch(() => {});
    })();
  };

  for (const end_ of [ends.a, ends.b]) {
    const transport = end_.transport;
    transport.onmessage = (message) => receive(end_, message);
    transport.onerror = (error) => options.onerror?.(end_.side, error);
    transport.onclose = async () => {
      // A transport whose start() fails closes first: wait for the reason.
      await settle(
        end_.ready.then(() => end(end_), (error) => end(end_, error as Error)),
        BRIDGE_FAILURE_TIMEOUT,
      );
      end(end_);
      closedSides.add(end_.side);
      if (closedSides.size === 2) {
        options.onclose?.(first?.side ?? end_.side, first?.cause);
        resolveClosed();
      }
    };
  }

  const start = (end_: End) => {
    try {
      end_.ready = end_.transport.start();
    } catch (error) {
      end_.ready = Promise.reject(error);
    }
    end_.ready.catch(async (error) => {
      end(end_, error as Error);
      await end_.transport.close().catch(() => {});
    });
    return end_.ready;
  };
  const started = Promise.all([start(ends.a), start(ends.b)]).then(() => {});
  started.catch(() => {});

  return {
    closed,
    started,
    async close() {
      await Promise.allSettled([a.close(), b.close()]);
      await closed;
    },
  };
}
