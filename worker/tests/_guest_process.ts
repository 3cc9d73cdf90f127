/**
 * A guest in a process of its own, for tests that kill it: joins the room at
 * the URL given with the key given, prints "joined" once welcomed, then waits
 * to be killed.
 */
const [url, key] = Deno.args;
const socket = new WebSocket(url!, ["mcp-webrtc.v1", `mcp-webrtc.key.${key}`]);
socket.onmessage = (event) => {
  if (String(event.data).includes('"welcome"')) console.log("joined");
};
// Keeps the process alive until it is killed (a bound: a minute).
setTimeout(() => socket.close(), 60_000);
