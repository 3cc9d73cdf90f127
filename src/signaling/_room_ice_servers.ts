/**
 * The STUN/TURN servers a {@linkcode SignalingRoom} holds: those of its
 * welcome, or those it asked the room for (the room mints TURN credentials
 * only on request), kept while they are fresh and dropped when they expire.
 *
 * @module
 */
import { ROOM_TIMEOUT } from "../constants.ts";
import { SignalingRoomError } from "../errors.ts";
import type { IceServer } from "../peer.ts";
import type { WebSocketLike } from "../runtime.ts";
import { iceServersRequest } from "./room_protocol.ts";

/** One request to the room for ICE servers. */
export interface IceServersRequestOptions {
  /** The welcomed connection, or `undefined` while the room is disconnected. */
  readonly socket: WebSocketLike | undefined;
  /** Gives the request's frame id (shared with the room's other frames). */
  readonly nextId: () => number;
  /** How long the room has to answer, in ms. @default {ROOM_TIMEOUT} */
  readonly timeout?: number;
  /** Told when the room did not answer in time. */
  readonly onerror: (error: Error) => void;
}

/** The ICE servers one room connection holds, and the request for them in flight. */
export class RoomIceServers {
  readonly #now: () => number;
  #servers?: IceServer[];
  /** Whether the room hands out ICE servers on request (its welcome said `ice`). */
  #onRequest = false;
  /** Until when the ICE servers we hold are worth using for a new connection (ms since the epoch). */
  #freshUntil = 0;
  /** Until when they are valid at all. */
  #expires = 0;
  /** The request for ICE servers in flight, if any. */
  #asked?: {
    id: number;
    settle: (servers?: IceServer[]) => void;
    promise: Promise<IceServer[] | undefined>;
  };

  /** @param now The time in ms since the epoch, read at each use. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** The servers the room handed out last, if any. */
  get servers(): IceServer[] | undefined {
    return this.#servers;
  }

  /** Takes what the room's welcome says: servers it renews itself, or `ice` (on request). */
  welcomed(frame: { iceServers?: IceServer[]; ice?: boolean }): void {
    // A room that still hands them out in the welcome renews them itself.
    if (frame.iceServers) {
      this.#servers = frame.iceServers;
      this.#freshUntil = this.#expires = Infinity;
    }
    this.#onRequest = frame.ice === true;
  }

  /** Takes the room's `ice_servers` frame, and settles the request in flight with it. */
  received(frame: { iceServers: IceServer[]; ttl?: number }): void {
    const now = this.#now();
    this.#servers = frame.iceServers.length > 0 ? frame.iceServers : undefined;
    this.#freshUntil = frame.ttl === undefined ? Infinity : now + (frame.ttl * 1000) / 2;
    this.#expires = frame.ttl === undefined ? Infinity : now + frame.ttl * 1000;
    this.#asked?.settle(this.#servers);
  }

  /** Whether the frame id is that of the request in flight. */
  asked(ref: unknown): boolean {
    return this.#asked !== undefined && ref === this.#asked.id;
  }

  /** Settles the request in flight, if any, with the valid servers held. */
  settle(): void {
    this.#asked?.settle();
  }

  /** See `SignalingRoom.requestIceServers()`. */
  request(options: IceServersRequestOptions): Promise<IceServer[] | undefined> {
    const { socket, nextId, timeout = ROOM_TIMEOUT, onerror } = options;
    if (!this.#onRequest || this.#now() < this.#freshUntil || !socket) {
      return Promise.resolve(this.#valid());
    }
    if (this.#asked) return this.#asked.promise;
    const id = nextId();
    let settle!: (servers?: IceServer[]) => void;
    const promise = new Promise<IceServer[] | undefined>((resolve) => {
      const timer = setTimeout(() => {
        onerror(
          new SignalingRoomError(
            "timeout",
            "Cannot get ICE servers from the signalling room as it did not answer in time: connecting without its TURN servers",
          ),
        );
        settle();
      }, timeout);
      settle = (servers) => {
        clearTimeout(timer);
        if (this.#asked?.id === id) this.#asked = undefined;
        resolve(servers ?? this.#valid());
      };
    });
    this.#asked = { id, settle, promise };
    socket.send(iceServersRequest(id));
    return promise;
  }

  /** The ICE servers held, unless they expired. */
  #valid(): IceServer[] | undefined {
    return this.#now() < this.#expires ? this.#servers : undefined;
  }
}
