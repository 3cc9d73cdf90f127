/**
 * `deno task demo:browser`: everything the browser example needs on one
 * machine, with no account and no network beyond loopback: the signalling
 * worker (workerd, through Miniflare), the page and its bundled script on
 * 127.0.0.1, and a desktop MCP server in a room. Prints the page's address
 * and the desktop's ticket to paste into it; Ctrl+C stops it all.
 *
 * Run: `deno task demo:browser`
 *
 * @module
 */
import { WebRTCListener } from "../../mod.ts";
import { bundle, WEB_EXTERNAL } from "../../scripts/bundle.ts";
import { createDesktopServer } from "./desktop.ts";

const here = new URL("./", import.meta.url);

/** Code of node-datachannel (its polyfill) and of `ws`: the page's bundle must hold none. */
const FOREIGN = ["RTCSctpTransport", "node_datachannel", "ws does not work in the browser"];

/**
 * Bundles the page's script (`app.ts`) for the browser with esbuild,
 * minified, node-datachannel and ws left out.
 *
 * @returns The JavaScript of `app.js`.
 * @throws {Error} If bundling fails (with the bundler's output), or the
 * bundle holds code of node-datachannel or ws.
 *
 * @example Bundle the page
 * ```ts ignore
 * import { bundlePage } from "./serve.ts";
 * console.log((await bundlePage()).length);
 * ```
 */
export async function bundlePage(): Promise<string> {
  const source = await bundle(new URL("page/app.ts", here), {
    what: "the page",
    platform: "browser",
    external: WEB_EXTERNAL,
    minify: true,
  });
  const found = FOREIGN.filter((marker) => source.includes(marker));
  if (found.length > 0) {
    throw new Error(
      `Cannot serve the page as its bundle holds code of node-datachannel or ws (${found}): mark them external`,
    );
  }
  return source;
}

/** A file served from memory, with its gzipped form. */
interface StaticFile {
  type: string;
  body: Uint8Array<ArrayBuffer>;
  gzip: ArrayBuffer;
}

/** Encodes a file and gzips it once (the bundle shrinks to a quarter). */
async function staticFile(type: string, text: string): Promise<StaticFile> {
  const body = new TextEncoder().encode(text);
  const gzip = await new Response(
    new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  return { type: `${type}; charset=utf-8`, body, gzip };
}

/** A running page server. */
export interface PageServer {
  /** The page's address, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** Stops serving; idempotent. */
  close(): Promise<void>;
}

/**
 * Serves the page (`index.html`) and its script (`app.js`) on 127.0.0.1.
 *
 * @param script The bundled script, from {@linkcode bundlePage}.
 * @param port The port; `0` picks a free one.
 * @returns The server and its address, once it listens.
 *
 * @example Serve the page on a free port
 * ```ts ignore
 * import { bundlePage, servePage } from "./serve.ts";
 * const page = await servePage(await bundlePage());
 * console.log(page.url);
 * await page.close();
 * ```
 */
export async function servePage(script: string, port = 0): Promise<PageServer> {
  const html = await Deno.readTextFile(new URL("page/index.html", here));
  const files: Record<string, StaticFile> = {
    "/": await staticFile("text/html", html),
    "/app.js": await staticFile("text/javascript", script),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
    const file = files[new URL(request.url).pathname];
    if (!file || (request.method !== "GET" && request.method !== "HEAD")) {
      return new Response("Not found", { status: 404 });
    }
    const gzip = /\bgzip\b/.test(request.headers.get("accept-encoding") ?? "");
    const headers: Record<string, string> = { "content-type": file.type, vary: "accept-encoding" };
    if (gzip) headers["content-encoding"] = "gzip";
    return new Response(gzip ? file.gzip : file.body, { headers });
  });
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    close: () => closing ??= server.shutdown(),
  };
}

if (import.meta.main) {
  const { startLocalSignaling } = await import("../../worker/local.ts");
  const t0 = performance.now();
  const ms = () => `${(performance.now() - t0).toFixed(0).padStart(5)} ms`;
  const [worker, script] = await Promise.all([startLocalSignaling(), bundlePage()]);
  console.log(`${ms()}  signalling worker up at ${worker.url}`);
  const page = await servePage(script, Number(Deno.env.get("PORT") ?? 0));
  console.log(`${ms()}  page bundled (${(script.length / 1024).toFixed(0)} KiB) and served`);
  // Peers on one machine: no STUN server, only the loopback interface.
  const listener = await WebRTCListener.listen({
    url: worker.url,
    createServer: () => createDesktopServer(),
    iceServers: [],
    rtcConfiguration: { bindAddress: "127.0.0.1" },
  });
  listener.onagent = ({ peer }) => console.log(`${ms()}  desktop: agent ${peer} connected`);
  listener.onsession = ({ agent }) =>
    console.log(`${ms()}  desktop: agent ${agent.peer} opened session ${agent.session}`);
  listener.onsessionclose = ({ agent }) =>
    console.log(`${ms()}  desktop: agent ${agent.peer} closed session ${agent.session}`);
  listener.onagentleave = ({ peer }) => console.log(`${ms()}  desktop: agent ${peer} left`);
  listener.onerror = (error) => console.log(`${ms()}  desktop: ${error.message}`);
  console.log(`${ms()}  desktop server in its room (tools: greet, add, convert_temperature)`);
  console.log(`
Open this page in a browser on this machine:

  ${page.url}?signal=${worker.url}&ice=none

"Connect to a desktop": paste this ticket, then call a tool of the desktop:

  ${listener.ticket}

"Share this tab": open a room, copy the tab's ticket, and dial it from here:

  deno task demo:browser:agent <ticket>

Ctrl+C stops everything.`);
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", stop.resolve);
  await stop.promise;
  await listener.close();
  await page.close();
  await worker.close();
  Deno.exit(0);
}
