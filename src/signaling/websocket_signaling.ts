/**
 * The guest side of a signalling room in one object: {@linkcode WebSocketSignaling}
 * joins a room as a guest and is the {@linkcode Signaling} to its host.
 *
 * @module
 */
import type { RelayPipe } from "../relay/protocol.ts";
import { DEFAULT_HOST_TIMEOUT } from "../constants.ts";
import type { IceServer } from "../peer.ts";
import { HOST, ROOM_MEETING_POINT } from "./room_protocol.ts";
import type { Signaling, SignalingMessage } from "./signaling.ts";
import { SignalingBase } from "./_signaling_base.ts";
import { SignalingRoom, type SignalingRoomOptions } from "./signaling_room.ts";
import { SignalingRoomError } from "../errors.ts";

/**
 * Options of {@linkcode WebSocketSignaling.connect}: those of a guest's
 * {@linkcode SignalingRoomOptions}, without reconnecting (a guest that
 * reconnects is a new peer to the host), plus how long to wait for the host.
 *
 * @example Wait at most 5 s for the host
 * ```ts no-assert
 * import type { WebSocketSignalingOptions } from "@mcp/webrtc/signaling";
 *
 * const options: WebSocketSignalingOptions = { key: "guest-key-0123456789", hostTimeout: 5_000 };
 * ```
 */
export interface WebSocketSignalingOptions
  extends Omit<SignalingRoomOptions, "role" | "guestVerifier" | "reconnect"> {
  /**
   * Milliseconds to wait for the host to be in the room.
   *
   * @default {30000}
   */
  hostTimeout?: number;
  /**
   * Called once, right after joining, if the host is not in the room: the
   * wait of up to `hostTimeout` for it begins. Lets a user hear at once that
   * the server side is not there (not started yet, or stopped sharing).
   *
   * @default {undefined}
   */
  onwaitforhost?: () => void;
}

/**
 * The guest side in one object: joins a room as a guest and is the
 * {@linkcode Signaling} to its host, ready to hand to a transport. It closes
 * (and leaves the room) when the host leaves or the connection drops; open a
 * new one to try again.
 *
 * @example Dial an MCP server through a room
 * ```ts ignore
 * import { WebRTCClientTransport } from "@mcp/webrtc";
 * import { WebSocketSignaling } from "@mcp/webrtc/signaling";
 *
 * const signaling = await WebSocketSignaling.connect(
 *   "wss://signal.example/v1/rooms/Nq3RkWmvh0VrKz2Hd7yXbA",
 *   { key: "guest-key-0123456789" },
 * );
 * const transport = new WebRTCClientTransport({ signaling });
 * ```
 */
export class WebSocketSignaling extends SignalingBase {
  /** Called for every message from the host, in order. */
  declare onmessage?: (message: SignalingMessage) => void;
  /** Called once when the host left, the connection dropped, or `close()` was called. */
  declare onclose?: () => void;
  /** Called for a problem that does not close the channel, or with the reason it closed. */
  declare onerror?: (error: Error) => void;
  /** The underlying room connection. */
  readonly room: SignalingRoom;
  readonly #view: Signaling;

  private constructor(room: SignalingRoom) {
    super();
    this.room = room;
    this.#view = room.signaling(HOST);
    this.#view.onmessage = (message) => this.onmessage?.(message);
    this.#view.onerror = (error) => this.onerror?.(error);
    this.#view.onclose = () => void this.close();
    room.onerror = (error) => this.onerror?.(error);
    room.onclose = (error) => error && this.onerror?.(error);
  }

  /**
   * Joins the room as a guest and waits for its host.
   *
   * @param url The room URL, `wss://…/v1/rooms/<room id>`.
   * @param options The guest key and connection options.
   * @returns The signalling to the room's host.
   * @throws {TypeError} If the URL or key is malformed.
   * @throws {SignalingRoomError} If the room refused us, could not be reached, or no host came.
   *
   * @example Connect
   * ```ts ignore
   * import { WebSocketSignaling } from "@mcp/webrtc/signaling";
   *
   * const signaling = await WebSocketSignaling.connect(
   *   "wss://signal.example/v1/rooms/Nq3RkWmvh0VrKz2Hd7yXbA",
   *   { key: "guest-key-0123456789" },
   * );
   * await signaling.close();
   * ```
   */
  static async connect(
    url: string | URL,
    options: WebSocketSignalingOptions,
  ): Promise<WebSocketSignaling> {
    const { hostTimeout = DEFAULT_HOST_TIMEOUT, onwaitforhost, ...rest } = options;
    const room = await SignalingRoom.join(url, { ...rest, role: "guest", reconnect: false });
    if (!room.peers.includes(HOST)) {
      try {
        onwaitforhost?.();
        await waitForHost(room, hostTimeout);
      } catch (error) {
        await room.close();
        throw rest.signal?.aborted ? rest.signal.reason : error;
      }
    }
    return new WebSocketSignaling(room);
  }

  /** The STUN/TURN servers the room handed out, if any: see {@linkcode SignalingRoom.iceServers}. */
  get iceServers(): IceServer[] | undefined {
    return this.room.iceServers;
  }

  /** Asks the room for STUN/TURN servers when needed: see {@linkcode SignalingRoom.requestIceServers}. */
  requestIceServers(): Promise<IceServer[] | undefined> {
    return this.room.requestIceServers();
  }

  /** See {@linkcode Signaling.meetingPoint}. */
  readonly meetingPoint = ROOM_MEETING_POINT;

  /**
   * The relay pipe to the host through the room (see the relay path in docs/API.md).
   *
   * @throws {RelayError} If the room does not relay.
   */
  relayPipe(): RelayPipe {
    return (this.#view as Signaling & { relayPipe(): RelayPipe }).relayPipe();
  }

  /**
   * Starts delivering the host's messages, including those that came before,
   * once it asked the room for ICE servers: a peer connection is about to be
   * set up, and the room mints TURN credentials only on request (they are
   * then in {@linkcode iceServers}).
   */
  override start(): Promise<void> {
    return super.start();
  }

  protected override async open(): Promise<void> {
    await this.room.requestIceServers();
    await this.#view.start?.();
  }

  /**
   * Sends one message to the host.
   *
   * @throws {WebRTCTransportError} If the connection is closed.
   * @throws {RangeError} If the message is too large for the room.
   */
  send(message: SignalingMessage): Promise<void> {
    return this.#view.send(message);
  }

  /** Leaves the room. */
  protected override async closeCarrier(): Promise<void> {
    try {
      await this.#view.close();
    } finally {
      await this.room.close();
    }
  }
}

/** The view of one remote peer: a {@linkcode Signaling} over the shared room socket. */
function waitForHost(room: SignalingRoom, timeout: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      room.onpeerjoin = room.onclose = undefined;
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => {
      done(
        new SignalingRoomError(
          "host_absent",
          `Cannot connect to the host as it did not join the room within ${timeout} ms: check that the server side is running`,
        ),
      );
    }, timeout);
    room.onpeerjoin = (peer) => peer === HOST && done();
    room.onclose = (error) =>
      done(
        error ??
          new SignalingRoomError(
            "disconnected",
            "Cannot connect to the host as the signalling room closed",
          ),
      );
  });
}
