/**
 * Runs the signalling worker locally in Miniflare (workerd) on 127.0.0.1:
 * the room server of the demo and of every test. Also the `deno task signal`
 * command.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { Miniflare } from "miniflare";
import { type TurnEnv, turnUrls } from "./src/turn.ts";
import { bundle } from "../scripts/bundle.ts";

/** Options of {@linkcode startLocalSignaling}. */
export interface LocalSignalingOptions {
  /**
   * The TCP port to listen on; `0` picks a free one.
   *
   * @default {0}
   */
  port?: number;
  /**
   * The address to listen on.
   *
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Overrides of the worker's `vars` from `wrangler.jsonc`, e.g.
   * `{ MAX_GUESTS: "2" }`.
   *
   * @default {{}}
   */
  vars?: Record<string, string>;
  /**
   * The source of an ES module to run as the worker instead of
   * `worker/src/index.ts`; it imports the real worker from `./worker.js`.
   * Tests use it to inject faults at the worker's seams.
   *
   * @default {undefined}
   */
  entry?: string;
  /**
   * Receives what the worker logs (workerd's stdout and stderr, as text),
   * instead of this process's stdout and stderr.
   *
   * @default {undefined}
   */
  onLog?: (text: string) => void;
  /**
   * Answers the worker's own outgoing requests (e.g. to a TURN provider's
   * API) instead of the network, so tests stay on this machine.
   *
   * @default {undefined}
   */
  outbound?: (request: Request) => Response | Promise<Response>;
}

/** A running local signalling server. */
export interface LocalSignaling {
  /**
   * The WebSocket base URL at the address it listens on, e.g.
   * `ws://127.0.0.1:8787` (`127.0.0.1` for `0.0.0.0` and `::`); rooms are at
   * `/v1/rooms/<id>`.
   */
  url: string;
  /** The same server as an HTTP URL, e.g. `http://127.0.0.1:8787`. */
  httpUrl: string;
  /** The Miniflare instance, e.g. to force hibernation in tests. */
  miniflare: Miniflare;
  /**
   * Forces a room's Durable Object to hibernate, keeping its WebSockets (as the
   * runtime does to an idle object).
   *
   * @returns `true` if it hibernated the room, `false` if the room was not running.
   */
  hibernate(room: string): Promise<boolean>;
  /** Stops the server; idempotent. */
  close(): Promise<void>;
}

interface WranglerConfig {
  name: string;
  compatibility_date: string;
  durable_objects: { bindings: { name: string; class_name: string }[] };
  vars?: Record<string, string>;
}

const WORKER_DIR = new URL("./", import.meta.url);

let bundled: Promise<string> | undefined;

/**
 * Bundles `worker/src/index.ts` into one ES module (with esbuild, keeping
 * `cloudflare:workers` external), once per process.
 *
 * @returns The JavaScript source of the worker.
 * @throws {Error} If bundling fails, with the bundler's output.
 *
 * @example Bundle the worker
 * ```ts ignore
 * import { bundleWorker } from "./local.ts";
 * const source = await bundleWorker();
 * console.log(source.length);
 * ```
 */
export function bundleWorker(): Promise<string> {
  bundled ??= bundle(new URL("src/index.ts", WORKER_DIR), {
    what: "the signalling worker",
    platform: "browser",
    external: ["cloudflare:workers"],
  });
  bundled.catch(() => (bundled = undefined));
  return bundled;
}

/** Reads `worker/wrangler.jsonc` (comments only on their own lines). */
async function readWranglerConfig(): Promise<WranglerConfig> {
  const text = await Deno.readTextFile(new URL("wrangler.jsonc", WORKER_DIR));
  return JSON.parse(text.replace(/^\s*\/\/.*$/gm, ""));
}

/**
 * Starts the signalling worker in Miniflare, with its Durable Object binding
 * and vars as in `wrangler.jsonc`, on 127.0.0.1 and a free port by default.
 *
 * @param options Where to listen, and var overrides.
 * @returns The running server; call `close()` when done.
 *
 * @example Start a server, ask for its health, stop it
 * ```ts ignore
 * import { startLocalSignaling } from "./local.ts";
 * import assert from "node:assert/strict";
 *
 * const server = await startLocalSignaling();
 * const response = await fetch(`${server.httpUrl}/health`);
 * assert.deepEqual(await response.json(), { ok: true });
 * await server.close();
 * ```
 */
export async function startLocalSignaling(
  options: LocalSignalingOptions = {},
): Promise<LocalSignaling> {
  const { host = "127.0.0.1", port = 0, vars = {}, entry, onLog, outbound } = options;
  const [source, config] = await Promise.all([bundleWorker(), readWranglerConfig()]);
  const miniflare = new Miniflare({
    name: config.name,
    modules: entry === undefined ? [{ type: "ESModule", path: "index.js", contents: source }] : [
      { type: "ESModule", path: "index.js", contents: entry },
      { type: "ESModule", path: "worker.js", contents: source },
    ],
    compatibilityDate: config.compatibility_date,
    durableObjects: Object.fromEntries(
      config.durable_objects.bindings.map((
        b,
      ) => [b.name, { className: b.class_name, useSQLite: true }]),
    ),
    bindings: { ...config.vars, ...vars },
    // Clients reach the worker on a socket of workerd's own, as they reach the
    // deployed worker: Miniflare's entry worker in front would forward a
    // request with an Upgrade header as a GET whatever its method, and answer
    // 500 for it. Miniflare's own socket stays on loopback, for its API.
    host: "127.0.0.1",
    port: 0,
    unsafeDirectSockets: [{ host, port }],
    ...outbound && { outboundService: outbound },
    ...onLog && {
      handleRuntimeStdio(stdout: Readable, stderr: Readable) {
        for (const stream of [stdout, stderr]) {
          stream.setEncoding("utf8");
          stream.on("data", (text: string) => onLog(text));
        }
      },
    },
  });
  let httpUrl: string;
  try {
    await miniflare.ready;
    httpUrl = (await miniflare.unsafeGetDirectURL()).origin;
  } catch (error) {
    await miniflare.dispose();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    url: httpUrl.replace(/^http/, "ws"),
    httpUrl,
    miniflare,
    async hibernate(room: string) {
      try {
        await miniflare.unsafeEvictDurableObject(config.name, "Room", {
          name: room,
          webSockets: "hibernate",
        });
        return true;
      } catch (error) {
        if (/not currently running/.test((error as Error).message)) return false;
        throw error;
      }
    },
    close: () => (closing ??= miniflare.dispose()),
  };
}

/** The names of the worker's TURN settings, as `vars` or secrets of the deployed worker. */
const TURN_VARIABLES = [
  "TURN_URLS",
  "TURN_SECRET",
  "TURN_TTL_SECONDS",
  "CLOUDFLARE_TURN_KEY_ID",
  "CLOUDFLARE_TURN_API_TOKEN",
] as const satisfies readonly (keyof TurnEnv)[];

/**
 * Reads the worker's TURN settings from environment variables of the same
 * names as the deployed worker's `vars` and secrets (`TURN_URLS`,
 * `TURN_SECRET`, `TURN_TTL_SECONDS`, `CLOUDFLARE_TURN_KEY_ID`,
 * `CLOUDFLARE_TURN_API_TOKEN`), refusing settings that would hand out nothing
 * usable. Empty variables count as unset.
 *
 * @param env Reads one environment variable.
 * @returns The `vars` to give {@linkcode startLocalSignaling}.
 * @throws {TypeError} If a setting is malformed or lacks its partner, naming it.
 *
 * @example TURN REST credentials for a coturn on this machine
 * ```ts ignore
 * import { turnVarsFromEnv } from "./local.ts";
 * import assert from "node:assert/strict";
 *
 * const env = { TURN_URLS: "turn:127.0.0.1:3478", TURN_SECRET: "s3cret" };
 * const vars = turnVarsFromEnv((name) => env[name as keyof typeof env]);
 * assert.deepEqual(vars, env);
 * ```
 */
export function turnVarsFromEnv(env: (name: string) => string | undefined): TurnEnv {
  const vars: TurnEnv = {};
  for (const name of TURN_VARIABLES) {
    const value = env(name)?.trim();
    if (value) vars[name] = value;
  }
  const fail = (why: string) => {
    throw new TypeError(`Cannot start the signalling server as ${why}`);
  };
  for (const url of turnUrls(vars)) {
    if (!/^(stun|turns?):\S+$/i.test(url)) {
      fail(
        `TURN_URLS holds "${url}", which is not a stun:, turn: or turns: URL: separate the URLs with spaces or commas`,
      );
    }
  }
  if (vars.TURN_SECRET !== undefined && vars.TURN_URLS === undefined) {
    fail("TURN_SECRET is set but TURN_URLS is empty: set TURN_URLS to your TURN server's URLs");
  }
  const ttl = vars.TURN_TTL_SECONDS;
  if (ttl !== undefined && !(/^\d+$/.test(ttl) && Number.isSafeInteger(Number(ttl)) && +ttl > 0)) {
    fail(`TURN_TTL_SECONDS must be a whole number of seconds above 0: received "${ttl}"`);
  }
  const [id, token] = [vars.CLOUDFLARE_TURN_KEY_ID, vars.CLOUDFLARE_TURN_API_TOKEN];
  if ((id === undefined) !== (token === undefined)) {
    fail(
      `${
        id === undefined ? "CLOUDFLARE_TURN_API_TOKEN" : "CLOUDFLARE_TURN_KEY_ID"
      } is set without ${
        id === undefined ? "CLOUDFLARE_TURN_KEY_ID" : "CLOUDFLARE_TURN_API_TOKEN"
      }: set both, or neither`,
    );
  }
  return vars;
}

function parsePort(args: string[]): number {
  const index = args.indexOf("--port");
  if (index === -1) return 8787;
  const port = Number(args[index + 1]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot start the signalling server as --port must be an integer from 0 to 65535: received ${
        args[index + 1]
      }`,
    );
  }
  return port;
}

if (import.meta.main) {
  const host = Deno.args.includes("--host")
    ? Deno.args[Deno.args.indexOf("--host") + 1]
    : undefined;
  let server: LocalSignaling;
  let turn: TurnEnv;
  try {
    turn = turnVarsFromEnv((name) => Deno.env.get(name));
    server = await startLocalSignaling({
      port: parsePort(Deno.args),
      host,
      vars: turn as Record<string, string>,
    });
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
  // The URL alone on stdout, for scripts; the sentences for people on stderr.
  console.log(server.url);
  console.error(
    `Signalling server listening on ${server.url} (rooms at ${server.url}/v1/rooms/<id>)`,
  );
  const turnSources = [
    turn.TURN_URLS && `${turnUrls(turn).join(", ")}${turn.TURN_SECRET ? " (TURN_SECRET)" : ""}`,
    turn.CLOUDFLARE_TURN_KEY_ID && `Cloudflare TURN key ${turn.CLOUDFLARE_TURN_KEY_ID}`,
  ].filter(Boolean);
  if (turnSources.length > 0) {
    console.error(`Rooms hand their members TURN servers: ${turnSources.join("; ")}`);
  }
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
}
