/// <reference lib="dom" />
/**
 * The page's script: two panels, "Share this tab" (the page is an MCP
 * server) and "Connect to a desktop" (the page is an MCP client). Bundle it
 * for the browser with node-datachannel and ws left out (a browser has its
 * own RTCPeerConnection and WebSocket):
 *
 * ```sh
 * deno bundle --platform=browser --minify --external=node-datachannel \
 *   --external=ws --output=app.js examples/browser/app.ts
 * ```
 *
 * The page reads `?signal=` (the signalling service to open rooms on),
 * `?ice=none` (no STUN server: peers on one machine) and `?timeout=` (ms to
 * connect) from its address; `#connect` opens the second panel.
 *
 * @module
 */
import { setUpConnect } from "./connect.ts";
import { setUpShare } from "./share.ts";
import { byId, readNetworkSettings } from "./ui.ts";

const network = readNetworkSettings(new URLSearchParams(location.search));
const panels = ["share", "connect"] as const;

function show(panel: typeof panels[number]): void {
  for (const name of panels) {
    byId(name).hidden = name !== panel;
    byId(`tab-${name}`).setAttribute("aria-selected", String(name === panel));
  }
  history.replaceState(null, "", `${location.search}#${panel}`);
}

for (const name of panels) byId(`tab-${name}`).onclick = () => show(name);
setUpShare(network);
setUpConnect(network);
show(location.hash === "#connect" ? "connect" : "share");
byId("footer").textContent = `ICE servers: ${
  network.iceServers === undefined
    ? "the module's default (a public STUN server)"
    : network.iceServers.length === 0
    ? "none (peers on this machine only)"
    : network.iceServers.map((server) => server.urls).join(", ")
}. Loaded in ${Math.round(performance.now())} ms.`;
document.body.dataset.ready = "true";
