/**
 * What each entry of `deno.json` exports, values and types, by name: a change
 * to the public surface shows here and is made on purpose.
 */
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);

/** The sorted names each entry exports. */
const EXPECTED: Record<string, string[]> = {
  ".": [
    "Agent",
    "AgentSession",
    "AuditRecord",
    "AuthenticationError",
    "ConnectError",
    "ConnectStage",
    "ConnectStep",
    "ConnectableServer",
    "ConnectionPath",
    "CreateTicketOptions",
    "DEFAULT_CONNECTION_LINGER",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_ICE_SERVERS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_KEEPALIVE_INTERVAL",
    "DEFAULT_MAX_AGENTS",
    "DEFAULT_MAX_RECEIVE_SIZE",
    "DEFAULT_MAX_SESSIONS_PER_AGENT",
    "DEFAULT_MAX_TRACKED_REQUESTS",
    "DEFAULT_MAX_UNFINISHED_BYTES",
    "DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT",
    "DEFAULT_SESSION_STARTS_PER_SECOND",
    "DEFAULT_UNFINISHED_MESSAGE_TIMEOUT",
    "FrameError",
    "IceServer",
    "Invite",
    "InviteOptions",
    "InviteRecord",
    "ListenOptions",
    "MemorySignaling",
    "MessageSizeError",
    "PeerConnectionConstructor",
    "PeerConnectionLike",
    "PeerLostError",
    "PeerRefusalError",
    "PolicyTransport",
    "PolicyTransportOptions",
    "RelayError",
    "RevokeResult",
    "SignalRefusedError",
    "Signaling",
    "SignalingHub",
    "SignalingMessage",
    "SignalingRoomError",
    "SignalingRoomErrorCode",
    "SignalingStartOptions",
    "Ticket",
    "TicketError",
    "TicketKeys",
    "TicketKind",
    "TicketSignaling",
    "TicketSignalingOptions",
    "WebRTCClientTransport",
    "WebRTCConnection",
    "WebRTCConnectionOptions",
    "WebRTCListener",
    "WebRTCListenerOptions",
    "WebRTCServerTransport",
    "WebRTCSessionTransport",
    "WebRTCTransport",
    "WebRTCTransportError",
    "WebRTCTransportOptions",
    "assertTicketUsable",
    "createGuestTicket",
    "createTicket",
    "deriveTicketKeys",
    "formatTicket",
    "isTicketExpired",
    "parseTicket",
  ],
  "./signaling": [
    "AuthenticatedSignaling",
    "AuthenticatedSignalingOptions",
    "DEFAULT_HOST_TIMEOUT",
    "PreparedHello",
    "ReconnectOptions",
    "SignalingRoom",
    "SignalingRoomOptions",
    "WebSocketConstructor",
    "WebSocketLike",
    "WebSocketSignaling",
    "WebSocketSignalingOptions",
    "createRoomId",
    "createRoomKey",
    "keyVerifier",
    "pairRoomId",
    "roomUrl",
    "verifyKey",
  ],
  "./framing": [
    "DEFAULT_CHANNEL_OPEN_TIMEOUT",
    "DataChannelLike",
    "DataChannelTransport",
    "DataChannelTransportOptions",
    "DecodedFrame",
    "FRAME_KEEPALIVE",
    "FRAME_LAST",
    "FRAME_MORE",
    "FrameDecoder",
    "FrameDecoderOptions",
    "MemoryBudget",
    "RefusedEnvelope",
    "encodeFrames",
    "fitsOneFrame",
    "oneTextFrame",
  ],
  "./testing": ["LinkedChannelPairOptions", "MemoryChannel", "createLinkedChannelPair"],
  "./tcp": ["TcpSocketSignaling", "TcpSocketSignalingOptions"],
  "./cli": ["ExitCode", "main"],
  "./a2a": [
    "A2AClientSignaling",
    "A2AClientSignalingOptions",
    "A2AMcpOffer",
    "A2ASignalingExtensionOptions",
    "A2ASignalingKeyLookup",
    "A2ASignalingRouter",
    "A2A_MAX_KEY_ID_LENGTH",
    "A2A_MAX_PENDING_MESSAGES",
    "A2A_MAX_SIGNALING_MESSAGE_SIZE",
    "A2A_MAX_SIGNALING_PARTS",
    "A2A_SIGNALING_EXTENSION_URI",
    "A2A_SIGNALING_MEDIA_TYPE",
    "McpChannelEvent",
    "McpChannelStatus",
    "OpenA2ASignalingOptions",
    "SendMessageOfferingMcpOptions",
    "a2aMcpOffer",
    "a2aSignalingExtension",
    "sendMessageOfferingMcp",
  ],
};

/** The `exports` of deno.json: entry name to file. */
async function entries(): Promise<Record<string, string>> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  return config.exports;
}

/** The sorted names `deno doc` finds exported by each file, keyed by its URL. */
async function exportedNames(files: string[]): Promise<Map<string, string[]>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...files],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `deno doc failed:\n${stderr}`);
  const doc: { nodes: Record<string, { symbols: { name: string }[] }> } = JSON.parse(
    new TextDecoder().decode(output.stdout),
  );
  const names = new Map<string, string[]>();
  for (const [url, node] of Object.entries(doc.nodes)) {
    names.set(url, node.symbols.map((symbol) => symbol.name).sort());
  }
  return names;
}

Deno.test("Each entry of deno.json exports exactly the names listed here", async () => {
  const exports = await entries();
  assert.deepEqual(Object.keys(exports).sort(), Object.keys(EXPECTED).sort());
  const names = await exportedNames(Object.values(exports));
  for (const [entry, file] of Object.entries(exports)) {
    const url = new URL(file, root).href;
    assert.deepEqual(
      names.get(url),
      EXPECTED[entry],
      `the exports of "${entry}" (${file}) changed: if on purpose, update tests/exports_test.ts`,
    );
  }
});

Deno.test("The root entry's values are the names it lists, and nothing more", async () => {
  const module = await import("../mod.ts");
  const values = Object.keys(module).sort();
  for (const value of values) assert.ok(EXPECTED["."].includes(value), `unlisted: ${value}`);
  assert.ok(values.includes("WebRTCClientTransport"));
});
