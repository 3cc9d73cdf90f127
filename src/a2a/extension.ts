/**
 * The A2A extension that carries WebRTC signalling: its URI, its media type,
 * and how signalling messages sit in A2A messages.
 *
 * @module
 */

import type { AgentExtension, Message, Part } from "@a2a-js/sdk";
import { Role } from "@a2a-js/sdk";
import type { SignalingMessage } from "../signaling/signaling.ts";
import { utf8Length } from "../_utf8.ts";
import { encodeBase64Url } from "../_base64url.ts";
import { A2A_MAX_KEY_ID_LENGTH } from "../constants.ts";

/** Where the extension's URIs start; the version follows (`v2`). */
const EXTENSION_URI_BASE = "https://jsr.io/@mcp/webrtc/a2a/signaling/v";

/**
 * The version of the extension this module speaks. Version 2 added the
 * desktop's secret in its request's metadata and the agent's routing mark;
 * a side of version 1 cannot follow either.
 */
const EXTENSION_VERSION = 2;

/**
 * The URI of the extension: in the agent card's `capabilities.extensions`, in
 * the `A2A-Extensions` header of the requests that use it, in the
 * `extensions` of the messages that carry it, and as the key of the
 * desktop's offer in its message's `metadata`. It names the version, as A2A
 * extensions do: a side of another version sees another extension.
 */
export const A2A_SIGNALING_EXTENSION_URI = "https://jsr.io/@mcp/webrtc/a2a/signaling/v2";

/**
 * The version a URI of this extension names (`…/signaling/v1` → 1), or
 * `undefined` for any other URI.
 */
export function signalingExtensionVersion(uri: string): number | undefined {
  if (typeof uri !== "string" || !uri.startsWith(EXTENSION_URI_BASE)) return undefined;
  const version = uri.slice(EXTENSION_URI_BASE.length);
  return /^[1-9]\d{0,5}$/.test(version) ? Number(version) : undefined;
}

/**
 * Why two sides of this extension cannot signal, when they speak different
 * versions: names both, and the side to update.
 *
 * @param theirs The other side's version and URI.
 * @param mine What this side is: "agent" or "desktop".
 */
export function versionMismatch(theirs: number, mine: "agent" | "desktop"): string {
  const other = mine === "agent" ? "desktop" : "agent";
  const older = theirs < EXTENSION_VERSION ? `on the ${other}` : `on this ${mine}`;
  return `the ${other} speaks version ${theirs} of the extension (${EXTENSION_URI_BASE}${theirs}) and this ${mine} version ${EXTENSION_VERSION} (${A2A_SIGNALING_EXTENSION_URI}): update @mcp/webrtc ${older}`;
}

/**
 * The media type of a data part that holds one signalling message (an offer,
 * an answer, a candidate, a bye, or a sealed envelope).
 */
export const A2A_SIGNALING_MEDIA_TYPE = "application/vnd.mcp-webrtc.signaling+json";

/**
 * The largest signalling message accepted in one data part, in UTF-8 bytes of
 * its JSON: an SDP offer is a few KiB, a sealed one a little more; 64 KiB is
 * the signalling room's frame limit too.
 */
export const A2A_MAX_SIGNALING_MESSAGE_SIZE = 65_536;

/**
 * How many signalling messages wait, at most, for a side's signalling to
 * start (its transport to take them); more are refused. An offer or answer
 * and every candidate of a host with many interfaces fit many times over.
 */
export const A2A_MAX_PENDING_MESSAGES = 256;

/**
 * The most signalling parts one follow-up request may carry: an answer and
 * every candidate of a host with many interfaces fit.
 */
export const A2A_MAX_SIGNALING_PARTS = 64;

/**
 * What the desktop says, in its message's `metadata` under
 * {@linkcode A2A_SIGNALING_EXTENSION_URI}, when it offers the agent its MCP
 * server over WebRTC for the task this message starts.
 */
export interface A2AMcpOffer {
  /** The version of this extension: 2. */
  readonly version: 2;
  /**
   * Whether the desktop seals its signalling with `AuthenticatedSignaling`:
   * the agent must then open its signalling with the key of the same ticket.
   */
  readonly sealed: boolean;
  /**
   * Which key the desktop seals with, so that an agent paired with several
   * desktops picks the right one; not secret (a ticket's room id, say).
   */
  readonly keyId?: string;
  /**
   * Whether the desktop answers again when the agent dials again through the
   * same task (a session that outlives a lost peer connection). A desktop of
   * an earlier version leaves it out and answers only the first dial.
   */
  readonly resume?: boolean;
  /**
   * A sealed offer only: the desktop's hello, sealed by
   * `AuthenticatedSignaling.prepareHello()`. The agent gives it to its own
   * `AuthenticatedSignaling` as `peerHello`, so its offer names the desktop's
   * nonce at once instead of waiting a request for the desktop's hello. An
   * agent of an earlier version ignores it and exchanges hellos as before.
   */
  readonly hello?: SignalingMessage;
}

/** Options of {@linkcode a2aSignalingExtension}. */
export interface A2ASignalingExtensionOptions {
  /**
   * Whether clients must use the extension to talk to this agent at all.
   *
   * @default {false}
   */
  required?: boolean;
  /**
   * How this agent uses the extension, in words, for the agent card.
   *
   * @default {"Reaches the MCP server of the user's desktop over WebRTC; signalling travels in this task's messages."}
   */
  description?: string;
}

/**
 * The entry to put in the agent card's `capabilities.extensions`, announcing
 * that this agent can reach a desktop's MCP server over WebRTC.
 *
 * @param options Whether the extension is required, and its description.
 * @returns The agent card's extension entry.
 *
 * @example Announce the extension in an agent card
 * ```ts
 * import { A2A_SIGNALING_EXTENSION_URI, a2aSignalingExtension } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * const capabilities = { streaming: true, extensions: [a2aSignalingExtension()] };
 * assert.equal(capabilities.extensions[0]!.uri, A2A_SIGNALING_EXTENSION_URI);
 * ```
 */
export function a2aSignalingExtension(options: A2ASignalingExtensionOptions = {}): AgentExtension {
  return {
    uri: A2A_SIGNALING_EXTENSION_URI,
    description: options.description ??
      "Reaches the MCP server of the user's desktop over WebRTC; signalling travels in this task's messages.",
    required: options.required ?? false,
    params: { version: EXTENSION_VERSION },
  };
}

/**
 * Reads the desktop's offer from a message: `undefined` if the message does
 * not offer an MCP server over WebRTC.
 *
 * @param message The user's message (`requestContext.userMessage`).
 * @returns The offer, or `undefined`.
 * @throws {TypeError} If the message names the extension but its offer is
 * malformed.
 *
 * @example Tell whether the user's desktop offers its MCP server
 * ```ts
 * import { a2aMcpOffer } from "@mcp/webrtc/a2a";
 * import assert from "node:assert/strict";
 *
 * assert.equal(a2aMcpOffer({ metadata: undefined }), undefined);
 * ```
 */
export function a2aMcpOffer(message: Pick<Message, "metadata">): A2AMcpOffer | undefined {
  const metadata = message?.metadata;
  const value = metadata?.[A2A_SIGNALING_EXTENSION_URI] as unknown;
  const cannot = "Cannot read the MCP offer of the message as";
  if (value === undefined) {
    // An offer of another version of the extension is under that version's URI.
    const other = Object.keys(metadata ?? {}).map(signalingExtensionVersion)
      .find((version) => version !== undefined);
    if (other !== undefined) {
      throw new TypeError(
        `${cannot} it offers version ${other} of the extension: ${versionMismatch(other, "agent")}`,
      );
    }
    return undefined;
  }
  const offer = value as Record<string, unknown>;
  const version = (offer as { version?: unknown } | null)?.version;
  if (Number.isSafeInteger(version) && version !== EXTENSION_VERSION) {
    throw new TypeError(
      `${cannot} it offers version ${version} of the extension: ${
        versionMismatch(version as number, "agent")
      }`,
    );
  }
  if (
    typeof offer !== "object" || offer === null || offer.version !== EXTENSION_VERSION ||
    typeof offer.sealed !== "boolean" ||
    (offer.keyId !== undefined &&
      (typeof offer.keyId !== "string" || offer.keyId.length > A2A_MAX_KEY_ID_LENGTH)) ||
    (offer.resume !== undefined && typeof offer.resume !== "boolean") ||
    (offer.hello !== undefined &&
      (!offer.sealed || typeof offer.hello !== "object" || offer.hello === null ||
        Array.isArray(offer.hello)))
  ) {
    throw new TypeError(
      `${cannot} its metadata under ${A2A_SIGNALING_EXTENSION_URI} is not { version: ${EXTENSION_VERSION}, sealed: boolean, keyId?: string of at most A2A_MAX_KEY_ID_LENGTH (${A2A_MAX_KEY_ID_LENGTH}) characters, resume?: boolean, hello?: the desktop's sealed hello (an object, in a sealed offer only) }: the offering agent must send such an offer`,
    );
  }
  return {
    version: EXTENSION_VERSION,
    sealed: offer.sealed,
    ...(offer.keyId === undefined ? {} : { keyId: offer.keyId }),
    ...(offer.resume === undefined ? {} : { resume: offer.resume }),
    ...(offer.hello === undefined ? {} : { hello: offer.hello as SignalingMessage }),
  };
}

/** A data part holding one signalling message. */
export function signalingPart(message: SignalingMessage): Part {
  return {
    content: { $case: "data", value: message },
    mediaType: A2A_SIGNALING_MEDIA_TYPE,
    filename: "",
    metadata: undefined,
  };
}

/** Whether a part is one of this extension's signalling parts. */
export function isSignalingPart(part: Part | undefined): boolean {
  return part?.mediaType === A2A_SIGNALING_MEDIA_TYPE;
}

/**
 * Whether a message carries signalling: it has parts, all of them signalling
 * parts. A message that mixes signalling with anything else is not signalling
 * (see {@linkcode readSignalingParts} for the error).
 */
export function isSignalingMessage(message: Message | undefined): boolean {
  const parts = message?.parts ?? [];
  return parts.length > 0 && parts.every(isSignalingPart);
}

/**
 * The signalling messages of a message whose parts are all signalling parts.
 *
 * @throws {TypeError} If a part is not a signalling part, holds no JSON
 * object with a string `type`, or is too large; or there are too many.
 */
export function readSignalingParts(message: Message): SignalingMessage[] {
  const parts = message.parts ?? [];
  if (parts.length > A2A_MAX_SIGNALING_PARTS) {
    throw new TypeError(
      `Cannot read signalling as the message carries ${parts.length} parts, the limit is ${A2A_MAX_SIGNALING_PARTS}: send them in several messages`,
    );
  }
  return parts.map((part, index) => {
    if (!isSignalingPart(part)) {
      throw new TypeError(
        `Cannot read signalling as part ${index} is not of media type ${A2A_SIGNALING_MEDIA_TYPE}: signalling parts travel in messages of their own`,
      );
    }
    const content = part.content;
    const data = content?.$case === "data" ? content.value as unknown : undefined;
    if (
      typeof data !== "object" || data === null || Array.isArray(data) ||
      typeof (data as SignalingMessage).type !== "string"
    ) {
      throw new TypeError(
        `Cannot read signalling as part ${index} is not a data part holding a JSON object with a string 'type'`,
      );
    }
    const size = utf8Length(JSON.stringify(data));
    if (size > A2A_MAX_SIGNALING_MESSAGE_SIZE) {
      throw new TypeError(
        `Cannot read signalling as part ${index} is too large: ${size} bytes of JSON, the limit is ${A2A_MAX_SIGNALING_MESSAGE_SIZE}`,
      );
    }
    return data as SignalingMessage;
  });
}

/** A message of the given role carrying signalling parts in a task's context. */
export function signalingMessage(
  role: "agent" | "user",
  messages: readonly SignalingMessage[],
  ids: { contextId: string; taskId?: string; referenceTaskIds?: string[] },
  metadata?: Record<string, unknown>,
): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: ids.contextId,
    taskId: ids.taskId ?? "",
    role: role === "agent" ? Role.ROLE_AGENT : Role.ROLE_USER,
    parts: messages.map(signalingPart),
    metadata,
    extensions: [A2A_SIGNALING_EXTENSION_URI],
    referenceTaskIds: ids.referenceTaskIds ?? [],
  };
}

/**
 * Where the desktop's signalling secret travels: in the `metadata` of the
 * request (never of the message, which the task keeps), under
 * {@linkcode A2A_SIGNALING_EXTENSION_URI}, as `{ secret }`.
 */
export interface A2ASignalingSecret {
  /** 32 random bytes, base64url: only the desktop's own requests carry it. */
  readonly secret: string;
  /**
   * Which of the agent's dials a reply answers (the `dial` of the agent's
   * messages it answers); a desktop of an earlier version leaves it out, which
   * means the first.
   */
  readonly dial?: number;
}

/** A fresh signalling secret: 32 random bytes, base64url. */
export function newSignalingSecret(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** The signalling secret in a request's `metadata`, or `undefined`. */
export function signalingSecretOf(
  metadata: Record<string, unknown> | undefined,
): string | undefined {
  const value = metadata?.[A2A_SIGNALING_EXTENSION_URI] as Partial<A2ASignalingSecret> | undefined;
  const secret = value?.secret;
  return typeof secret === "string" && /^[\w-]{43}$/.test(secret) ? secret : undefined;
}

/**
 * The dial a desktop's reply answers, from its request's `metadata`: 1 when
 * not said (a desktop of an earlier version), `undefined` when not a positive
 * integer.
 */
export function signalingDialOf(metadata: Record<string, unknown> | undefined): number | undefined {
  const value = metadata?.[A2A_SIGNALING_EXTENSION_URI] as Partial<A2ASignalingSecret> | undefined;
  return dialNumber(value?.dial);
}

/** `dial` as a dial number: 1 when undefined, `undefined` when not a positive safe integer. */
function dialNumber(dial: unknown): number | undefined {
  if (dial === undefined) return 1;
  return Number.isSafeInteger(dial) && (dial as number) >= 1 ? dial as number : undefined;
}

/** The request metadata without the signalling secret. */
export function withoutSignalingSecret(
  metadata: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (metadata?.[A2A_SIGNALING_EXTENSION_URI] === undefined) return metadata;
  const { [A2A_SIGNALING_EXTENSION_URI]: _secret, ...rest } = metadata;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** Whether two secrets are equal, in time that does not depend on where they differ. */
export function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/**
 * What the agent says, in the `metadata` of each signalling message it sends
 * under {@linkcode A2A_SIGNALING_EXTENSION_URI}: that it routes the desktop's
 * replies past its executor. A desktop refuses signalling without it.
 */
export const A2A_ROUTED_MARK: Readonly<{ routed: true }> = Object.freeze({ routed: true });

/** Whether an agent's signalling message carries {@linkcode A2A_ROUTED_MARK}. */
export function isRoutedSignaling(message: Message | undefined): boolean {
  const mark = message?.metadata?.[A2A_SIGNALING_EXTENSION_URI] as { routed?: unknown } | undefined;
  return mark?.routed === true;
}

/**
 * Which of the agent's dials its signalling message belongs to: the `dial`
 * beside the routing mark, 1 when not said (an agent of an earlier version,
 * which dials once), `undefined` when not a positive integer.
 */
export function agentDialOf(message: Message | undefined): number | undefined {
  const mark = message?.metadata?.[A2A_SIGNALING_EXTENSION_URI] as { dial?: unknown } | undefined;
  return dialNumber(mark?.dial);
}

/**
 * Checks that `key` is a signalling key: an HMAC-SHA-256 `CryptoKey` of at
 * least 256 bits with usages sign and verify.
 *
 * @throws {TypeError} If it is not (undefined, null, a promise, another key).
 */
export function checkSignalingKey(key: unknown, action: string): CryptoKey {
  const candidate = key as CryptoKey | undefined;
  const algorithm = candidate?.algorithm as HmacKeyAlgorithm | undefined;
  if (
    typeof candidate !== "object" || candidate === null || algorithm?.name !== "HMAC" ||
    algorithm.hash?.name !== "SHA-256" || !(algorithm.length >= 256) ||
    !Array.isArray(candidate.usages) || !candidate.usages.includes("sign") ||
    !candidate.usages.includes("verify")
  ) {
    const what = key === null
      ? "null"
      : typeof (key as Promise<unknown>)?.then === "function"
      ? "a promise (await deriveTicketKeys() first)"
      : key === undefined
      ? "undefined"
      : typeof key === "object"
      ? "not an HMAC-SHA-256 key of 256 bits with usages sign and verify"
      : `a ${typeof key}`;
    throw new TypeError(
      `Cannot ${action} as 'key' is ${what}: pass (await deriveTicketKeys(ticket)).signalingKey, or say { sealed: false } to go unsealed`,
    );
  }
  return candidate;
}
