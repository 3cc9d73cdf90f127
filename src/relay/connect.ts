/**
 * The relay's set-up, once both sides chose it: whether the signalling can
 * carry it ({@linkcode relayRefusal}), and the link opened from the other
 * side's relay hello ({@linkcode openRelayLink}).
 *
 * Each side sends a relay hello (its X25519 public key, see `crypto.ts`, and
 * the window of the link's flow control it grants, see `link.ts`) through the
 * sealed signalling and answers the other's. The relay needs authenticated
 * signalling and a carrier that relays (a room); without them it is refused
 * with a {@linkcode RelayError}.
 *
 * @module
 */

import { CHANNEL_LABEL, CHANNEL_PROTOCOL, RELAY_MIN_WINDOW, RELAY_WINDOW } from "../constants.ts";
import { ConnectError, RelayError } from "../errors.ts";
import type { Signaling } from "../signaling/signaling.ts";
import { readRelayHello, type RelayKeyShare } from "./crypto.ts";
import { readRelayWindow, type RelayChannel, RelayLink } from "./link.ts";
import type { RelayCarrier, RelayPipe } from "./protocol.ts";

/**
 * The `localCandidateType` and `remoteCandidateType` of a connection on the
 * relay path: the peers' data channels run through the signalling room's
 * WebSocket, sealed end to end.
 */
export const RELAY_PATH_TYPE = "relay-ws";

/**
 * The window this process grants in its relay hellos: {@linkcode RELAY_WINDOW}.
 * The relay benchmark sets it so large that it never binds, to measure what
 * the flow control costs in the same run.
 */
export const relayFlow: { window: number } = { window: RELAY_WINDOW };

/**
 * Why the relay cannot be used over `signaling`, if it cannot; with `probe`,
 * also asks the signalling for its pipe (once it has started).
 */
export function relayRefusal(signaling: Signaling, probe = true): RelayError | undefined {
  const carrier = signaling as Signaling & RelayCarrier;
  if (carrier.authenticated !== true) {
    return new RelayError(
      "Cannot connect over the relay as the signalling is not authenticated: the relay's key exchange must be sealed end to end, so connect with a ticket (TicketSignaling, WebRTCListener.listen) or wrap the signalling in AuthenticatedSignaling",
    );
  }
  if (typeof carrier.relayPipe !== "function") {
    return new RelayError(
      "Cannot connect over the relay as the signalling carries messages only: only a signalling room relays; connect through a ticket's room",
    );
  }
  if (!probe) return undefined;
  try {
    // Asking is free: a room's view hands out its one pipe, or says why it has none.
    carrier.relayPipe();
  } catch (error) {
    return error instanceof RelayError
      ? error
      : new RelayError(`Cannot connect over the relay: ${(error as Error).message}`, {
        cause: error,
      });
  }
  return undefined;
}

/** What {@linkcode openRelayLink} needs. */
export interface RelayLinkSetup {
  /** Whether this side dials (opens the `mcp` channel). */
  readonly initiator: boolean;
  /** The relay pipe of the signalling. */
  readonly pipe: RelayPipe;
  /** This side's key share, whose hello was sent. */
  readonly share: RelayKeyShare;
  /** The window this side granted in its hello. */
  readonly window: number;
  /** Called synchronously when the `mcp` channel exists, before it opens. */
  readonly onchannel?: (channel: RelayChannel, peerSpeaksFraming: boolean) => void;
  /** Whether the connection is up (a channel labelled `mcp` is then a further one). */
  connected(): boolean;
  /** Called for each further channel the other side opens. */
  readonly ondatachannel: (channel: RelayChannel) => void;
  /** Called once the link is over (see `RelayLink.onend`). */
  readonly onend: (error: Error | undefined, why: string) => void;
  /** Waits for one step of the set-up, named `what`, within the connect's bounds. */
  wait<T>(promise: Promise<T>, what: string): Promise<T>;
}

/**
 * Opens the link from the other side's relay `hello`: derives the keys, starts
 * the link (with flow control when both hellos grant a window) and resolves
 * with it and its open `mcp` channel.
 *
 * @throws {ConnectError} If the hello is malformed, or a step does not complete.
 */
export async function openRelayLink(
  hello: Record<string, unknown>,
  setup: RelayLinkSetup,
  onlink: (link: RelayLink) => void,
): Promise<RelayChannel> {
  const key = readRelayHello(hello);
  if (!key) {
    throw new ConnectError(
      "signaling",
      "Cannot connect over the relay as the other peer's relay hello is malformed: it may speak another version of the relay",
    );
  }
  // Both hellos carry a window: flow control. The other's has none: it is
  // of an earlier version, and the link runs as that version did.
  const window = readRelayWindow(hello);
  if (window === null) {
    throw new ConnectError(
      "signaling",
      `Cannot connect over the relay as the other peer's relay hello grants a malformed window (not an integer of at least RELAY_MIN_WINDOW, ${RELAY_MIN_WINDOW} bytes): it may speak another version of the relay; run this module's current version on both sides`,
    );
  }
  const cipher = await setup.share.derive(key);
  const link = new RelayLink(
    setup.pipe,
    cipher,
    setup.initiator,
    window === undefined ? undefined : { send: window, receive: setup.window },
  );
  onlink(link);
  let primary: (channel: RelayChannel) => void = () => {};
  const first = new Promise<RelayChannel>((resolve) => (primary = resolve));
  link.ondatachannel = (channel) => {
    if (!setup.initiator && !setup.connected() && channel.label === CHANNEL_LABEL) {
      setup.onchannel?.(channel, channel.protocol === CHANNEL_PROTOCOL);
      primary(channel);
    } else setup.ondatachannel(channel);
  };
  link.onend = (error, why) => setup.onend(error, why);
  let channel: RelayChannel;
  if (setup.initiator) {
    channel = link.createChannel(CHANNEL_LABEL, CHANNEL_PROTOCOL);
    setup.onchannel?.(channel, false);
  } else channel = await setup.wait(first, "first data channel");
  if (channel.readyState === "connecting") {
    await setup.wait(
      new Promise((resolve) => channel.addEventListener("open", resolve)),
      "data channel",
    );
  }
  return channel;
}
