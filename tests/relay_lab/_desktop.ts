/**
 * The desktop of the relay lab: a listener on the room of the worker at
 * `Deno.args[0]`, serving the test tools. Prints `ticket <guest ticket>`, then
 * `path <JSON>` for each agent once its connection is up; runs until killed.
 */
import { WebRTCListener } from "../../mod.ts";
import { createTestServer } from "../_helpers.ts";

const listener = await WebRTCListener.listen({
  url: Deno.args[0],
  createServer: () => createTestServer(),
  iceServers: [],
});
listener.onagent = ({ connection }) => {
  connection.onconnectstep = undefined;
  void (async () => {
    for (let attempt = 0; attempt < 100; attempt++) {
      const path = await connection.getConnectionPath();
      if (path) return console.log(`path ${JSON.stringify(path)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
};
console.log(`ticket ${listener.ticket}`);
