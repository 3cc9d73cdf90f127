/**
 * The browser test's world, run by `tests/browser_test.ts` inside a network
 * namespace that holds only `lo`: the signalling worker, two Deno desktops
 * (a listener, and one that makes the offer), a static server for the page
 * and its bundle, and headless Chromium. Prints
 * one JSON line: what the page reported (or why it did not), and what the
 * desktops saw.
 *
 * Usage: `ip netns exec NS deno run -A tests/browser/run_in_netns.ts <chromium>`
 *
 * @module
 */
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  createGuestTicket,
  createTicket,
  deriveTicketKeys,
  formatTicket,
  parseTicket,
  TicketSignaling,
  WebRTCClientTransport,
  WebRTCListener,
  WebRTCServerTransport,
} from "../../mod.ts";
import { AuthenticatedSignaling, roomUrl, SignalingRoom } from "../../src/signaling/mod.ts";
import { createTestServer, LOCAL, withWorker } from "../_helpers.ts";
import { addLargeTool, exercise } from "./exercise.ts";
import { CHROMIUM_FLAGS } from "./netns.ts";
import { bundle, WEB_EXTERNAL } from "../../scripts/bundle.ts";

const root = new URL("../../", import.meta.url);
const WAIT_MS = 20_000;
/** Code of node-datachannel (its polyfill) and of `ws`: a browser bundle must hold none. */
const FOREIGN = ["RTCSctpTransport", "node_datachannel", "ws does not work in the browser"];

/** Bundles the page's script for the browser, node-datachannel and ws left out. */
async function bundlePage(): Promise<string> {
  const source = await bundle(new URL("tests/browser/page.ts", root), {
    what: "the test page",
    platform: "browser",
    external: WEB_EXTERNAL,
  });
  const found = FOREIGN.filter((marker) => source.includes(marker));
  if (found.length > 0) throw new Error(`the browser bundle holds Deno-only code: ${found}`);
  if (!source.includes("page started")) throw new Error("the browser bundle is empty");
  return source;
}

/** Keeps the last `max` characters of a stream, for error messages. */
function tail(stream: ReadableStream<Uint8Array>, max = 3_000): () => string {
  let text = "";
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text = (text + chunk).slice(-max);
    }
  })().catch(() => {});
  return () => text;
}

/** Ends Chromium: SIGTERM, then SIGKILL if it is still there after 3 s. */
async function stop(browser: Deno.ChildProcess): Promise<void> {
  const timer = setTimeout(() => browser.kill("SIGKILL"), 3_000);
  try {
    browser.kill("SIGTERM");
  } catch {
    // Exited already.
  }
  await browser.status;
  clearTimeout(timer);
}

/**
 * The page's own client dials a ticket through the worker, as an agent on
 * Deno would; its steps and phases go to `log`.
 */
function dialBrowser(ticket: string, log: string[]) {
  const started = performance.now();
  const told = (phase: string) => log.push(`deno → page: ${phase}`);
  return exercise(
    () => {
      const transport = new WebRTCClientTransport({
        signaling: new TicketSignaling(ticket, { hostTimeout: 5_000 }),
        ...LOCAL,
        connectTimeout: 10_000,
      });
      transport.onconnectstep = (step) =>
        told(`${step} at ${Math.round(performance.now() - started)} ms`);
      return transport;
    },
    "deno",
    told,
  );
}

async function main(chromium: string): Promise<Record<string, unknown>> {
  const page = await bundlePage();
  return await withWorker(async (worker) => {
    let sessions = 0;
    const desktopErrors: string[] = [];
    const listener = await WebRTCListener.listen({
      url: worker.url,
      createServer: () => addLargeTool(createTestServer()),
      ...LOCAL,
    });
    listener.onsession = () => sessions++;
    listener.onerror = (error) => desktopErrors.push(error.message);
    const offerer = listener.ticket!;
    // A desktop that makes the offer, as in the reference implementations: the listener's
    // agents open channels on a connection they dial, so this one is built from the room,
    // the ticket's sealed signalling and a server transport that offers.
    const host = await createTicket({ url: worker.url });
    const keys = await deriveTicketKeys(host);
    const room = await SignalingRoom.join(roomUrl(host), {
      role: "host",
      key: keys.hostKey!,
      guestVerifier: keys.guestVerifier,
    });
    const servers: McpServer[] = [];
    room.onpeerjoin = (peer) => {
      const server = addLargeTool(createTestServer());
      servers.push(server);
      const signaling = new AuthenticatedSignaling(room.signaling(peer), {
        key: keys.signalingKey,
        role: "host",
      });
      const transport = new WebRTCServerTransport({ signaling, ...LOCAL, initiator: true });
      transport.onconnectstep = (step) => step === "channel" && sessions++;
      server.connect(transport).catch((error) => desktopErrors.push(error.message));
    };
    const answerer = formatTicket(await createGuestTicket(host));
    // The offerer's room, another secret: the worker refuses the key it derives.
    const stranger = await createGuestTicket(await createTicket({ url: worker.url }));
    const wrong = formatTicket({ ...stranger, room: parseTicket(offerer).room });

    const log: string[] = [];
    const { promise: reported, resolve: report } = Promise.withResolvers<unknown>();
    const routes: Record<string, (request: Request) => Promise<Response>> = {
      "GET /": async () =>
        new Response(await Deno.readTextFile(new URL("tests/browser/index.html", root)), {
          headers: { "content-type": "text/html" },
        }),
      "GET /page.js": () =>
        Promise.resolve(new Response(page, { headers: { "content-type": "text/javascript" } })),
      "POST /log": async (request) => (log.push(await request.text()), new Response("ok")),
      "POST /dial": async (request) => Response.json(await dialBrowser(await request.text(), log)),
      "POST /result": async (request) => (report(await request.json()), new Response("ok")),
    };
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const route = routes[`${request.method} ${new URL(request.url).pathname}`];
      return route ? route(request) : new Response("not found", { status: 404 });
    });
    const query = new URLSearchParams({ offerer, answerer, wrong, serve: worker.url });
    const profile = await Deno.makeTempDir({ prefix: "mcpw-chromium-" });
    let browser: Deno.ChildProcess | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      browser = new Deno.Command(chromium, {
        args: [
          ...CHROMIUM_FLAGS,
          `--user-data-dir=${profile}`,
          `http://127.0.0.1:${server.addr.port}/?${query}`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const stderr = tail(browser.stderr);
      const outcome = await Promise.race([
        reported,
        browser.status.then((status) => ({ chromiumExited: status.code, stderr: stderr() })),
        new Promise((resolve) => {
          timer = setTimeout(
            () => resolve({ timeout: `no result within ${WAIT_MS} ms`, stderr: stderr() }),
            WAIT_MS,
          );
        }),
      ]);
      return { page: outcome, log, sessions, desktopErrors };
    } finally {
      clearTimeout(timer);
      if (browser) await stop(browser);
      await server.shutdown();
      await Promise.all([listener.close(), ...servers.map((server) => server.close())]);
      await room.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  });
}

let output: Record<string, unknown>;
try {
  output = await main(Deno.args[0] ?? "chromium");
} catch (error) {
  output = { error: error instanceof Error ? error.stack ?? error.message : String(error) };
}
console.log(JSON.stringify(output));
// node-datachannel may hold the process open; everything is closed by now.
Deno.exit(0);
