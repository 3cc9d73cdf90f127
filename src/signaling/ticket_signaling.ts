import { WebRTCTransportError } from "../errors.ts";
import { recordSealKey } from "../_resume_claim.ts";
import type { IceServer } from "../peer.ts";
import { assertTicketUsable, guestDialKeys, parseTicket, type Ticket } from "../ticket.ts";
import { TicketError } from "../errors.ts";
import { ROOM_MEETING_POINT, roomUrl } from "./room_protocol.ts";
import { AuthenticatedSignaling } from "./authenticated_signaling.ts";
import type { SignalingMessage } from "./signaling.ts";
import { SignalingBase } from "./_signaling_base.ts";
import { clockOf } from "../_clock.ts";
import type { RelayPipe } from "../relay/protocol.ts";
import { WebSocketSignaling, type WebSocketSignalingOptions } from "./websocket_signaling.ts";

/** Options of {@linkcode TicketSignaling}: those of the room connection, less what the ticket gives. */
export type TicketSignalingOptions = Omit<WebSocketSignalingOptions, "key" | "hostVerifier">;

/**
 * The agent's side of a ticket: on `start()` it checks the ticket, joins its
 * room as a guest with the key derived from it, waits for the host, and
 * authenticates every signalling message end to end with the ticket's
 * signalling key. Hand it to a {@linkcode WebRTCClientTransport}.
 *
 * @example Dial the desktop that gave us a ticket
 * ```ts ignore
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * import { TicketSignaling, WebRTCClientTransport } from "@mcp/webrtc";
 *
 * const ticket = Deno.env.get("MCP_TICKET")!;
 * const client = new Client({ name: "agent", version: "1.0.0" });
 * await client.connect(new WebRTCClientTransport({ signaling: new TicketSignaling(ticket) }));
 * ```
 */
export class TicketSignaling extends SignalingBase {
  readonly #ticket: Ticket;
  readonly #options: TicketSignalingOptions;
  #room?: WebSocketSignaling;
  #inner?: AuthenticatedSignaling;

  /** Called for every authenticated message from the host. */
  declare onmessage?: (message: SignalingMessage) => void;
  /** Called once when the signalling closed. */
  declare onclose?: () => void;
  /** Called for a refused (unauthenticated) message or a room problem. */
  declare onerror?: (error: Error) => void;

  /**
   * @param ticket The guest ticket, as a string or parsed.
   * @param options Options of the room connection.
   * @throws {TicketError} If the ticket is malformed, or is a host ticket.
   */
  constructor(ticket: string | Ticket, options: TicketSignalingOptions = {}) {
    super();
    this.#ticket = typeof ticket === "string" ? parseTicket(ticket) : ticket;
    if (this.#ticket.kind !== "guest") {
      throw new TicketError(
        "Cannot dial with a host ticket: it opens the desktop's room and must stay on the desktop; ask it for the guest ticket (listener.ticket)",
      );
    }
    this.#options = options;
  }

  /**
   * Checks the ticket's expiry, joins its room and waits for the host.
   *
   * @throws {TicketError} If the ticket expired.
   * @throws {SignalingRoomError} If the room refused the key or no host came.
   */
  override start(): Promise<void> {
    return super.start();
  }

  protected override async open(): Promise<void> {
    assertTicketUsable(this.#ticket, new Date(clockOf(this).now()));
    // The signalling key is derived while the room is joined: only the first
    // sealed message, after the join, needs it.
    const keys = guestDialKeys(this.#ticket);
    const guestKey = await keys.guestKey;
    const room = await WebSocketSignaling.connect(roomUrl(this.#ticket), {
      ...this.#options,
      key: guestKey,
      ...this.#ticket.hostVerifier !== undefined && { hostVerifier: this.#ticket.hostVerifier },
    });
    let signalingKey: CryptoKey;
    try {
      signalingKey = await keys.signalingKey;
    } catch (error) {
      await room.close();
      throw error;
    }
    if (this.closing) {
      await room.close();
      throw new WebRTCTransportError("Cannot start ticket signalling as it was closed");
    }
    this.#room = room;
    const inner = new AuthenticatedSignaling(room, { key: signalingKey, role: "guest" });
    recordSealKey(this, signalingKey);
    inner.onmessage = (message) => this.onmessage?.(message);
    inner.onerror = (error) => this.onerror?.(error);
    inner.onclose = () => void this.close();
    this.#inner = inner;
    await inner.start();
  }

  /** See {@linkcode Signaling.meetingPoint}. */
  readonly meetingPoint = ROOM_MEETING_POINT;

  /** Always `true`: the ticket's signalling key seals every message. */
  get authenticated(): true {
    return true;
  }

  /**
   * The relay pipe to the host through the ticket's room.
   *
   * @throws {WebRTCTransportError} If not started, or the room does not relay.
   */
  relayPipe(): RelayPipe {
    if (!this.#inner || this.closing) {
      throw new WebRTCTransportError(
        `Cannot relay as the ticket signalling is ${this.closing ? "closed" : "not started"}`,
      );
    }
    return this.#inner.relayPipe();
  }

  /**
   * The STUN/TURN servers the ticket's room handed out, once `start()`
   * resolved (`undefined` before, or if it hands out none): see
   * `SignalingRoom.iceServers`.
   */
  get iceServers(): IceServer[] | undefined {
    return this.#room?.iceServers;
  }

  /**
   * Asks the ticket's room for STUN/TURN servers, once `start()` resolved
   * (`undefined` before, or if it hands out none): see
   * `SignalingRoom.requestIceServers`.
   */
  requestIceServers(): Promise<IceServer[] | undefined> {
    return this.#room?.requestIceServers() ?? Promise.resolve(undefined);
  }

  /**
   * Sends one message to the host, sealed.
   *
   * @throws {WebRTCTransportError} If not started or closed.
   */
  send(message: SignalingMessage): Promise<void> {
    if (!this.#inner || this.closing) {
      return Promise.reject(
        new WebRTCTransportError(
          `Cannot send signalling message as the ticket signalling is ${
            this.closing ? "closed" : "not started"
          }`,
        ),
      );
    }
    return this.#inner.send(message);
  }

  /** Leaves the room. */
  protected override async closeCarrier(): Promise<void> {
    await this.#inner?.close();
  }
}
