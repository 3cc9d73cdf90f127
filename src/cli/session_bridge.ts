/**
 * `serve`'s bridge of one MCP session: the agent's channel on one side, its
 * own upstream (a child process speaking stdio, or a Streamable HTTP
 * session) on the other, with what each end says logged.
 *
 * @module
 */
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import type { ConnectableServer } from "../webrtc_listener.ts";
import { bridge, type BridgeSide } from "./bridge.ts";
import type { StatusLog } from "./log.ts";
import { ChildProcessTransport } from "./stdio.ts";

/**
 * One MCP session of an agent: its channel's transport bridged to its own
 * upstream. The listener's `createServer` returns one per session.
 */
export class SessionBridge implements ConnectableServer {
  readonly #label: string;
  readonly #fields: { agent: number; session: number };
  readonly #upstream: Transport;
  readonly #log: StatusLog;
  readonly #http: boolean;
  #close?: () => Promise<void>;

  constructor(
    label: string,
    fields: { agent: number; session: number },
    upstream: Transport,
    log: StatusLog,
    http: boolean,
  ) {
    this.#label = label;
    this.#fields = fields;
    this.#upstream = upstream;
    this.#log = log;
    this.#http = http;
  }

  connect(transport: Transport): Promise<void> {
    const log = this.#log;
    const Label = this.#label[0].toUpperCase() + this.#label.slice(1);
    const fields = this.#fields;
    const upstream = this.#upstream;
    const running = bridge(transport, upstream, {
      endMessage: (side: BridgeSide, cause?: Error) => {
        if (side === "a") {
          // A channel that never opened failed to start; it was not a session the agent closed.
          return cause
            ? `The agent's channel never opened: ${cause.message}`
            : "The agent closed the session";
        }
        if (cause) return cause.message;
        if (upstream instanceof ChildProcessTransport) {
          const code = upstream.exitCode;
          return code === undefined
            ? "The MCP server process exited"
            : `The MCP server process exited (code ${code})`;
        }
        return "The MCP server session ended";
      },
      // An agent still starting a session whose server died at once gets an error.
      linger: { a: 10_000 },
      onerror: (side, error) =>
        log.warn(
          side === "a" ? "agent-error" : "server-error",
          `${Label}${side === "a" ? "" : "'s server"}: ${error.message}`,
          fields,
        ),
      onclose: (first, cause) => {
        let why: string;
        if (first === "a") {
          why = cause ? `its channel never opened: ${cause.message}` : "the agent closed it";
        } else if (cause) why = cause.message;
        else if (upstream instanceof ChildProcessTransport) {
          why = `its server exited${
            upstream.exitCode === undefined ? "" : ` (code ${upstream.exitCode})`
          }`;
        } else why = "its server session ended";
        log.info("session-closed", `${Label} ended: ${why}`, { ...fields, reason: why });
      },
    });
    if (upstream instanceof ChildProcessTransport) {
      running.started.then(
        () => log.info("server-started", `${Label}'s server started (pid ${upstream.pid})`, fields),
        (error) => log.error("server-start-failed", `${Label}: ${error.message}`, fields),
      );
    } else if (this.#http) {
      running.started.catch((error) =>
        log.error("server-start-failed", `${Label}: ${error.message}`, fields)
      );
    }
    this.#close = () => running.close();
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.#close?.();
  }
}
