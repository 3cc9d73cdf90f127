import assert from "node:assert/strict";
// @ts-types="@modelcontextprotocol/sdk/types"
import { JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import { parseJsonRpcMessage } from "./_jsonrpc.ts";
import { prng } from "./_test_prng.ts";

/** Values a field of a JSON-RPC message may hold, good and bad. */
const VALUES: unknown[] = [
  undefined,
  null,
  0,
  7,
  -1,
  1.5,
  "x",
  "",
  true,
  [],
  [1],
  {},
  { a: 1 },
  { code: -32000, message: "m" },
  { code: 1.5, message: "m" },
  { code: 1, message: 2 },
  { code: 1, message: "m", data: [1] },
  { code: 1, message: "m", extra: 1 },
  { _meta: { progressToken: 1 } },
  { _meta: "bad" },
  { name: "echo", arguments: { text: "hi" } },
  { content: [{ type: "text", text: "hi" }] },
];
const KEYS = ["jsonrpc", "id", "method", "params", "result", "error", "extra"];

function randomMessage(random: () => number): unknown {
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)];
  const shape = pick(["request", "notification", "result", "error", "any"] as const);
  const message: Record<string, unknown> = { jsonrpc: random() < 0.9 ? "2.0" : pick(VALUES) };
  const wanted: readonly string[] = {
    request: ["id", "method", "params"],
    notification: ["method", "params"],
    result: ["id", "result"],
    error: ["id", "error"],
    any: KEYS,
  }[shape];
  for (const key of wanted) if (random() < 0.8) message[key] = pick(VALUES);
  if (shape !== "any" && "method" in message && random() < 0.7) message.method = "tools/call";
  // Now and then a key the shape does not have, or none of the envelope.
  if (random() < 0.15) message[pick(KEYS)] = pick(VALUES);
  if (random() < 0.05) delete message.jsonrpc;
  return random() < 0.02 ? pick(VALUES) : message;
}

Deno.test("parseJsonRpcMessage accepts exactly what the SDK's JSONRPCMessageSchema accepts", () => {
  const random = prng(20261201);
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const message = randomMessage(random);
    const expected = JSONRPCMessageSchema.safeParse(message);
    const actual = parseJsonRpcMessage(message);
    assert.equal(actual.success, expected.success, `for ${JSON.stringify(message)}`);
    if (expected.success && actual.success) {
      assert.deepEqual(actual.data, expected.data, `for ${JSON.stringify(message)}`);
      accepted++;
    }
  }
  // Both outcomes are well represented.
  assert.ok(accepted > 1_000 && accepted < 19_000, `accepted ${accepted} of 20000`);
});

Deno.test("parseJsonRpcMessage names what is wrong with a message it refuses", () => {
  const result = parseJsonRpcMessage({ jsonrpc: "2.0", id: 1, result: {}, method: "x" });
  assert.equal(result.success, false);
  assert.match(String(result.error), /method|unrecognized/i);
  const notObject = parseJsonRpcMessage([1, 2]);
  assert.equal(notObject.success, false);
});
