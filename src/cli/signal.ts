/**
 * `signal`: runs the signalling worker locally in Miniflare (workerd), for
 * demos and tests. It needs a checkout of the repository: the worker is not
 * part of the published package.
 *
 * @module
 */
import { parseFlags, UsageError } from "./args.ts";
import { ExitCode, waitForStop } from "./exit.ts";
import { StatusLog } from "./log.ts";

/** The usage of `signal`. */
export const SIGNAL_HELP = `Usage:
  mcp-webrtc signal [--port N] [--host ADDR]

Runs the signalling service locally (the Cloudflare worker in Miniflare) and
prints its URL as the first line on stdout; pass it to serve --signal. Needs a
checkout of the repository (the worker is not in the published package).

Options:
  --port N                The port to listen on; 0 picks a free one (default: 8787)
  --host ADDR             The address to listen on (default: 127.0.0.1)
  -q, --quiet             Print no status lines on stderr
  --log-json              Print status lines on stderr as JSON
  -h, --help              Show this help`;

interface LocalSignalingModule {
  startLocalSignaling(
    options: { port?: number; host?: string },
  ): Promise<{ url: string; close(): Promise<void> }>;
}

/**
 * Runs `signal` until SIGINT or SIGTERM.
 *
 * @param args The arguments after `signal`.
 * @returns The exit code.
 * @throws {UsageError} If the command line is malformed.
 *
 * @example Run a local signalling service on a free port
 * ```ts ignore
 * import { signal } from "./signal.ts";
 *
 * Deno.exit(await signal(["--port", "0"]));
 * ```
 */
export async function signal(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    port: { type: "string" },
    host: { type: "string" },
    quiet: { type: "boolean", short: "q" },
    "log-json": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(SIGNAL_HELP);
    return ExitCode.OK;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Cannot run signal with arguments: received ${positionals.join(" ")}`);
  }
  const port = values.port === undefined ? 8787 : Number(values.port);
  if (!/^\d+$/.test(values.port ?? "0") || port > 65535) {
    throw new UsageError(
      `Cannot read --port as it must be an integer from 0 to 65535: received "${values.port}"`,
    );
  }
  const log = new StatusLog({ quiet: values.quiet, json: values["log-json"] });
  // Computed so that the published package, which has no worker, still loads.
  const local = new URL("../../worker/local.ts", import.meta.url);
  let module: LocalSignalingModule;
  try {
    module = await import(local.href);
  } catch (error) {
    log.error(
      "signal-unavailable",
      `Cannot run the local signalling service: it needs a checkout of the repository (${local.href}): ${
        (error as Error).message
      }`,
    );
    return ExitCode.FAILURE;
  }
  const server = await module.startLocalSignaling({ port, host: values.host ?? "127.0.0.1" });
  await Deno.stdout.write(new TextEncoder().encode(server.url + "\n"));
  log.info("listening", `Signalling service listening on ${server.url}`, { url: server.url });
  const stop = await waitForStop(new Promise<never>(() => {}));
  await Promise.race([server.close(), new Promise((resolve) => setTimeout(resolve, 1_500))]);
  log.info("stopped", `Stopped on ${stop.kind === "signal" ? stop.signal : "request"}`);
  return ExitCode.OK;
}
