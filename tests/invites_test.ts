/**
 * Invites end to end, as real processes on 127.0.0.1: `serve --invite`,
 * `invite`, `revoke` and `invites` against the local worker (Miniflare), and
 * agents dialling with `connect`.
 */
import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { parseTicket } from "../mod.ts";
import {
  type Agent,
  CliProcess,
  LOCAL_FLAGS,
  startAgent,
  TEST_SERVER,
  withWorker,
} from "./_cli_helpers.ts";

function text(result: unknown): string {
  return ((result as CallToolResult).content[0] as { text: string }).text;
}

/** Starts `serve` with invites and reads its `NAME<TAB>TICKET` lines. */
async function serveWithInvites(
  signal: string,
  names: string[],
  args: string[],
): Promise<{ serve: CliProcess; tickets: Map<string, string> }> {
  const serve = CliProcess.cli([
    "serve",
    "--signal",
    signal,
    ...LOCAL_FLAGS,
    ...names.flatMap((name) => ["--invite", name]),
    ...args,
    "--",
    ...TEST_SERVER,
  ]);
  const tickets = new Map<string, string>();
  for (let line = 0; line < names.length; line++) {
    const [name, ticket] = (await serve.line(line)).split("\t");
    tickets.set(name, ticket);
  }
  return { serve, tickets };
}

/** Runs one of the CLI's short commands to its end. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const process = CliProcess.cli(args);
  const { code } = await process.exit(20_000);
  return { code, stdout: process.stdoutLines.join("\n"), stderr: process.stderr };
}

/** Calls a tool in a loop until stopped, counting calls and keeping errors. */
function callLoop(agent: Agent) {
  let stop = false;
  let calls = 0;
  const errors: Error[] = [];
  const running = (async () => {
    // Bounded in time by the test's `stop`, and in count here.
    for (let i = 0; i < 100_000 && !stop; i++) {
      try {
        await agent.client.callTool({ name: "pid", arguments: {} }, undefined, { timeout: 5_000 });
        calls++;
      } catch (error) {
        errors.push(error as Error);
        return;
      }
    }
  })();
  return {
    get calls() {
      return calls;
    },
    errors,
    running,
    stop: async () => {
      stop = true;
      await running;
    },
  };
}

Deno.test(
  "serve --invite: three agents call in a loop; revoking one closes its connection within a second and refuses its next dial, the other two see no error",
  withWorker(async (signal) => {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/host`;
    try {
      const { serve, tickets } = await serveWithInvites(signal, ["alice", "bob", "carol"], [
        "--host-ticket-file",
        file,
      ]);
      assert.deepEqual([...tickets.keys()], ["alice", "bob", "carol"]);
      // Each invite holds a secret of its own.
      const secrets = new Set([...tickets.values()].map((ticket) => parseTicket(ticket).secret));
      assert.equal(secrets.size, 3);
      assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);

      const agents = new Map<string, Agent>();
      for (const [name, ticket] of tickets) agents.set(name, await startAgent(ticket));
      await serve.stderrMatch(/Agent \d \(carol\) connected/);
      const loops = new Map([...agents].map(([name, agent]) => [name, callLoop(agent)]));
      // Every loop is under way before the revocation.
      for (const loop of loops.values()) {
        await serve.until(() => loop.calls >= 3, 10_000, "three calls of each agent");
      }

      const bob = agents.get("bob")!;
      const revoked = await run(["revoke", "bob", "--host-ticket-file", file]);
      const revokedAt = Date.now();
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stderr, /Revoked "bob": 1 connection closed/);
      // Its connection is closed on the desktop when revoke exits; the agent's
      // bridge sees it and exits within a second.
      const bobExit = await bob.transport.exited;
      const bobGone = Date.now() - revokedAt;
      assert.ok(bobGone < 1_000, `bob's connect exited ${bobGone} ms after revoke did`);
      assert.notEqual(bobExit.code, 0);
      await loops.get("bob")!.running;
      assert.equal(loops.get("bob")!.errors.length, 1);
      assert.match(serve.stderr, /Agent \d \(bob\) left: its invite "bob" was revoked/);

      // The other two go on: more calls, and no error at all.
      const before = new Map([...loops].map(([name, loop]) => [name, loop.calls]));
      for (const name of ["alice", "carol"]) {
        const loop = loops.get(name)!;
        await serve.until(() => loop.calls >= before.get(name)! + 5, 10_000, `${name}'s calls`);
        await loop.stop();
        assert.deepEqual(loop.errors, [], name);
      }

      // Bob's next dial is refused by the room.
      const again = await startAgent(tickets.get("bob")!).then(
        () => undefined,
        (error: Error) => error,
      );
      assert.ok(again instanceof Error);
      assert.match(again.message, /key was refused/);

      for (const name of ["alice", "carol"]) {
        await agents.get(name)!.client.close();
        await agents.get(name)!.transport.exited;
      }
      assert.equal((await serve.signal("SIGTERM")).status.code, 0, serve.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "invite while serve runs: the new ticket connects at once, invites lists each with its tools and whether it is connected, revoke of an unknown name fails, and the invites outlive a restart",
  withWorker(async (signal) => {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/host`;
    try {
      const { serve, tickets } = await serveWithInvites(signal, ["first"], [
        "--host-ticket-file",
        file,
      ]);
      const added = await run(["invite", "later=pid,wait", "--host-ticket-file", file]);
      assert.equal(added.code, 0, added.stderr);
      const later = added.stdout.trim();
      assert.match(later, /^mcpwebrtc2\.guest\./);
      // Usable at once: no wait between the command's answer and the dial.
      const agent = await startAgent(later);
      assert.ok((await agent.client.listTools()).tools.length > 0);
      await serve.stderrMatch(/Agent 1 \(later\) connected/);
      assert.match(text(await agent.client.callTool({ name: "pid", arguments: {} })), /^\d+$/);

      const listed = await run(["invites", "--host-ticket-file", file]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(listed.stdout.split("\n"), [
        "NAME\tEXPIRES\tTOOLS\tCONNECTED",
        "first\tnever\tall\tno",
        "later\tnever\tpid,wait\tyes",
      ]);
      const json = await run(["invites", "--json", "--host-ticket-file", file]);
      assert.deepEqual(json.stdout.split("\n").map((line) => JSON.parse(line)), [
        { name: "first", connected: false, agents: 0 },
        { name: "later", tools: ["pid", "wait"], connected: true, agents: 1 },
      ]);

      const unknown = await run(["revoke", "nobody", "--host-ticket-file", file]);
      assert.equal(unknown.code, 2);
      assert.match(
        unknown.stderr,
        /Cannot revoke invite "nobody" as there is no invite of that name: the invites are first, later/,
      );
      const taken = await run(["invite", "first", "--host-ticket-file", file]);
      assert.equal(taken.code, 2);
      assert.match(taken.stderr, /an invite of that name exists/);

      await agent.client.close();
      await agent.transport.exited;
      assert.equal((await serve.signal("SIGTERM")).status.code, 0, serve.stderr);
      const stopped = await run(["invites", "--host-ticket-file", file]);
      assert.equal(stopped.code, 2);
      assert.match(stopped.stderr, /names no running serve/);

      // Restarted with the same file: the same room, both invites, their tickets unchanged.
      const restarted = await serveWithInvites(signal, ["first"], ["--host-ticket-file", file]);
      assert.equal(restarted.tickets.get("first"), tickets.get("first"));
      const back = await startAgent(later);
      assert.ok((await back.client.listTools()).tools.length > 0);
      await back.client.close();
      await back.transport.exited;
      const stillListed = await run(["invites", "--host-ticket-file", file]);
      assert.match(stillListed.stdout, /^later\tnever\tpid,wait\t/m);
      await restarted.serve.signal("SIGTERM");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "invite, revoke and invites say what to do without a running serve or with a malformed name",
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const missing = await run(["invite", "x"]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /--host-ticket-file is missing/);
      const none = await run(["invites", "--host-ticket-file", `${dir}/nothing`]);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /names no running serve: start serve with --host-ticket-file/);
      const bad = await run(["invite", "a b", "--host-ticket-file", `${dir}/nothing`]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /the name must be 1 to 64 letters/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "serve --invite NAME=TOOL,TOOL: that agent lists only those two tools and a call of a third is refused, another invite's agent sees every tool, and --audit names each call's agent",
  withWorker(async (signal) => {
    const dir = await Deno.makeTempDir();
    const audit = `${dir}/audit.jsonl`;
    try {
      const { serve, tickets } = await serveWithInvites(signal, ["limited=pid,cancelled", "full"], [
        "--audit",
        audit,
      ]);
      const limited = await startAgent(tickets.get("limited")!);
      const full = await startAgent(tickets.get("full")!);
      const names = async (agent: Agent) =>
        (await agent.client.listTools()).tools.map(({ name }) => name).sort();
      assert.deepEqual(await names(limited), ["cancelled", "pid"]);
      assert.deepEqual(await names(full), ["cancelled", "exit", "pid", "sleep", "wait"]);
      assert.match(text(await limited.client.callTool({ name: "pid", arguments: {} })), /^\d+$/);
      const refused = await limited.client.callTool({ name: "wait", arguments: {} }).then(
        () => undefined,
        (error: Error) => error,
      );
      assert.ok(refused instanceof Error, "the call of a third tool was not refused");
      assert.match(refused.message, /wait/);
      assert.match(text(await full.client.callTool({ name: "pid", arguments: {} })), /^\d+$/);

      await serve.until(
        () => {
          try {
            return Deno.readTextFileSync(audit).split("\n")
              .filter((line) => line.includes('"tools/call"')).length >= 3;
          } catch {
            return false;
          }
        },
        10_000,
        "three tools/call lines in the audit file",
      );
      const calls = Deno.readTextFileSync(audit).trim().split("\n").map((line) => JSON.parse(line))
        .filter((line) => line.method === "tools/call")
        .map(({ name, tool, ok, refused }) => ({ name, tool, ok, refused }));
      assert.deepEqual(calls, [
        { name: "limited", tool: "pid", ok: true, refused: undefined },
        { name: "limited", tool: "wait", ok: false, refused: "tools" },
        { name: "full", tool: "pid", ok: true, refused: undefined },
      ]);
      for (const agent of [limited, full]) {
        await agent.client.close();
        await agent.transport.exited;
      }
      assert.equal((await serve.signal("SIGTERM")).status.code, 0, serve.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "revoke guest while serve runs: the shared ticket stays refused after a restart with the same file, which serves and prints the kept invites instead",
  withWorker(async (signal) => {
    const dir = await Deno.makeTempDir();
    const file = `${dir}/host`;
    try {
      const { serve } = await serveWithInvites(signal, [], ["--host-ticket-file", file]);
      const guest = await serve.line(0);
      assert.match(guest, /^mcpwebrtc2\.guest\./);
      const added = await run(["invite", "kept", "--host-ticket-file", file]);
      assert.equal(added.code, 0, added.stderr);
      const kept = added.stdout.trim();
      const revoked = await run(["revoke", "guest", "--host-ticket-file", file]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal((await serve.signal("SIGTERM")).status.code, 0, serve.stderr);

      // The same command again: the guest ticket stays revoked.
      const { serve: restarted } = await serveWithInvites(signal, [], ["--host-ticket-file", file]);
      assert.equal(await restarted.line(0), `kept\t${kept}`);
      const refused = await startAgent(guest).then(
        async (agent) => {
          await agent.client.close();
          return undefined;
        },
        (error: Error) => error,
      );
      assert.ok(refused, "the revoked guest ticket was served after the restart");
      const agent = await startAgent(kept);
      assert.ok((await agent.client.listTools()).tools.length > 0);
      await agent.client.close();
      await agent.transport.exited;
      assert.equal((await restarted.signal("SIGTERM")).status.code, 0, restarted.stderr);

      // With no invite left either, serve says what to do instead of serving nobody.
      const stripped = JSON.parse(await Deno.readTextFile(file));
      await Deno.writeTextFile(file, JSON.stringify({ ...stripped, invites: [] }));
      const { serve: empty } = await serveWithInvites(signal, [], ["--host-ticket-file", file]);
      const { code } = await empty.exit(20_000);
      assert.equal(code, 2);
      assert.match(empty.stderr, /guest ticket .* was revoked.*--invite NAME/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);
