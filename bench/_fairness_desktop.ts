/**
 * The desktop of `bench/fairness_apart.ts`, in a process of its own: one
 * `WebRTCConnection` answering the agent's offer over TCP signalling on
 * 127.0.0.1, a server with an `echo` and a `blob` tool per session. It says
 * `connected` on stdout once the connection is up, and ends once its stdin
 * closes (or after `LIFETIME_MS`, whatever the parent does).
 *
 * Run by the parent as `deno run -A bench/_fairness_desktop.ts <port>`.
 *
 * @module
 */
import { WebRTCConnection } from "../mod.ts";
import { TcpSocketSignaling } from "../src/signaling/tcp_socket_signaling.ts";
import { createServer, prepareBlob } from "./_transports.ts";

/** The longest this process lives, whatever its parent does. */
const LIFETIME_MS = 600_000;

const port = Number(Deno.args[0]);
if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
  throw new TypeError(
    `Cannot start the desktop as its port must be given: received ${Deno.args[0]}`,
  );
}
const lifetime = setTimeout(() => Deno.exit(2), LIFETIME_MS);

prepareBlob(64 * 1024 * 1024);
const desktop = new WebRTCConnection({
  signaling: new TcpSocketSignaling("127.0.0.1", port, { role: "listen" }),
  initiator: false,
  iceServers: [],
  rtcConfiguration: { bindAddress: "127.0.0.1" },
});
desktop.ontransport = (transport) => void createServer().connect(transport);
await desktop.connect();
console.log("connected");
for await (const _ of Deno.stdin.readable) {
  // Nothing is read: the parent closes stdin to end this process.
}
await desktop.close();
clearTimeout(lifetime);
