/**
 * Bundles a module of this repository for a runtime without node-datachannel
 * or `ws` (a browser, the Workers runtime): `deno bundle` with both kept out.
 * The examples that serve a page or run an agent in workerd share it.
 *
 * @module
 */

/** Modules a browser-like runtime neither has nor needs: the runtime gives WebRTC and WebSocket. */
const EXTERNAL = ["ws", "node-datachannel", "node-datachannel/*"];

/** Options of {@linkcode bundleForWeb}. */
export interface BundleOptions {
  /** What is bundled, for the error message, e.g. "the page". */
  what: string;
  /** Extra `deno bundle` flags, e.g. `--minify` or `--format=esm`. */
  flags?: string[];
}

/**
 * Bundles `entry` for the browser platform, with node-datachannel and `ws` external.
 *
 * @param entry The module to bundle.
 * @param options What it is (for errors) and extra flags.
 * @returns The bundle's JavaScript.
 * @throws {Error} If `deno bundle` fails, with its output.
 *
 * @example Bundle the browser example's page
 * ```ts ignore
 * import { bundleForWeb } from "./_bundle.ts";
 *
 * const code = await bundleForWeb(new URL("./browser/page/app.ts", import.meta.url), {
 *   what: "the page",
 *   flags: ["--minify"],
 * });
 * ```
 */
export async function bundleForWeb(entry: URL, options: BundleOptions): Promise<string> {
  const out = await Deno.makeTempFile({ prefix: "mcpw-bundle-", suffix: ".js" });
  try {
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      // `--external=` with "=": a bare `--external` takes every following argument.
      args: [
        "bundle",
        "--quiet",
        "--platform=browser",
        ...(options.flags ?? []),
        ...EXTERNAL.map((name) => `--external=${name}`),
        `--output=${out}`,
        entry.pathname,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(
        `Cannot bundle ${options.what}: deno bundle failed: ${new TextDecoder().decode(stderr)}`,
      );
    }
    return await Deno.readTextFile(out);
  } finally {
    await Deno.remove(out);
  }
}
