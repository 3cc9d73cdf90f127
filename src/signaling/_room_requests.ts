/**
 * The host's invite and revoke requests of a {@linkcode SignalingRoom}: each
 * is a frame with an id, settled by the room's answer that names that id,
 * or failed when the answer is late or the connection that carried it ended.
 *
 * @module
 */
import { SignalingRoomError } from "../errors.ts";
import type { WebSocketLike } from "../runtime.ts";
import { INVITE_NAME, type RoomFrame } from "./room_protocol.ts";

/** The room's answer to an invite or revoke request. */
export type RoomAnswer = Extract<RoomFrame, { type: "invited" | "revoked" }>;

/** An invite or revoke request waiting for the room's answer. */
interface RoomRequest {
  what: "invite" | "revoke";
  name: string;
  settle: (answer: RoomAnswer | SignalingRoomError) => void;
}

/** One request to send: what it is, on which connection, with which frame. */
export interface RoomRequestOptions {
  readonly what: "invite" | "revoke";
  readonly name: string;
  /** The role this connection joined with: only the host may send requests. */
  readonly role: "host" | "guest";
  /** The welcomed connection, or `undefined` while the room is disconnected. */
  readonly socket: WebSocketLike | undefined;
  /** Gives the request's frame id (shared with the room's other frames). */
  readonly nextId: () => number;
  /** The request's frame, for its id. */
  readonly frame: (id: number) => string;
  /** How long the room has to answer, in ms. */
  readonly timeout: number;
}

/** A name as it may be shown in an error: at most 64 characters, control characters escaped. */
export function escapeName(name: unknown): string {
  return JSON.stringify(String(name).slice(0, 64)).slice(1, -1);
}

/** The host's requests waiting for the room's answer, by frame id. */
export class RoomRequests {
  readonly #pending = new Map<number, RoomRequest>();

  /** Sends the host's invite or revoke frame, and settles on the room's answer to it. */
  send(options: RoomRequestOptions): Promise<RoomAnswer> {
    const { what, name, role, socket, nextId, frame, timeout } = options;
    if (role !== "host") {
      return Promise.reject(
        new TypeError(`Cannot ${what} as a guest: only the room's host manages its invites`),
      );
    }
    if (typeof name !== "string" || !INVITE_NAME.test(name)) {
      return Promise.reject(
        new TypeError(
          `Cannot ${what} "${
            escapeName(name)
          }" as an invite's name must be 1 to 64 letters, digits, ".", "_" or "-"`,
        ),
      );
    }
    if (!socket) {
      return Promise.reject(
        new SignalingRoomError(
          "disconnected",
          `Cannot ${what} "${name}" as the signalling room is disconnected: try again once it reconnected`,
        ),
      );
    }
    const id = nextId();
    return new Promise<RoomAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new SignalingRoomError(
            "timeout",
            `Cannot ${what} "${name}" as the signalling room did not answer in time: try again`,
          ),
        );
      }, timeout);
      this.#pending.set(id, {
        what,
        name,
        settle: (answer) => {
          clearTimeout(timer);
          this.#pending.delete(id);
          if (answer instanceof Error) reject(answer);
          else resolve(answer);
        },
      });
      socket.send(frame(id));
    });
  }

  /**
   * Settles the request a frame answers (`invited`, `revoked`, or an error
   * naming its id); `false` if the frame answers none.
   */
  answer(frame: RoomFrame): boolean {
    if (frame.type !== "invited" && frame.type !== "revoked" && frame.type !== "error") {
      return false;
    }
    const request = this.#pending.get(frame.ref as number);
    if (!request) return false;
    if (frame.type === "error") {
      request.settle(
        new SignalingRoomError(
          "frame_refused",
          `Cannot ${request.what} "${request.name}" as the signalling room refused: ${frame.message} (${frame.code})`,
        ),
      );
    } else {
      request.settle(frame);
    }
    return true;
  }

  /** Fails every request still waiting: the connection that carried it ended. */
  fail(error: SignalingRoomError): void {
    for (const request of [...this.#pending.values()]) {
      request.settle(
        new SignalingRoomError(
          error.code,
          `Cannot ${request.what} "${request.name}" as the connection to the signalling room ended before it answered: ${error.message}`,
          { cause: error },
        ),
      );
    }
  }
}
