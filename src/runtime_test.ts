import assert from "node:assert/strict";
import { resolveWebSocket } from "./runtime.ts";

Deno.test("The chosen WebSocket client asks for no compression: signalling frames are small", async () => {
  const WebSocket = await resolveWebSocket();
  const extensions = Promise.withResolvers<string | null>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    extensions.resolve(request.headers.get("sec-websocket-extensions"));
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "test" });
    socket.onopen = () => socket.close(1000, "done");
    return response;
  });
  try {
    const closed = Promise.withResolvers<void>();
    const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`, ["test"]);
    socket.onclose = () => closed.resolve();
    socket.onerror = () => {};
    assert.equal(await extensions.promise, null);
    await closed.promise;
  } finally {
    await server.shutdown();
  }
});
