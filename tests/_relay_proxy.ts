/**
 * A man in the middle of an agent's room connection, for the relay tests: a
 * WebSocket proxy on 127.0.0.1 in front of the local worker that records
 * every frame and lets a test alter, drop, replay or reorder the relay frames
 * on their way to the agent, as a compromised signalling service could.
 */
import { formatTicket, parseTicket } from "../mod.ts";

/** What the proxy does with one relay frame on its way to the agent. */
export type Tamper = (frame: Uint8Array) => Uint8Array[];

/** A running proxy. */
export interface RelayProxy {
  /** The guest ticket, rewritten to reach the room through the proxy. */
  ticket: string;
  /** Every binary (relay) frame that passed, both ways, as sent. */
  relayed: Uint8Array[];
  /** Every text frame that passed, both ways. */
  texts: string[];
  /** Applied to each relay frame on its way to the agent; the default passes it on. */
  tamper: Tamper;
  close(): Promise<void>;
}

/**
 * Starts a proxy in front of `workerUrl` and rewrites `ticket` to go through it.
 *
 * @param workerUrl The worker's WebSocket base URL, e.g. `ws://127.0.0.1:8787`.
 * @param ticket A guest ticket of a room on that worker.
 */
export function startRelayProxy(workerUrl: string, ticket: string): RelayProxy {
  const sockets: WebSocket[] = [];
  const proxy: RelayProxy = {
    ticket: "",
    relayed: [],
    texts: [],
    tamper: (frame) => [frame],
    close: async () => {
      for (const socket of sockets) socket.close();
      await server.shutdown();
    },
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const url = new URL(request.url);
    const protocols = (request.headers.get("Sec-WebSocket-Protocol") ?? "").split(",")
      .map((p) => p.trim()).filter((p) => p !== "");
    const upstream = new WebSocket(`${workerUrl}${url.pathname}${url.search}`, protocols);
    upstream.binaryType = "arraybuffer";
    const { socket, response } = Deno.upgradeWebSocket(request);
    // Deno reads the offered list split on ", " only, and the ws client joins it with ",":
    // name the protocol on the response directly.
    response.headers.set("Sec-WebSocket-Protocol", "mcp-webrtc.v1");
    socket.binaryType = "arraybuffer";
    sockets.push(socket, upstream);
    const waiting: (string | ArrayBuffer)[] = [];
    const record = (data: string | ArrayBuffer) => {
      if (typeof data === "string") proxy.texts.push(data);
      else proxy.relayed.push(new Uint8Array(data.slice(0)));
    };
    socket.onmessage = ({ data }) => {
      record(data);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data);
      else waiting.push(data);
    };
    upstream.onopen = () => {
      for (const data of waiting.splice(0)) upstream.send(data);
    };
    const down: (string | Uint8Array)[] = [];
    const deliver = (data: string | Uint8Array) => {
      if (socket.readyState === WebSocket.CONNECTING) return void down.push(data);
      if (socket.readyState === WebSocket.OPEN) socket.send(data);
    };
    socket.onopen = () => {
      for (const data of down.splice(0)) socket.send(data);
    };
    upstream.onmessage = ({ data }) => {
      record(data);
      if (typeof data === "string") return deliver(data);
      for (const out of proxy.tamper(new Uint8Array(data))) deliver(out);
    };
    const closeBoth = () => {
      if (socket.readyState === WebSocket.OPEN) socket.close(1000);
      if (upstream.readyState === WebSocket.OPEN) upstream.close(1000);
    };
    socket.onclose = closeBoth;
    upstream.onclose = closeBoth;
    socket.onerror = () => {};
    upstream.onerror = () => {};
    return response;
  });
  const parsed = parseTicket(ticket);
  proxy.ticket = formatTicket({ ...parsed, url: `ws://127.0.0.1:${server.addr.port}` });
  return proxy;
}

/** A TCP proxy in front of the worker that counts bytes and can stop reading from it. */
export interface TcpProxy {
  /** The WebSocket base URL to use instead of the worker's. */
  url: string;
  /** Bytes taken from the client and passed to the worker, all connections together. */
  readonly up: number;
  /** Bytes taken from the worker and passed to the client, all connections together. */
  readonly down: number;
  /**
   * Stops reading from the worker: what it sends waits in the worker and the
   * kernel's socket buffers, as for a client that stopped reading its socket.
   */
  pause(): void;
  /** Reads from the worker again. */
  resume(): void;
  /** Called after each chunk passed up or down. */
  onchunk?: () => void;
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy on 127.0.0.1 in front of `workerUrl` (a `ws://` URL).
 * Below WebSocket framing, so pausing it is a client that reads nothing.
 */
export function startTcpProxy(workerUrl: string): TcpProxy {
  const target = new URL(workerUrl.replace(/^ws/, "http"));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let gate: PromiseWithResolvers<void> | undefined;
  let up = 0;
  let down = 0;
  const proxy: TcpProxy = {
    url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get up() {
      return up;
    },
    get down() {
      return down;
    },
    pause: () => void (gate ??= Promise.withResolvers()),
    resume: () => {
      gate?.resolve();
      gate = undefined;
    },
    close: async () => {
      proxy.resume();
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await accepting;
    },
  };
  async function pump(from: Deno.Conn, to: Deno.Conn, downward: boolean): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        if (downward && gate) await gate.promise;
        const n = await from.read(buffer);
        if (n === null) break;
        for (let written = 0; written < n;) written += await to.write(buffer.subarray(written, n));
        if (downward) down += n;
        else up += n;
        proxy.onchunk?.();
      }
    } catch {
      // Either side closed.
    } finally {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
        conns.delete(conn);
      }
    }
  }
  const accepting = (async () => {
    try {
      for await (const client of listener) {
        conns.add(client);
        const worker = await Deno.connect({
          hostname: target.hostname,
          port: Number(target.port),
        });
        conns.add(worker);
        void pump(client, worker, false);
        void pump(worker, client, true);
      }
    } catch {
      // The listener closed.
    }
  })();
  return proxy;
}
