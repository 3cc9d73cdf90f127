/// <reference lib="dom" />
/**
 * "Share this tab": the page is an MCP server. It opens a room on a
 * signalling service, shows the ticket to hand to an agent, serves each agent
 * that arrives with a fresh `McpServer` holding the tab's tools, and keeps a
 * status line per agent (joined, its network path, left).
 *
 * @module
 */
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { type ConnectionPath, type WebRTCConnection, WebRTCListener } from "../../../mod.ts";
import { SignalingRoom } from "../../../src/signaling/mod.ts";
import { byId, clock, describeError, type NetworkSettings } from "./ui.ts";

/** How often, and how many times, to ask for a new connection's path. */
const PATH_POLL_MS = 50;
const PATH_POLLS = 40;

/** One agent's status line. */
class AgentLine {
  readonly label: string;
  readonly #item: HTMLLIElement;
  readonly #parts: string[] = [];

  constructor(number: number) {
    this.label = `Agent ${number}`;
    this.#item = document.createElement("li");
    document.getElementById("no-agents")?.remove();
    byId("agents").append(this.#item);
  }

  /** Whether the agent's connection came up. */
  get joined(): boolean {
    return this.#parts.length > 0;
  }

  /** Adds one status to the line, e.g. `joined 10:04:12`. */
  add(state: "joined" | "connected" | "left", text: string): void {
    this.#parts.push(text);
    this.#item.dataset.state = state;
    this.#item.textContent = `${this.label}: ${this.#parts.join(" · ")}`;
  }
}

/** Asks the person at the page; resolves with their answer, or `undefined` if the call ended first. */
function askPerson(
  who: string,
  request: string,
  signal: AbortSignal,
): Promise<boolean | undefined> {
  const box = document.createElement("div");
  box.className = "box approval";
  box.setAttribute("role", "alertdialog");
  const text = document.createElement("p");
  text.append(`${who} asks you to approve: `);
  const what = document.createElement("strong");
  what.textContent = request;
  text.append(what);
  const approve = Object.assign(document.createElement("button"), {
    textContent: "Approve",
    className: "primary",
  });
  const decline = Object.assign(document.createElement("button"), { textContent: "Decline" });
  const row = document.createElement("div");
  row.className = "row";
  row.append(approve, decline);
  box.append(text, row);
  byId("approvals").append(box);
  approve.focus();
  return new Promise((resolve) => {
    const done = (answer: boolean | undefined) => {
      box.remove();
      signal.removeEventListener("abort", cancelled);
      resolve(answer);
    };
    const cancelled = () => done(undefined);
    approve.onclick = () => done(true);
    decline.onclick = () => done(false);
    signal.addEventListener("abort", cancelled);
  });
}

/** The MCP server one agent gets: the tools this tab offers. */
function createTabServer(who: string): McpServer {
  const server = new McpServer({ name: "browser-tab", version: "1.0.0" });
  server.registerTool(
    "read_text",
    { description: "Reads the text that the person at the page typed into its box" },
    () => {
      const text = byId<HTMLTextAreaElement>("shared-text").value;
      return { content: [{ type: "text", text }] };
    },
  );
  server.registerTool(
    "page_clock",
    { description: "Tells the time on the page's clock, with the browser's time zone" },
    () => {
      const now = new Date();
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      return {
        content: [{ type: "text", text: `${now.toISOString()} (local time zone ${zone})` }],
      };
    },
  );
  server.registerTool(
    "ask_approval",
    {
      description:
        "Asks the person at the page to approve a request; answers once they approve or decline",
      inputSchema: { request: z.string().describe("What to approve, in one sentence") },
    },
    async ({ request }, { signal }) => {
      const answer = await askPerson(who, request, signal);
      if (answer === true) {
        return { content: [{ type: "text", text: `Approved: ${request}` }] };
      }
      return {
        isError: true,
        content: [{
          type: "text",
          text: answer === false ? `Declined: ${request}` : "The request was cancelled",
        }],
      };
    },
  );
  return server;
}

/** The path of a just-opened connection: the statistics report it shortly after it opens. */
async function pathOf(connection: WebRTCConnection): Promise<ConnectionPath | undefined> {
  for (let poll = 0; poll < PATH_POLLS; poll++) {
    const path = await connection.getConnectionPath().catch(() => undefined);
    if (path?.localCandidateType) return path;
    await new Promise((resolve) => setTimeout(resolve, PATH_POLL_MS));
  }
  return undefined;
}

/** Wires the "Share this tab" panel. */
export function setUpShare(network: NetworkSettings): void {
  const start = byId<HTMLButtonElement>("share-start");
  const stop = byId<HTMLButtonElement>("share-stop");
  const state = byId("share-state");
  const error = byId("share-error");
  const urlInput = byId<HTMLInputElement>("signal-url");
  if (network.signal) urlInput.value = network.signal;
  let listener: WebRTCListener | undefined;
  let agents = 0;

  const stopped = (why: string) => {
    listener = undefined;
    start.disabled = false;
    stop.disabled = true;
    urlInput.disabled = false;
    byId("ticket-box").hidden = true;
    state.textContent = why;
  };

  start.onclick = async () => {
    error.textContent = "";
    const url = urlInput.value.trim();
    if (!url) {
      error.textContent =
        "Cannot open a room as no signalling service is given: enter its URL, e.g. wss://signal.example";
      return;
    }
    // One line per agent (one peer connection); an agent may open several MCP sessions on it.
    const lines = new Map<string, AgentLine>();
    // The agents whose connection is up: the state line counts them.
    const connected = new Set<string>();
    const sharing = () => {
      if (listener === undefined || listener !== current) return;
      const count = connected.size;
      state.textContent = count === 0
        ? `Sharing: waiting for agents at ${url}`
        : `Sharing at ${url}: ${count} agent${count === 1 ? "" : "s"} connected`;
    };
    const lineOf = (peer: string) => {
      let line = lines.get(peer);
      if (!line) lines.set(peer, line = new AgentLine(++agents));
      return line;
    };
    start.disabled = true;
    urlInput.disabled = true;
    state.textContent = `Opening a room on ${url}…`;
    try {
      listener = await WebRTCListener.listen({
        url,
        iceServers: network.iceServers,
        connectTimeout: network.connectTimeout,
        createServer: ({ peer, session }) => {
          const { label } = lineOf(peer);
          return createTabServer(session > 1 ? `${label} (session ${session})` : label);
        },
      });
    } catch (cause) {
      stopped("");
      error.textContent = `Cannot open a room on ${url}: ${describeError(cause)}`;
      return;
    }
    const current = listener;
    listener.onagent = async ({ peer, connection }) => {
      const line = lineOf(peer);
      line.add("joined", `joined ${clock()}`);
      connected.add(peer);
      sharing();
      const path = await pathOf(connection);
      line.add(
        "connected",
        `path ${path?.localCandidateType ?? "unknown"}${
          path?.remoteAddress ? ` (${path.remoteAddress})` : ""
        }`,
      );
    };
    listener.onagentleave = ({ peer }, cause) => {
      const line = lineOf(peer);
      lines.delete(peer);
      if (connected.delete(peer)) sharing();
      // The listener gives a reason even for a goodbye: for an agent that was connected, the time is enough.
      line.add(
        "left",
        line.joined || !cause
          ? `left ${clock()}`
          : `could not connect (${clock()}): ${describeError(cause)}`,
      );
    };
    listener.onerror = (cause) => {
      error.textContent = describeError(cause);
    };
    const room = listener.hub;
    if (room instanceof SignalingRoom) {
      room.onclose = (cause) => {
        if (listener !== current) return;
        void current.close();
        stopped("");
        error.textContent = `The signalling room closed${
          cause ? `: ${describeError(cause)}` : ""
        }. Open a new room to share again.`;
      };
      room.onerror = (cause) => {
        if (listener !== current) return;
        state.textContent =
          `The room's connection dropped at ${clock()}; reconnecting (connected agents go on): ${cause.message}`;
      };
    }
    byId("ticket").textContent = listener.ticket!;
    byId("copy-state").textContent = "";
    byId("ticket-box").hidden = false;
    stop.disabled = false;
    sharing();
  };

  stop.onclick = async () => {
    const closing = listener;
    stopped("Stopping…");
    await closing?.close();
    stopped("Stopped sharing; the ticket no longer works.");
  };

  byId<HTMLButtonElement>("copy-ticket").onclick = async () => {
    const text = byId("ticket").textContent ?? "";
    const copyState = byId("copy-state");
    try {
      await navigator.clipboard.writeText(text);
      copyState.textContent = "Copied.";
    } catch {
      // No clipboard here (an insecure origin, or permission refused): select it instead.
      getSelection()?.selectAllChildren(byId("ticket"));
      copyState.textContent =
        "The clipboard is not available here: the ticket is selected, copy it.";
    }
  };
}
