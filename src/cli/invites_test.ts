import assert from "node:assert/strict";
import { connect } from "node:net";
import { createTicket, formatTicket } from "../ticket.ts";
import { CONTROL_MAX_REQUEST_BYTES } from "../constants.ts";
import { UsageError } from "../errors.ts";
import {
  parseInviteSpec,
  readHostFile,
  sendControl,
  startControlServer,
  writeHostFile,
} from "./invites.ts";

Deno.test("parseInviteSpec reads NAME[=TOOL,…] and refuses a bad name or an empty tool", () => {
  assert.deepEqual(parseInviteSpec("ci-1=a, b"), { name: "ci-1", tools: ["a", "b"] });
  assert.deepEqual(parseInviteSpec("x"), { name: "x" });
  assert.throws(() => parseInviteSpec("a b"), UsageError);
  assert.throws(() => parseInviteSpec(""), /the name must be 1 to 64/);
  assert.throws(() => parseInviteSpec("a=x,,y"), /without empty ones/);
  assert.throws(() => parseInviteSpec(`${"n".repeat(65)}`), /1 to 64/);
});

Deno.test("The host ticket file: a bare host ticket (the earlier form) reads as a room without invites; JSON round-trips with mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const host = await createTicket({ url: "wss://signal.example" });
    await Deno.writeTextFile(`${dir}/old`, formatTicket(host) + "\n");
    assert.deepEqual(await readHostFile(`${dir}/old`), { host, invites: [] });
    const data = {
      host,
      invites: [{ name: "a", ticket: "t", tools: ["x"] }],
      control: { port: 1234, token: "abc" },
    };
    await writeHostFile(`${dir}/new`, data);
    assert.deepEqual(await readHostFile(`${dir}/new`), data);
    assert.equal((await Deno.stat(`${dir}/new`)).mode! & 0o777, 0o600);
    await Deno.writeTextFile(`${dir}/broken`, "{not json");
    await assert.rejects(() => readHostFile(`${dir}/broken`), /is not JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("The control port answers only requests with its token, and refuses one larger than CONTROL_MAX_REQUEST_BYTES", async () => {
  let handled = 0;
  const server = await startControlServer(() => {
    handled++;
    return Promise.resolve({ invites: [] });
  });
  try {
    assert.deepEqual(await sendControl(server, { op: "list" }), { ok: true, invites: [] });
    const wrong = await sendControl({ port: server.port, token: "A".repeat(43) }, { op: "list" });
    assert.equal(wrong.ok, false);
    assert.match(String(wrong.error), /token does not match/);
    const large = await new Promise<string>((resolve) => {
      let answer = "";
      const socket = connect({ host: "127.0.0.1", port: server.port }, () => {
        socket.write("x".repeat(CONTROL_MAX_REQUEST_BYTES + 1));
      });
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => (answer += chunk));
      socket.on("error", () => {});
      socket.on("close", () => resolve(answer));
    });
    assert.match(large, /CONTROL_MAX_REQUEST_BYTES/);
    assert.equal(handled, 1);
  } finally {
    await server.close();
  }
});
