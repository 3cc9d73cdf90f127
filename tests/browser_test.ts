/**
 * A browser page as an MCP client and as an MCP server: headless Chromium
 * loads a page whose bundled script uses the root entry with the browser's
 * own RTCPeerConnection and WebSocket, and reaches Deno desktops through the
 * local signalling worker with tickets.
 *
 * Runs in a network namespace that holds only `lo` (`tests/browser/netns.ts`).
 */
import assert from "node:assert/strict";
import { LARGE_SIZE, type Outcome } from "./browser/exercise.ts";
import { browserTools, runInNetns } from "./browser/netns.ts";

const CHILD_TIMEOUT_MS = 30_000;
const tools = await browserTools();
if ("skip" in tools) console.log(tools.skip);

Deno.test({
  name: "A browser page is an MCP client and server of Deno peers, through the worker with tickets",
  ignore: "skip" in tools,
}, async () => {
  const { chromium } = tools as { chromium: string };
  const report = await runInNetns(
    "mcpw-browser",
    "tests/browser/run_in_netns.ts",
    [chromium],
    CHILD_TIMEOUT_MS,
  );
  const show = JSON.stringify(report, null, 1);
  assert.equal(report.error, undefined, show);
  const page = report.page as Record<string, Outcome | boolean | undefined>;
  assert.equal(page.RTCPeerConnection, true, show);
  assert.equal(page.Deno, false, show);
  // The page dials and makes the offer; then the desktop makes it.
  for (const key of ["offerer", "answerer"]) {
    const outcome = page[key] as Outcome & { ok: true };
    assert.equal(outcome?.ok, true, `${key}: ${show}`);
    assert.deepEqual(outcome.tools, ["blob", "greet", "large"], show);
    assert.equal(outcome.greeting, "Hello, browser!", show);
    // 200 000 characters, escapes among them, in chunks from Deno to the page.
    assert.deepEqual(outcome.large, { length: LARGE_SIZE, same: true }, show);
  }
  assert.equal(report.sessions, 2, show);
  // The page answers the desktop's offer without waiting for a check of its
  // own first: a browser starts ICE only once its answer is set, so such a
  // wait (OFFER_CHECK_WAIT, 20 ms) could only delay the answer.
  const at = (step: string) =>
    Number(
      (report.log as string[]).find((line) => line.startsWith(`answerer: ${step} at `))
        ?.match(/ at (\d+) ms/)?.[1],
    );
  assert.ok(
    at("answer") - at("offer") < 15,
    `the page answered after ${at("answer") - at("offer")} ms: ${show}`,
  );
  // A ticket with another secret: refused by the room, and the page is told why.
  const wrong = page.wrong as Outcome & { ok: false };
  assert.equal(wrong?.ok, false, show);
  assert.equal(wrong.name, "ConnectError", show);
  assert.match(wrong.message, /key was refused/, show);
  // At once: closing the browser's connection waits for no event (the
  // standard's close() fires none), where it waited 1 s for one.
  assert.ok(wrong.ms < 900, `the refusal took ${wrong.ms} ms: ${show}`);
  // The page listens as a desktop; a Deno agent dials its ticket.
  const served = page.serve as Outcome & { ok: true };
  assert.equal(served?.ok, true, show);
  assert.deepEqual(served.tools, ["greet", "large"], show);
  assert.equal(served.greeting, "Hello from the browser, deno!", show);
  // And from the page to Deno.
  assert.deepEqual(served.large, { length: LARGE_SIZE, same: true }, show);
});
