/**
 * A desktop whose message handler throws at the first message, for
 * `handler_error_test.ts`: with `--handled` the process handles the global
 * `error` event and prints `survived` once a second message was handled too.
 */
import { MemorySignaling, WebRTCConnection } from "../mod.ts";
import { LOCAL } from "./_helpers.ts";

if (Deno.args.includes("--handled")) {
  globalThis.addEventListener("error", (event: Event) => {
    console.log(`handled: ${(event as ErrorEvent).message}`);
    event.preventDefault();
  });
}
const [a, b] = MemorySignaling.createPair();
const desktop = new WebRTCConnection({ signaling: b, initiator: false, ...LOCAL });
const seen = Promise.withResolvers<void>();
let count = 0;
desktop.ontransport = (transport) => {
  transport.onmessage = () => {
    if (++count === 2) return seen.resolve();
    throw new Error("the handler failed");
  };
  void transport.start();
};
void desktop.connect().catch(() => {});
const agent = new WebRTCConnection({ signaling: a, ...LOCAL });
const transport = agent.openTransport();
await transport.start();
await transport.send({ jsonrpc: "2.0", method: "first" });
await transport.send({ jsonrpc: "2.0", method: "second" });
const timer = setTimeout(() => seen.reject(new Error("the second message never came")), 10_000);
await seen.promise;
clearTimeout(timer);
console.log("survived");
await agent.close();
await desktop.close();
Deno.exit(0);
