/**
 * An MCP transport over any data channel, and the wire format it speaks:
 * {@linkcode DataChannelTransport} runs MCP over an open `RTCDataChannel`
 * (or anything shaped like one), framing large messages into chunks and
 * keeping the channel alive; the encoder and decoder of those frames are
 * here for other implementations.
 *
 * @example Frame a message that does not fit one frame
 * ```ts
 * import { encodeFrames, FRAME_LAST, FRAME_MORE } from "@mcp/webrtc/framing";
 * import assert from "node:assert/strict";
 *
 * const frames = [...encodeFrames('{"jsonrpc":"2.0","method":"ping"}', 16)] as Uint8Array[];
 * assert.equal(frames[0][0], FRAME_MORE);
 * assert.equal(frames.at(-1)![0], FRAME_LAST);
 * ```
 *
 * @module
 */
export {
  type DataChannelLike,
  DataChannelTransport,
  type DataChannelTransportOptions,
} from "./data_channel_transport.ts";
export {
  type DecodedFrame,
  encodeFrames,
  fitsOneFrame,
  FRAME_KEEPALIVE,
  FRAME_LAST,
  FRAME_MORE,
  FrameDecoder,
  type FrameDecoderOptions,
  MemoryBudget,
  oneTextFrame,
  type RefusedEnvelope,
} from "./framing.ts";
export { DEFAULT_CHANNEL_OPEN_TIMEOUT } from "./constants.ts";
