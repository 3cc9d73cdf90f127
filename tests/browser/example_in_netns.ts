/**
 * The browser example's world, run by `tests/browser_example_test.ts` inside
 * a network namespace that holds only `lo`: the signalling worker, the
 * example's desktop, the example's page server, and headless Chromium driven
 * through the page's own controls (playwright-core). Prints one JSON line:
 * the page's text at each step, what a Deno agent got from the tab, and where
 * the screenshots are.
 *
 * Usage: `ip netns exec NS deno run -A tests/browser/example_in_netns.ts <chromium> <screenshot dir> [defaults]`
 *
 * With `defaults`, Chromium keeps its own WebRTC settings, as a person's
 * browser has them: host candidates hidden behind mDNS names, and no loopback
 * candidates (the namespace then needs a link besides `lo`).
 *
 * @module
 */
import type { Client } from "@modelcontextprotocol/sdk/client";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types";
import { chromium as playwright, type Page } from "playwright-core";
import {
  createGuestTicket,
  createTicket,
  formatTicket,
  parseTicket,
  WebRTCListener,
} from "../../mod.ts";
import { createDesktopServer } from "../../examples/browser/desktop.ts";
import { bundlePage, servePage } from "../../examples/browser/serve.ts";
import { dial, LOCAL, withWorker } from "../_helpers.ts";
import { CHROMIUM_FLAGS } from "./netns.ts";

/** How long one step of the page may take (a connection, a call, a screenshot). */
const STEP_MS = 20_000;
/** The page's connect timeout in the no-path case: short, the outcome is certain. */
const NO_PATH_TIMEOUT_MS = 3_000;
/**
 * How soon the page must say that a desktop stopped sharing: well under its
 * 10 s wait for a desktop to come back to its room.
 */
const GONE_NOTICE_MS = 3_000;

const text = (result: CallToolResult) =>
  result.content.map((item) => item.type === "text" ? item.text : "").join("");

/** The text of an element as shown (one line per line), once it matches. */
async function waitForText(page: Page, selector: string, pattern = /\S/): Promise<string> {
  const element = page.locator(selector);
  await element.filter({ hasText: pattern }).waitFor({ timeout: STEP_MS });
  return (await element.innerText()).trim();
}

async function main(
  chromium: string,
  screenshots: string,
  defaults: boolean,
): Promise<Record<string, unknown>> {
  const script = await bundlePage();
  return await withWorker(async (worker) => {
    const desktop = await WebRTCListener.listen({
      url: worker.url,
      createServer: () => createDesktopServer(),
      ...LOCAL,
    });
    // A desktop no peer can reach: relay candidates only, and no TURN server.
    const unreachable = await WebRTCListener.listen({
      url: worker.url,
      createServer: () => createDesktopServer(),
      iceServers: [],
      rtcConfiguration: { bindAddress: "127.0.0.1", iceTransportPolicy: "relay" },
    });
    // The desktop's room, another secret: the worker refuses the key it derives.
    const stranger = await createGuestTicket(await createTicket({ url: worker.url }));
    const wrong = formatTicket({ ...stranger, room: parseTicket(desktop.ticket!).room });
    const server = await servePage(script);
    const args = defaults
      ? CHROMIUM_FLAGS.filter((flag) => !/loopback|WebRtcHideLocalIpsWithMdns/.test(flag))
      : CHROMIUM_FLAGS;
    const browser = await playwright.launch({ executablePath: chromium, args });
    const report: Record<string, unknown> = { bundleBytes: script.length };
    let agent: Client | undefined;
    const page = await browser.newPage({ viewport: { width: 860, height: 900 } });
    try {
      await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
      const address = `${server.url}?signal=${worker.url}&ice=none`;

      // "Share this tab".
      const loaded = performance.now();
      const scriptResponse = page.waitForResponse((response) => response.url().endsWith("/app.js"));
      await page.goto(address);
      await page.locator("body[data-ready]").waitFor({ timeout: STEP_MS });
      report.scriptEncoding = (await (await scriptResponse).allHeaders())["content-encoding"];
      report.loadMs = Math.round(performance.now() - loaded);
      const share: Record<string, unknown> = {};
      report.share = share;
      // A signalling service that is not there.
      await page.getByLabel("Signalling service").fill("ws://127.0.0.1:9/");
      await page.getByRole("button", { name: "Open a room" }).click();
      share.unreachable = await waitForText(page, "#share-error");
      await page.getByLabel("Signalling service").fill(worker.url);
      await page.getByLabel("Text to share").fill("Meeting moved to 3 pm, room 4.");
      await page.getByRole("button", { name: "Open a room" }).click();
      const ticket = await waitForText(page, "#ticket");
      share.ticket = ticket;
      share.state = await waitForText(page, "#share-state");
      await page.getByRole("button", { name: "Copy ticket" }).click();
      share.copyState = await waitForText(page, "#copy-state");
      share.clipboard = await page.evaluate("navigator.clipboard.readText()");

      agent = await dial(ticket);
      share.tools = (await agent.listTools()).tools.map((tool) => tool.name);
      share.readText = text(await agent.callTool({ name: "read_text" }) as CallToolResult);
      share.clock = text(await agent.callTool({ name: "page_clock" }) as CallToolResult);
      share.agentsConnected = await waitForText(page, "#agents", /path \w+/);
      share.stateConnected = await waitForText(page, "#share-state", /connected/);
      const asked = agent.callTool({
        name: "ask_approval",
        arguments: { request: "Read the meeting notes" },
      }) as Promise<CallToolResult>;
      share.prompt = await waitForText(page, "[role=alertdialog]");
      await page.screenshot({ path: `${screenshots}/browser-share.png`, fullPage: true });
      await page.getByRole("button", { name: "Approve" }).click();
      const approved = await asked;
      share.approved = { isError: approved.isError ?? false, text: text(approved) };
      const declined = agent.callTool({
        name: "ask_approval",
        arguments: { request: "Delete the notes" },
      }) as Promise<CallToolResult>;
      await page.getByRole("button", { name: "Decline" }).click();
      const refused = await declined;
      share.declined = { isError: refused.isError ?? false, text: text(refused) };
      // An agent that leaves while the page asks: the question goes away with it.
      const abandoned = agent.callTool({
        name: "ask_approval",
        arguments: { request: "Wait for me" },
      }).catch(() => undefined);
      await page.locator("[role=alertdialog]").waitFor({ timeout: STEP_MS });
      await agent.close();
      agent = undefined;
      await abandoned;
      share.agentsLeft = await waitForText(page, "#agents", /left/);
      share.stateLeft = await waitForText(page, "#share-state", /waiting/);
      await page.locator("[role=alertdialog]").waitFor({ state: "detached", timeout: STEP_MS });
      share.promptsAfterLeaving = await page.locator("[role=alertdialog]").count();
      await page.getByRole("button", { name: "Stop sharing" }).click();
      share.stopped = await waitForText(page, "#share-state", /^Stopped/);
      share.ticketShownAfterStop = await page.locator("#ticket-box").isVisible();

      // "Connect to a desktop".
      const connect: Record<string, unknown> = {};
      report.connect = connect;
      await page.getByRole("tab", { name: "Connect to a desktop" }).click();
      const ticketBox = page.getByLabel("Ticket");
      const connectButton = page.getByRole("button", { name: "Connect", exact: true });
      await ticketBox.fill("not a ticket");
      await connectButton.click();
      connect.badTicket = await waitForText(page, "#connect-error");
      await ticketBox.fill(wrong);
      await connectButton.click();
      connect.refused = await waitForText(page, "#connect-error", /desktop/);
      // Pasted from a terminal that wrapped it: line breaks inside.
      await ticketBox.fill(desktop.ticket!.replace(/(.{60})/g, "$1\n"));
      await connectButton.click();
      connect.steps = await waitForText(page, "#steps", /tools listed/);
      connect.error = await page.locator("#connect-error").innerText();
      connect.tools = await page.locator("#tool option").allTextContents();
      await page.getByRole("textbox", { name: /^name / }).fill("browser");
      await page.getByRole("checkbox", { name: /^excited / }).check();
      await page.getByRole("button", { name: "Call" }).click();
      connect.greet = await waitForText(page, "#result", /Hello/);
      await page.getByLabel("Tool", { exact: true }).selectOption("convert_temperature");
      await page.getByRole("button", { name: "Call" }).click();
      connect.badArgument = await waitForText(page, "#call-error");
      await page.getByRole("spinbutton", { name: /^value / }).fill("100");
      await page.getByRole("combobox", { name: /^to / }).selectOption("fahrenheit");
      await page.getByRole("button", { name: "Call" }).click();
      connect.convert = await waitForText(page, "#result", /°F/);
      connect.resultTitle = await waitForText(page, "#result-title");
      await page.screenshot({ path: `${screenshots}/browser-connect.png`, fullPage: true });
      // The desktop goes away: the page says so.
      await desktop.close();
      connect.desktopGone = await waitForText(page, "#connect-error", /closed/);
      // Dialled again, the desktop that stopped sharing is not in its room: said at once.
      const dialled = performance.now();
      await connectButton.click();
      const gone = page.locator("#connect-error").filter({ hasText: /not in its room/ });
      await gone.waitFor({ timeout: GONE_NOTICE_MS });
      connect.goneNotice = (await gone.innerText()).trim();
      connect.goneNoticeMs = Math.round(performance.now() - dialled);

      // No network path: a fresh tab with a short connect timeout.
      const noPath = await browser.newPage();
      try {
        await noPath.goto(`${address}&timeout=${NO_PATH_TIMEOUT_MS}#connect`);
        await noPath.getByLabel("Ticket").fill(unreachable.ticket!);
        await noPath.getByRole("button", { name: "Connect", exact: true }).click();
        report.noPath = await waitForText(noPath, "#connect-error");
      } finally {
        await noPath.close();
      }
      report.screenshots = screenshots;
    } catch (error) {
      report.error = error instanceof Error ? error.stack ?? error.message : String(error);
      report.pageText = await page.locator("body").innerText().catch(() => undefined);
    } finally {
      await agent?.close().catch(() => {});
      await browser.close();
      await server.close();
      await Promise.all([desktop.close(), unreachable.close()]);
    }
    return report;
  });
}

let output: Record<string, unknown>;
try {
  output = await main(Deno.args[0] ?? "chromium", Deno.args[1] ?? ".", Deno.args[2] === "defaults");
} catch (error) {
  output = { error: error instanceof Error ? error.stack ?? error.message : String(error) };
}
console.log(JSON.stringify(output));
// node-datachannel may hold the process open; everything is closed by now.
Deno.exit(0);
