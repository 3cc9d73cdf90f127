/**
 * Why a {@linkcode SignalingRoom}'s socket closed, read from its close code
 * and the room's last error frame, as the {@linkcode SignalingRoomError}
 * the room reports.
 *
 * @module
 */
import { SignalingRoomError } from "../errors.ts";
import { CLOSE } from "./room_protocol.ts";

/** Says why a socket closed, from its close code and the room's last error frame. */
export function closeError(
  code: number,
  reason: string,
  opened: boolean,
  frame?: { code: string; message: string },
): SignalingRoomError {
  const detail = frame?.message ?? reason;
  switch (code) {
    case CLOSE.key_refused:
      return new SignalingRoomError(
        "key_refused",
        `Cannot join room as the key was refused: ${detail}`,
      );
    case CLOSE.room_not_found:
      return new SignalingRoomError(
        "room_not_found",
        `Cannot join room as it does not exist: ${detail}`,
      );
    case CLOSE.room_full: // and host_replaced
      return frame?.code === "host_replaced"
        ? new SignalingRoomError(
          "host_replaced",
          `Left the room as another host took over: ${detail}`,
        )
        : new SignalingRoomError("room_full", `Cannot join room as it is full: ${detail}`);
    case CLOSE.revoked:
      return new SignalingRoomError(
        "revoked",
        `Left the room as the host revoked the invite of this key: ${detail}`,
      );
    case CLOSE.silent:
      return new SignalingRoomError(
        "connection_lost",
        `Lost the signalling room: it closed this connection as silent: ${detail}`,
      );
    case CLOSE.rate_limited: // and too_many_errors
      return new SignalingRoomError(
        "rate_limited",
        frame?.code === "too_many_errors"
          ? `Left the room as it closed us for sending frames it refuses: ${detail}`
          : `Left the room as it closed us for sending too fast: ${detail}`,
      );
  }
  if (!opened) {
    return new SignalingRoomError(
      "unreachable",
      `Cannot join room as the WebSocket handshake failed (close code ${code}): check the URL and that the signalling server is up`,
    );
  }
  return new SignalingRoomError(
    "disconnected",
    `Lost the signalling room: the connection closed with code ${code}${
      reason ? ` (${reason})` : ""
    }`,
  );
}

/** Whether a frame that did not read as a room frame says it is a welcome. */
export function claimsWelcome(data: unknown): boolean {
  try {
    return typeof data === "string" && JSON.parse(data)?.type === "welcome";
  } catch {
    return false;
  }
}
