/**
 * The signalling worker of the NAT lab, run inside the lab's public TURN
 * namespace by `lab.ts`:
 * `deno run -A tests/nat/_signal.ts <host> <port> <vars as JSON>`.
 *
 * It serves the worker (Miniflare) on `<host>:<port>` with `vars` (the lab's
 * `TURN_URLS` and `TURN_SECRET`, so rooms hand out credentials for the lab's
 * coturn), prints `listening` once it does, and stops on SIGTERM.
 */
import { startLocalSignaling } from "../../worker/local.ts";

const [host, port, vars] = Deno.args;
const server = await startLocalSignaling({
  host,
  port: Number(port),
  vars: JSON.parse(vars ?? "{}"),
});
console.log(`listening ${server.url}`);
const stop = async () => {
  await server.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
