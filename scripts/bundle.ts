/**
 * Bundles a module of this repository into one ES module with esbuild's
 * JavaScript API: the signalling worker for Miniflare, the browser page, the
 * serverless agent, the Node agents of the tests and demos, and the npm
 * package. esbuild comes from `deno install` (its binary is the npm package
 * `@esbuild/<platform>`), so nothing is downloaded when a bundle is made, and
 * bare specifiers resolve from `node_modules`, which `nodeModulesDir: "auto"`
 * fills from the import map.
 *
 * @module
 */
import * as esbuild from "esbuild";

/** Modules a browser-like runtime neither has nor needs: the runtime gives WebRTC and WebSocket. */
export const WEB_EXTERNAL: readonly string[] = ["ws", "node-datachannel", "node-datachannel/*"];

/** Options of {@linkcode bundle}. */
export interface BundleOptions {
  /** What is bundled, for the error message, e.g. "the page". */
  what: string;
  /** The runtime the bundle is for: a browser-like one (browser, workerd) or Node. */
  platform: "browser" | "node";
  /** Module names left as imports, e.g. `ws` or `node-datachannel/*`. */
  external?: readonly string[];
  /** Whether to minify. */
  minify?: boolean;
  /** Modules whose exports replace the globals of the same names (esbuild's `inject`). */
  inject?: readonly URL[];
  /** Text put at the top of the bundle, e.g. a `#!` line. */
  banner?: string;
}

const ROOT = new URL("../", import.meta.url);

/**
 * Bundles `entry` into one ES module.
 *
 * @param entry The module to bundle.
 * @param options What it is (for errors), for which runtime, and what stays out.
 * @returns The bundle's JavaScript.
 * @throws {Error} If esbuild cannot bundle it, with esbuild's messages.
 *
 * @example Bundle the browser example's page
 * ```ts ignore
 * import { bundle, WEB_EXTERNAL } from "./bundle.ts";
 *
 * const code = await bundle(new URL("../examples/browser/page/app.ts", import.meta.url), {
 *   what: "the page",
 *   platform: "browser",
 *   external: WEB_EXTERNAL,
 *   minify: true,
 * });
 * console.log(code.length);
 * ```
 */
export async function bundle(entry: URL, options: BundleOptions): Promise<string> {
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry.pathname],
      absWorkingDir: ROOT.pathname,
      bundle: true,
      write: false,
      format: "esm",
      platform: options.platform,
      target: options.platform === "node" ? "node20" : undefined,
      external: [...(options.external ?? [])],
      minify: options.minify ?? false,
      inject: options.inject?.map((url) => url.pathname),
      banner: options.banner === undefined ? undefined : { js: options.banner },
      logLevel: "silent",
    });
  } catch (error) {
    const messages = (error as { errors?: esbuild.Message[] }).errors;
    const text = messages
      ? (await esbuild.formatMessages(messages, { kind: "error" })).join("")
      : String(error);
    throw new Error(`Cannot bundle ${options.what}: esbuild failed: ${text}`, { cause: error });
  }
  return result.outputFiles[0].text;
}
