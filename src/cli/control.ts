/**
 * The loopback control port of a running `serve`: how `invite`, `revoke`
 * and `invites` reach it. One JSON line per connection, with the token from
 * the host ticket file, answered with one JSON line.
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
import { WebRTCTransportError } from "../errors.ts";

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
 * import { sendControl, startControlServer } from "./control.ts";
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
 * import { sendControl } from "./control.ts";
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
