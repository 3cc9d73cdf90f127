/// <reference lib="dom" />
/**
 * "Connect to a desktop": the page is an MCP client. It dials the desktop of
 * a pasted ticket, shows every connection step with its time, lists the
 * desktop's tools, and calls one with arguments from a form generated from
 * the tool's input schema.
 *
 * @module
 */
import { Client } from "@modelcontextprotocol/sdk/client";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types";
import {
  type ConnectStep,
  parseTicket,
  type Ticket,
  TicketSignaling,
  WebRTCClientTransport,
} from "../../../mod.ts";
import { argumentsFrom, type Field, fieldsOf } from "./form.ts";
import { StepOrder } from "./steps.ts";
import { byId, describeConnectFailure, describeError, type NetworkSettings } from "./ui.ts";

/** How long to wait for the desktop to be in its room. */
const HOST_TIMEOUT_MS = 10_000;

const STEP_LABELS: Record<ConnectStep, string> = {
  signaling: "joined the room (keys derived from the ticket)",
  offer: "offer sent (sealed with the ticket's key)",
  answer: "answer received and verified",
  ice: "ICE: network path found",
  dtls: "DTLS: encrypted session up",
  channel: 'data channel "mcp" open',
};

/** The connection steps, each with its time since "Connect". */
class StepLog {
  readonly #list = byId<HTMLOListElement>("steps");
  #started = performance.now();

  reset(): void {
    this.#list.replaceChildren();
    this.#started = performance.now();
  }

  add(text: string): void {
    const item = document.createElement("li");
    const ms = document.createElement("span");
    ms.className = "ms";
    ms.textContent = `${(performance.now() - this.#started).toFixed(1)} ms`;
    item.append(ms, " ", text);
    this.#list.append(item);
  }
}

/** Renders a tool's fields into the form. */
function renderFields(fields: Field[]): void {
  const container = byId("fields");
  container.replaceChildren();
  if (fields.length === 0) {
    const none = document.createElement("p");
    none.className = "hint";
    none.textContent = "This tool takes no arguments.";
    container.append(none);
  }
  for (const field of fields) {
    const id = `field-${field.name}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = field.name;
    const hint = document.createElement("small");
    hint.textContent = [
      field.required ? " (required)" : " (optional)",
      field.kind === "json" ? " JSON" : "",
      field.description ? ` ${field.description}` : "",
    ].join("");
    label.append(hint);
    let input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
    if (field.kind === "choice") {
      input = document.createElement("select");
      for (const choice of field.choices ?? []) input.append(new Option(choice, choice));
    } else if (field.kind === "json") {
      input = document.createElement("textarea");
    } else {
      input = document.createElement("input");
      input.type = field.kind === "boolean"
        ? "checkbox"
        : field.kind === "text"
        ? "text"
        : "number";
      if (field.kind === "number") input.step = "any";
    }
    input.id = id;
    input.name = field.name;
    if (field.initial !== undefined) {
      if (input instanceof HTMLInputElement && input.type === "checkbox") {
        input.checked = field.initial === "true";
      } else input.value = field.initial;
    }
    if (field.kind === "boolean") {
      // A checkbox beside its name reads better than under it.
      label.prepend(input, " ");
      container.append(label);
    } else {
      container.append(label, input);
    }
  }
}

/** The text of a tool result for the page: text as it is, anything else as JSON. */
function resultText(result: CallToolResult): string {
  return result.content.map((item) =>
    item.type === "text" ? item.text : JSON.stringify(item, null, 2)
  ).join("\n") || JSON.stringify(result.structuredContent ?? {}, null, 2);
}

/** Wires the "Connect to a desktop" panel. */
export function setUpConnect(network: NetworkSettings): void {
  const start = byId<HTMLButtonElement>("connect-start");
  const stop = byId<HTMLButtonElement>("connect-stop");
  const ticketInput = byId<HTMLTextAreaElement>("connect-ticket");
  const error = byId("connect-error");
  const remote = byId("remote");
  const select = byId<HTMLSelectElement>("tool");
  const steps = new StepLog();
  let client: Client | undefined;
  let tools: Tool[] = [];
  let fields: Field[] = [];

  const idle = () => {
    client = undefined;
    start.disabled = false;
    ticketInput.disabled = false;
    stop.disabled = true;
    byId<HTMLButtonElement>("call").disabled = true;
  };

  const showTool = () => {
    const tool = tools.find((entry) => entry.name === select.value);
    byId("tool-description").textContent = tool?.description ?? "";
    fields = fieldsOf(tool?.inputSchema);
    renderFields(fields);
    byId("call-error").textContent = "";
    byId("result-box").hidden = true;
  };
  select.onchange = showTool;

  start.onclick = async () => {
    error.textContent = "";
    remote.hidden = true;
    steps.reset();
    let ticket: Ticket;
    try {
      // A ticket has no spaces: those pasted with it (a terminal's line breaks) go.
      ticketInput.value = ticketInput.value.replace(/\s+/g, "");
      ticket = parseTicket(ticketInput.value);
      if (ticket.kind !== "guest") {
        throw new Error(
          "Cannot connect with a host ticket: it must stay on the desktop; paste the guest ticket it printed",
        );
      }
    } catch (cause) {
      error.textContent = describeError(cause);
      return;
    }
    start.disabled = true;
    ticketInput.disabled = true;
    steps.add(`connecting to the desktop through ${ticket.url}`);
    let waiting = false;
    const transport = new WebRTCClientTransport({
      signaling: new TicketSignaling(ticket, {
        hostTimeout: HOST_TIMEOUT_MS,
        // Said at once, not after the wait: the desktop may have stopped sharing.
        onwaitforhost: () => {
          waiting = true;
          steps.add("the desktop is not in its room; waiting for it");
          error.textContent =
            `The desktop is not in its room: it stopped sharing, or is not running. Waiting ${
              HOST_TIMEOUT_MS / 1000
            } s for it to come back…`;
        },
      }),
      iceServers: network.iceServers,
      connectTimeout: network.connectTimeout,
    });
    const order = new StepOrder();
    transport.onconnectstep = (reported) => {
      if (waiting) error.textContent = "";
      waiting = false;
      for (const step of order.take(reported)) steps.add(STEP_LABELS[step]);
    };
    const current = new Client({ name: "browser-tab", version: "1.0.0" });
    client = current;
    try {
      await current.connect(transport);
      const path = await transport.getConnectionPath().catch(() => undefined);
      const server = current.getServerVersion();
      steps.add(
        `MCP session with "${server?.name ?? "?"}", path ${path?.localCandidateType ?? "unknown"}${
          path?.remoteAddress ? ` (${path.remoteAddress})` : ""
        }`,
      );
      tools = (await current.listTools()).tools;
      steps.add(`tools listed: ${tools.map((tool) => tool.name).join(", ") || "none"}`);
    } catch (cause) {
      idle();
      steps.add("failed");
      error.textContent = describeConnectFailure(cause);
      // Said first: letting go of a connection that never came up can take seconds.
      void current.close().catch(() => {});
      return;
    }
    current.onclose = () => {
      if (client !== current) return;
      idle();
      steps.add("the connection closed");
      error.textContent = "The connection to the desktop closed. Connect again to go on.";
    };
    select.replaceChildren(...tools.map((tool) => new Option(tool.name, tool.name)));
    showTool();
    remote.hidden = false;
    stop.disabled = false;
    byId<HTMLButtonElement>("call").disabled = tools.length === 0;
  };

  stop.onclick = async () => {
    const closing = client;
    idle();
    await closing?.close();
    steps.add("disconnected");
  };

  byId<HTMLFormElement>("call-form").onsubmit = async (event) => {
    event.preventDefault();
    const callError = byId("call-error");
    callError.textContent = "";
    if (!client) return;
    const form = new FormData(byId<HTMLFormElement>("call-form"));
    const values: Record<string, string> = {};
    for (const [key, value] of form) values[key] = String(value);
    let args: Record<string, unknown>;
    try {
      args = argumentsFrom(fields, values);
    } catch (cause) {
      callError.textContent = describeError(cause);
      return;
    }
    const name = select.value;
    const call = byId<HTMLButtonElement>("call");
    call.disabled = true;
    const started = performance.now();
    try {
      const result = await client.callTool({ name, arguments: args }) as CallToolResult;
      const ms = (performance.now() - started).toFixed(1);
      byId("result-title").textContent = `${name} ${
        result.isError ? "failed" : "answered"
      } in ${ms} ms`;
      const output = byId("result");
      output.textContent = resultText(result);
      output.classList.toggle("is-error", result.isError === true);
      byId("result-box").hidden = false;
    } catch (cause) {
      callError.textContent = `Cannot call ${name}: ${describeError(cause)}`;
    } finally {
      call.disabled = client === undefined;
    }
  };
}
