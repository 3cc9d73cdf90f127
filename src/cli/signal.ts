/**
 * `signal`: runs the signalling worker locally in Miniflare (workerd), for
 * demos and tests. It needs a checkout of the repository: the worker is not
 * part of the published package.
 *
 * @module
 */
import { CLI_STOP_TIMEOUT } from "../constants.ts";
import { parseFlags } from "./args.ts";
import { UsageError } from "../errors.ts";
import { ExitCode, waitForStop } from "./exit.ts";
import { StatusLog } from "./log.ts";

/** What `signal` says where it cannot run: in the npm package, under Node. */
const SIGNAL_NEEDS_DENO =
  "Cannot run the local signalling service from the npm package: it runs the worker in Miniflare from a checkout of the repository, with Deno. Install Deno (https://deno.com), clone the repository, run deno task signal there, and pass the URL it prints to serve --signal; or deploy the worker (docs/PROTOCOL.md#deploy-the-worker)";

/** The usage of `signal`. */
export const SIGNAL_HELP = `Usage:
  mcp-webrtc signal [--port N] [--host ADDR]

Runs the signalling service locally (the Cloudflare worker in Miniflare) and
prints its URL as the first line on stdout; pass it to serve --signal. Needs
Deno and a checkout of the repository (the worker is in neither published
package: from the npm package, run deno task signal in a checkout instead).

Options:
  --port N                The port to listen on; 0 picks a free one (default: 8787)
  --host ADDR             The address to listen on (default: 127.0.0.1)
  -q, --quiet             Print no status lines on stderr
  --log-json              Print status lines on stderr as JSON
  -h, --help              Show this help

Environment (the deployed worker's TURN vars and secrets, same names):
  TURN_URLS               stun:/turn:/turns: URLs handed to room members
  TURN_SECRET             Your TURN server's shared secret (coturn static-auth-secret)
  TURN_TTL_SECONDS        How long handed-out credentials stay valid (default: 86400)
  CLOUDFLARE_TURN_KEY_ID, CLOUDFLARE_TURN_API_TOKEN
                          A Cloudflare Realtime TURN key and its API token`;

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
  // The npm package's CLI runs under Node, with a Deno namespace of its own
  // making: the worker is not in that package, and its runner is a Deno program.
  if ((globalThis as { Deno?: unknown }).Deno === undefined) {
    log.error("signal-unavailable", SIGNAL_NEEDS_DENO);
    return ExitCode.FAILURE;
  }
  // The worker is not in the published package: run it from a checkout, in a
  // process of its own (Miniflare and workerd stay out of the CLI's graph).
  const local = new URL("../../worker/local.ts", import.meta.url);
  const available = local.protocol === "file:" &&
    (await Deno.stat(local).then((info) => info.isFile, () => false));
  if (!available) {
    log.error(
      "signal-unavailable",
      `Cannot run the local signalling service: it needs a checkout of the repository (${local.href}); run deno task signal there`,
    );
    return ExitCode.FAILURE;
  }
  const host = values.host ?? "127.0.0.1";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", local.href, "--port", String(port), "--host", host],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Its stderr is kept to explain a failure to start, and drained meanwhile.
  let errors = "";
  const drained = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (errors = (errors + chunk).slice(-4_000)) }),
  ).catch(() => {});
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await lines.read();
  const url = first.value?.split("\n")[0].trim();
  void (async () => {
    while (!(await lines.read()).done) { /* nothing else is expected */ }
  })().catch(() => {});
  if (!url) {
    await child.status;
    await drained;
    log.error("signal-failed", `Cannot run the local signalling service: ${errors.trim()}`);
    return ExitCode.FAILURE;
  }
  await Deno.stdout.write(new TextEncoder().encode(url + "\n"));
  log.info("listening", `Signalling service listening on ${url}`, { url });
  const stop = await waitForStop(child.status);
  if (stop.kind === "signal") {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), CLI_STOP_TIMEOUT);
    await child.status;
    clearTimeout(timer);
    log.info("stopped", `Stopped on ${stop.signal}`);
    return ExitCode.OK;
  }
  log.error("signal-failed", "The local signalling service stopped on its own");
  return ExitCode.FAILURE;
}
