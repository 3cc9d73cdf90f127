/**
 * Builds the npm package `mcp-webrtc` into `dist/npm/`: `deno task npm`.
 *
 * The package is made from this repository's sources, nothing copied by hand:
 * - `cli.mjs` is `src/cli/main.ts` bundled for Node ≥ 20 by esbuild, with the
 *   `Deno` namespace of `npm_deno_shim.ts` injected, and the `mcp-webrtc` bin
 *   of `package.json` names it. The MCP SDK and zod are inside the bundle.
 * - `esm/` is the library (the JSR exports `.`, `./signaling`, `./framing`, `./tcp`,
 *   `./testing` and `./a2a`) compiled file by file by TypeScript, `.js` with `.d.ts`
 *   beside each, its relative imports rewritten from `.ts` to `.js`
 *   (`rewriteRelativeImportExtensions`). It imports the MCP SDK, and `./a2a`
 *   the A2A SDK: optional peer dependencies, as whoever uses the library has
 *   the MCP SDK already, and whoever uses `./a2a` is an A2A agent or client
 *   with its own A2A SDK (one copy, the version it chose; a dependency would
 *   bring the A2A SDK to every `npx` user of the CLI, who never loads it).
 * - `README.md`, `docs/` and `bench/README.md` as in the repository, so the
 *   README's relative links resolve in the package.
 *
 * node-datachannel (native, prebuilt) and `ws` are dependencies that npm
 * installs.
 *
 * Then `npx -y mcp-webrtc serve …` and `npx -y mcp-webrtc connect …` run the
 * same commands as `deno run -A jsr:@mcp/webrtc/cli …`.
 *
 * Usage: `deno task npm` (then `npm pack dist/npm` for a tarball)
 *
 * @module
 */
import ts from "typescript";
import { bundle } from "./bundle.ts";

/** The package's name on npm: the name of the command, as `mcp-remote` is. */
export const NPM_NAME = "mcp-webrtc";

/** What npm installs beside the bundle: the packages the bundle leaves out. */
const DEPENDENCIES = ["node-datachannel", "ws"];
/** What the library imports and its user brings: the MCP SDK, and the A2A SDK for `./a2a`. */
const PEER_DEPENDENCIES = ["@modelcontextprotocol/sdk", "@a2a-js/sdk"];
/** The JSR exports the package has as library entries: all but `./cli` (the package's bin). */
const LIBRARY_EXPORTS = [".", "./signaling", "./framing", "./tcp", "./testing", "./a2a"];
/** The pages the README links to, shipped as they are in the repository. */
const DOCS = ["docs/", "bench/README.md"];

const here = new URL("./", import.meta.url);
const root = new URL("../", import.meta.url);

/** The version an `npm:name@version` entry of the import map pins. */
function pinned(imports: Record<string, string>, name: string): string {
  const version = imports[name]?.match(/^npm:(?:@[^/]+\/)?[^@]+@(.+)$/)?.[1];
  if (!version) {
    throw new Error(`Cannot build the npm package as deno.json imports no npm:${name}@<version>`);
  }
  return version;
}

/**
 * Compiles the library's entries and what they import into `out/esm/`.
 *
 * @returns The package.json `exports` of the entries.
 * @throws {Error} With TypeScript's diagnostics, if there are any.
 */
function compileLibrary(
  exports: Record<string, string>,
  out: URL,
): Record<string, { types: string; import: string }> {
  const esm = new URL("esm/", out);
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2024.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
    types: ["node"],
    typeRoots: [new URL("node_modules/@types", root).pathname],
    strict: true,
    skipLibCheck: true,
    declaration: true,
    allowImportingTsExtensions: true,
    rewriteRelativeImportExtensions: true,
    rootDir: root.pathname,
    outDir: esm.pathname,
    newLine: ts.NewLineKind.LineFeed,
  };
  // `ws` ships no types; the library imports it dynamically and exposes none of them.
  const ambient = new URL("npm_ambient.d.ts", out).pathname;
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === ambient
      ? ts.createSourceFile(name, 'declare module "ws";', language)
      : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === ambient || fileExists.call(host, name);
  const entries = LIBRARY_EXPORTS.map((name) => [name, exports[name]] as const);
  const program = ts.createProgram(
    [...entries.map(([, path]) => new URL(path, root).pathname), ambient],
    options,
    host,
  );
  const emitted = program.emit();
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
  if (diagnostics.length > 0) {
    throw new Error(
      `Cannot build the npm package as TypeScript reports:\n${
        ts.formatDiagnostics(diagnostics, {
          getCanonicalFileName: (name) => name,
          getCurrentDirectory: () => root.pathname,
          getNewLine: () => "\n",
        })
      }`,
    );
  }
  return Object.fromEntries(entries.map(([name, path]) => {
    const base = `./esm/${path.replace(/^\.\//, "").replace(/\.ts$/, "")}`;
    return [name, { types: `${base}.d.ts`, import: `${base}.js` }];
  }));
}

/** Copies a file, or a folder's files (not its subfolders), creating the folder. */
async function copy(from: URL, to: URL): Promise<void> {
  if (!from.pathname.endsWith("/")) {
    await Deno.mkdir(new URL("./", to), { recursive: true });
    return await Deno.copyFile(from, to);
  }
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(new URL(entry.name, from), new URL(entry.name, to));
  }
}

/**
 * Writes the package to `dist/npm/`.
 *
 * @param out The folder, emptied first.
 * @returns The folder.
 *
 * @example Build the package
 * ```ts ignore
 * import { buildNpmPackage } from "./npm.ts";
 * const folder = await buildNpmPackage();
 * console.log(folder.pathname);
 * ```
 */
export async function buildNpmPackage(out = new URL("dist/npm/", root)): Promise<URL> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  await Deno.remove(out, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await Deno.mkdir(out, { recursive: true });
  const external = DEPENDENCIES.flatMap((name) => [name, `${name}/*`]);
  const cli = await bundle(new URL("npm_cli.ts", here), {
    what: "the npm package's CLI",
    platform: "node",
    external,
    inject: [new URL("npm_deno_shim.ts", here)],
    // CommonJS packages inside an ES module bundle call require() for Node's modules.
    banner: [
      "#!/usr/bin/env node",
      'import { createRequire as __mcpwCreateRequire } from "node:module";',
      "const require = __mcpwCreateRequire(import.meta.url);",
    ].join("\n"),
  });
  await Deno.writeTextFile(new URL("cli.mjs", out), cli, { mode: 0o755 });
  const exports = compileLibrary(config.exports, out);
  const manifest = {
    name: NPM_NAME,
    version: config.version,
    description:
      "MCP over WebRTC: reach an MCP server behind a NAT from any MCP client, peer to peer (serve, connect)",
    license: config.license,
    type: "module",
    bin: { [NPM_NAME]: "cli.mjs" },
    exports,
    files: ["cli.mjs", "esm/", "README.md", "LICENSE", ...DOCS],
    engines: { node: ">=20" },
    keywords: ["mcp", "model-context-protocol", "webrtc", "nat", "p2p", "bridge", "stdio"],
    dependencies: Object.fromEntries(
      DEPENDENCIES.map((name) => [name, pinned(config.imports, name)]),
    ),
    peerDependencies: Object.fromEntries(
      PEER_DEPENDENCIES.map((name) => [name, `^${pinned(config.imports, name)}`]),
    ),
    peerDependenciesMeta: Object.fromEntries(
      PEER_DEPENDENCIES.map((name) => [name, { optional: true }]),
    ),
  };
  await Deno.writeTextFile(new URL("package.json", out), JSON.stringify(manifest, null, 2) + "\n");
  await Deno.copyFile(new URL("README.md", root), new URL("README.md", out));
  await Deno.copyFile(new URL("LICENSE", root), new URL("LICENSE", out));
  for (const path of DOCS) await copy(new URL(path, root), new URL(path, out));
  return out;
}

if (import.meta.main) {
  const out = await buildNpmPackage();
  const size = (await Deno.stat(new URL("cli.mjs", out))).size;
  console.log(`Wrote ${NPM_NAME} to ${out.pathname} (cli.mjs: ${(size / 1024).toFixed(0)} KiB)`);
}
