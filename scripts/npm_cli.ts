/**
 * The npm package's `mcp-webrtc` command: the CLI's `main` with the process's
 * arguments. Under Node, `Deno` here and in the CLI is the namespace that
 * `npm_deno_shim.ts` gives (the build injects it).
 *
 * @module
 */
import { main } from "../src/cli/main.ts";

Deno.exit(await main(Deno.args));
