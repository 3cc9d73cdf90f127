/**
 * Runs the serverless agent (`agent.ts`) in the Workers runtime on this
 * machine, through Miniflare (workerd), and builds it for `wrangler deploy`.
 *
 * - `deno task demo:serverless`: the signalling worker, a desktop MCP server
 *   in a room, and the agent worker with the desktop's ticket as its
 *   `MCP_TICKET` secret, all on 127.0.0.1. Prints the agent's address; open
 *   `/tools` or `/call/greet?name=Ada` there. Ctrl+C stops it all.
 * - `deno run -A examples/serverless_agent/local.ts --bundle <file>`: writes
 *   the agent's bundle, the `main` that `wrangler.jsonc` deploys.
 *
 * @module
 */
import { Miniflare } from "miniflare";
import { bundle, WEB_EXTERNAL } from "../../scripts/bundle.ts";

const here = new URL("./", import.meta.url);

/**
 * Bundles `agent.ts` into one ES module for the Workers runtime, leaving out
 * node-datachannel and `ws` (a worker has neither; the library then relays
 * and uses the runtime's own WebSocket).
 *
 * @returns The module's JavaScript.
 * @throws {Error} If esbuild fails, with its messages.
 */
export function bundleAgent(): Promise<string> {
  return bundle(new URL("agent.ts", here), {
    what: "the serverless agent",
    platform: "browser",
    external: WEB_EXTERNAL,
  });
}

/** The agent running in Miniflare. */
export interface LocalAgent {
  /** Its HTTP address, e.g. `http://127.0.0.1:8788`. */
  url: string;
  /** Stops it. */
  close(): Promise<void>;
}

/**
 * Starts the agent worker in Miniflare on 127.0.0.1 with `ticket` as its
 * `MCP_TICKET` secret.
 *
 * @param ticket The desktop's guest ticket.
 * @param port The port; `0` picks a free one.
 */
export async function startLocalAgent(ticket: string, port = 0): Promise<LocalAgent> {
  const miniflare = new Miniflare({
    modules: [{ type: "ESModule", path: "agent.js", contents: await bundleAgent() }],
    compatibilityDate: "2026-08-01",
    bindings: { MCP_TICKET: ticket },
    host: "127.0.0.1",
    port,
  });
  const url = await miniflare.ready;
  return {
    url: url.href.replace(/\/$/, ""),
    close: () => miniflare.dispose(),
  };
}

if (import.meta.main) {
  const bundleAt = Deno.args.indexOf("--bundle");
  if (bundleAt >= 0) {
    const file = Deno.args[bundleAt + 1];
    if (!file) {
      console.error("Cannot bundle the serverless agent as --bundle needs a file name");
      Deno.exit(2);
    }
    await Deno.writeTextFile(file, await bundleAgent());
    console.error(`Wrote the serverless agent's bundle to ${file}`);
    Deno.exit(0);
  }
  const { startLocalSignaling } = await import("../../worker/local.ts");
  const { WebRTCListener } = await import("../../mod.ts");
  const { createDesktopServer } = await import("../browser/desktop.ts");
  const signaling = await startLocalSignaling();
  const desktop = await WebRTCListener.listen({
    url: signaling.url,
    createServer: () => createDesktopServer(),
    iceServers: [],
    rtcConfiguration: { bindAddress: "127.0.0.1" },
  });
  const agent = await startLocalAgent(desktop.ticket!, 8788);
  console.log(`The serverless agent is at ${agent.url}`);
  console.log(`  ${agent.url}/tools`);
  console.log(`  ${agent.url}/call/greet?name=Ada`);
  const stop = async () => {
    await agent.close();
    await desktop.close();
    await signaling.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
}
