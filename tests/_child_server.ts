/** A test MCP server in a child process, signalling over its stdin and stdout. */
import { WebRTCServerTransport } from "../mod.ts";
import { createTestServer, LOCAL } from "./_helpers.ts";
import { StreamSignaling } from "./_stdio_signaling.ts";

const signaling = new StreamSignaling(Deno.stdin.readable, Deno.stdout.writable);
const server = createTestServer();
await server.connect(new WebRTCServerTransport({ signaling, ...LOCAL }));
