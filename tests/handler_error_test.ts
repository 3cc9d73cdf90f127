/**
 * An application's message handler that throws is an uncaught error of the
 * runtime, as one thrown by an `EventTarget` listener: the process handles it
 * with the global `error` event, or ends with its message. Thrown inside
 * node-datachannel's native callback, it aborted the process instead, with
 * neither the message nor a chance to handle it.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("./_throwing_handler.ts", import.meta.url).pathname;

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("a message handler that throws is an uncaught error the process can handle, and goes on", async () => {
  const { code, stdout, stderr } = await run("--handled");
  assert.equal(code, 0, stderr);
  assert.match(stdout, /handled: Uncaught Error: the handler failed/);
  assert.match(stdout, /survived/);
});

Deno.test("a message handler that throws, unhandled, ends the process with its message, not an abort", async () => {
  const { code, stderr } = await run();
  assert.equal(code, 1, stderr);
  assert.match(stderr, /Uncaught .*the handler failed/);
  assert.doesNotMatch(stderr, /terminate called|Napi::Error/);
});
