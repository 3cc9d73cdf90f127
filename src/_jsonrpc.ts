/**
 * Validation of incoming JSON-RPC messages against the SDK's schemas, one
 * schema per message.
 *
 * @module
 */
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types";
// @ts-types="@modelcontextprotocol/sdk/types"
import {
  JSONRPCErrorResponseSchema,
  JSONRPCMessageSchema,
  JSONRPCNotificationSchema,
  JSONRPCRequestSchema,
  JSONRPCResultResponseSchema,
} from "@modelcontextprotocol/sdk/types.js";

/** The outcome of {@linkcode parseJsonRpcMessage}. */
export type ParsedMessage =
  | { success: true; data: JSONRPCMessage }
  | { success: false; error: Error };

/**
 * Validates `value` as the SDK's `JSONRPCMessageSchema` does, and returns the
 * same message; a refusal's error names what is wrong.
 *
 * The SDK's union tries its four strict object schemas in turn, and every
 * schema that fails builds its issues first: a response failed twice before it
 * was accepted. As the four are strict, the keys tell the one that can accept a
 * message (`method` and `id`: a request; `method`: a notification; `result`: a
 * result; else an error response), so that one alone is tried. Only a message
 * it refuses is tried against the union too, which keeps the two in agreement
 * by construction; the test holds them to it on random messages.
 *
 * @param value A parsed JSON value.
 * @returns The validated message, or the reason it is not one.
 */
export function parseJsonRpcMessage(value: unknown): ParsedMessage {
  const schema = schemaFor(value);
  const parsed = (schema ?? JSONRPCMessageSchema).safeParse(value);
  if (parsed.success) return { success: true, data: parsed.data as JSONRPCMessage };
  if (schema) {
    const union = JSONRPCMessageSchema.safeParse(value);
    if (union.success) return { success: true, data: union.data as JSONRPCMessage };
  }
  return { success: false, error: parsed.error };
}

function schemaFor(value: unknown) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  if ("method" in value) return "id" in value ? JSONRPCRequestSchema : JSONRPCNotificationSchema;
  if ("result" in value) return JSONRPCResultResponseSchema;
  if ("error" in value) return JSONRPCErrorResponseSchema;
  return undefined;
}
