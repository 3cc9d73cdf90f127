/**
 * One peer's view of a {@linkcode SignalingRoom}: a {@linkcode Signaling}
 * whose messages travel as the room's signal frames, with the relay pipe to
 * that peer.
 *
 * @module
 */
import { WebRTCTransportError } from "../errors.ts";
import type { RelayPipe } from "../relay/protocol.ts";
import type { RoomRelayPipe } from "../relay/room_pipe.ts";
import { ROOM_MEETING_POINT } from "./room_protocol.ts";
import type { SignalingMessage } from "./signaling.ts";
import { SignalingBase } from "./_signaling_base.ts";

/** Messages kept per peer until its view starts; more means nobody reads them. */
const MAX_PENDING = 1000;

/** The view of one present peer of the room. */
export class PeerSignaling extends SignalingBase {
  /** The relay pipe to this peer. */
  readonly pipe: RoomRelayPipe;
  /** See {@linkcode Signaling.meetingPoint}. */
  readonly meetingPoint = ROOM_MEETING_POINT;
  readonly #peer: string;
  readonly #send: (message: SignalingMessage) => Promise<void>;

  constructor(
    peer: string,
    send: (message: SignalingMessage) => Promise<void>,
    pipe: RoomRelayPipe,
  ) {
    super(MAX_PENDING);
    this.#peer = peer;
    this.#send = send;
    this.pipe = pipe;
  }

  /** The relay pipe to this peer; throws if the room does not relay. */
  relayPipe(): RelayPipe {
    this.pipe.check();
    return this.pipe;
  }

  send(message: SignalingMessage): Promise<void> {
    if (typeof message !== "object" || message === null || typeof message.type !== "string") {
      return Promise.reject(
        new TypeError("Cannot send signalling message as it must be an object with a string type"),
      );
    }
    if (this.closing) {
      return Promise.reject(
        new WebRTCTransportError(
          `Cannot send signalling message as the signalling to peer "${this.#peer}" is closed`,
        ),
      );
    }
    try {
      return this.#send(message);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Delivers, or keeps until `start()`, one message from the peer. */
  receive(message: SignalingMessage): void {
    if (this.accept(message) || this.closing) return;
    this.onerror?.(
      new WebRTCTransportError(
        `Dropped a signalling message from peer "${this.#peer}" as ${MAX_PENDING} wait for start()`,
      ),
    );
  }

  /**
   * Closes the relay pipe to the peer with the view, after the messages
   * already taken are delivered (each in a microtask of its own, queued
   * before this one): a goodbye read in the same turn as the peer's leaving
   * still says why it left.
   */
  protected override async closeCarrier(): Promise<void> {
    await Promise.resolve();
    this.pipe.shut();
  }
}
