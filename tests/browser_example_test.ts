/**
 * The browser example (`examples/browser/`), used as a person would: headless
 * Chromium opens its page and the test works the page's own controls. In
 * "Share this tab", a Deno agent dials the ticket the page shows and calls
 * the tab's tools, one of them approved and one declined on the page; in
 * "Connect to a desktop", the page dials the example desktop, lists its tools
 * and calls them through the generated form. Errors (no signalling service, a
 * malformed ticket, a refused ticket, no network path) must read as sentences
 * on the page. A screenshot of each panel goes to `$SCREENSHOT_DIR` (the
 * README's come from `SCREENSHOT_DIR=docs`), else to a temporary folder.
 *
 * Runs in a network namespace that holds only `lo` (`tests/browser/netns.ts`);
 * a second run keeps Chromium's own WebRTC settings (mDNS names for its
 * addresses, no loopback), as a person's browser has them, in a namespace
 * with one more link, as a machine has a network card.
 */
import assert from "node:assert/strict";
import { browserTools, runInNetns } from "./browser/netns.ts";

const CHILD_TIMEOUT_MS = 120_000;
const tools = await browserTools();
if ("skip" in tools) console.log(tools.skip);
const ignore = "skip" in tools;
const PNG = [0x89, 0x50, 0x4e, 0x47];

/** Checks what the page showed and what the agent got, in both panels. */
function assertBothPanels(report: Record<string, unknown>): void {
  const show = JSON.stringify(report, null, 1);
  assert.equal(report.error, undefined, show);

  assert.equal(report.scriptEncoding, "gzip", show);

  const share = report.share as Record<string, string & Record<string, unknown>>;
  assert.match(share.unreachable, /^Cannot open a room on ws:\/\/127\.0\.0\.1:9\/: /, show);
  assert.match(share.ticket, /^mcpwebrtc2\.guest\./, show);
  assert.match(share.state, /^Sharing: waiting for agents/, show);
  assert.equal(share.copyState, "Copied.", show);
  assert.equal(share.clipboard, share.ticket, show);
  assert.deepEqual(share.tools, ["read_text", "page_clock", "ask_approval"], show);
  assert.equal(share.readText, "Meeting moved to 3 pm, room 4.", show);
  assert.match(
    share.clock,
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(local time zone .+\)$/,
    show,
  );
  // While an agent is connected, the state says so (and no longer "waiting").
  assert.match(
    share.stateConnected,
    /^Sharing at ws:\/\/127\.0\.0\.1:\d+\/?: 1 agent connected$/,
    show,
  );
  assert.match(share.stateLeft, /^Sharing: waiting for agents/, show);
  assert.match(
    share.agentsConnected,
    /^Agent 1: joined [\d:]+ · path (?:host|prflx) \(127\.0\.0\.1:\d+\)$/,
    show,
  );
  assert.equal(
    share.prompt.replace(/\s+/g, " "),
    "Agent 1 asks you to approve: Read the meeting notes Approve Decline",
    show,
  );
  assert.deepEqual(share.approved, { isError: false, text: "Approved: Read the meeting notes" });
  assert.deepEqual(share.declined, { isError: true, text: "Declined: Delete the notes" });
  assert.match(
    share.agentsLeft,
    /^Agent 1: joined [\d:]+ · path (?:host|prflx) \(.+\) · left [\d:]+$/,
    show,
  );

  assert.equal(share.promptsAfterLeaving, 0, show);
  assert.equal(share.stopped, "Stopped sharing; the ticket no longer works.", show);
  assert.equal(share.ticketShownAfterStop, false, show);

  const connect = report.connect as Record<string, string & string[]>;
  assert.match(
    connect.badTicket,
    /^Cannot parse ticket as it does not start with "mcpwebrtc2\."/,
    show,
  );
  assert.match(
    connect.refused,
    /^Cannot connect to the desktop: The room refused this ticket's key/,
    show,
  );
  const steps = connect.steps.split("\n");
  for (
    const step of [
      /^[\d.]+ ms connecting to the desktop through ws:\/\/127\.0\.0\.1:\d+\/$/,
      /^[\d.]+ ms joined the room/,
      /^[\d.]+ ms offer sent/,
      /^[\d.]+ ms answer received and verified$/,
      /^[\d.]+ ms ICE: network path found$/,
      /^[\d.]+ ms DTLS: encrypted session up$/,
      /^[\d.]+ ms data channel "mcp" open$/,
      /^[\d.]+ ms MCP session with "desktop", path (?:host|prflx) \(127\.0\.0\.1:\d+\)$/,
      /^[\d.]+ ms tools listed: greet, add, convert_temperature$/,
    ]
  ) assert.ok(steps.some((line) => step.test(line)), `${step} in ${show}`);
  // The steps in the order they happen: a channel opens only after ICE and DTLS.
  const at = (word: string) => steps.findIndex((line) => line.includes(word));
  assert.ok(at("ICE:") < at("DTLS:") && at("DTLS:") < at("data channel"), show);
  assert.equal(connect.error, "", show);
  assert.deepEqual(connect.tools, ["greet", "add", "convert_temperature"], show);
  assert.equal(connect.greet, "Hello, browser, from the desktop!", show);
  assert.equal(
    connect.badArgument,
    "Cannot call the tool as 'value' is required: fill it in",
  );
  assert.equal(connect.convert, "212 °F", show);
  assert.match(connect.resultTitle, /^convert_temperature answered in [\d.]+ ms$/, show);

  assert.equal(
    connect.desktopGone,
    "The connection to the desktop closed. Connect again to go on.",
    show,
  );

  assert.match(
    report.noPath as string,
    /^Cannot connect to the desktop(?: as|:) .*(ICE|path)/,
    show,
  );
  // The page says "Cannot connect" once: neither its detail line nor the start of the
  // transport's own message repeats it.
  assert.equal(connect.refused.match(/cannot connect/gi)?.length, 1, show);
  assert.doesNotMatch(
    report.noPath as string,
    /^Cannot connect to the desktop: Cannot connect/,
    show,
  );
  assert.match(
    connect.goneNotice,
    /^The desktop is not in its room: it stopped sharing, or is not running/,
    show,
  );
}

/** Runs the example's world in a fresh namespace; the screenshots go to `screenshots`. */
async function runExample(screenshots: string, defaults = false) {
  const { chromium } = tools as { chromium: string };
  return await runInNetns(
    "mcpw-example",
    "tests/browser/example_in_netns.ts",
    [chromium, screenshots, ...(defaults ? ["defaults"] : [])],
    CHILD_TIMEOUT_MS,
    { link: defaults },
  );
}

Deno.test({
  name:
    "The browser example shares a tab's tools with an agent and calls a desktop's tools, through the page's controls",
  ignore,
}, async () => {
  const given = Deno.env.get("SCREENSHOT_DIR");
  const screenshots = given ? await Deno.realPath(given) : await Deno.makeTempDir();
  try {
    assertBothPanels(await runExample(screenshots));
    for (const name of ["browser-share.png", "browser-connect.png"]) {
      const bytes = await Deno.readFile(`${screenshots}/${name}`);
      assert.deepEqual([...bytes.subarray(0, 4)], PNG, `${name} is a PNG`);
    }
  } finally {
    if (!given) await Deno.remove(screenshots, { recursive: true });
  }
});

Deno.test({
  name:
    "The browser example works with Chromium's own WebRTC settings: mDNS names, no loopback candidates",
  ignore,
}, async () => {
  const screenshots = await Deno.makeTempDir();
  try {
    assertBothPanels(await runExample(screenshots, true));
  } finally {
    await Deno.remove(screenshots, { recursive: true });
  }
});
