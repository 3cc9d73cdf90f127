/** The browser example's form: fields from a tool's JSON Schema, and arguments read back. */
import assert from "node:assert/strict";
import { argumentsFrom, fieldsOf } from "../examples/browser/page/form.ts";

Deno.test("fieldsOf() gives a field per property, in order, with the kind its schema asks for", () => {
  const fields = fieldsOf({
    type: "object",
    properties: {
      name: { type: "string", description: "Who" },
      count: { type: "integer", default: 2 },
      ratio: { type: ["number", "null"] },
      loud: { type: "boolean" },
      unit: { type: "string", enum: ["c", "f"] },
      tags: { type: "array", items: { type: "string" }, default: ["a"] },
      any: {},
    },
    required: ["name", "unit"],
  });
  assert.deepEqual(fields, [
    { name: "name", kind: "text", required: true, description: "Who" },
    { name: "count", kind: "integer", required: false, initial: "2" },
    { name: "ratio", kind: "number", required: false },
    { name: "loud", kind: "boolean", required: false },
    { name: "unit", kind: "choice", required: true, choices: ["c", "f"] },
    { name: "tags", kind: "json", required: false, initial: '["a"]' },
    { name: "any", kind: "json", required: false },
  ]);
});

Deno.test("fieldsOf() gives no field for a tool without arguments or schema", () => {
  assert.deepEqual(fieldsOf({ type: "object" }), []);
  assert.deepEqual(fieldsOf(undefined), []);
});

Deno.test("argumentsFrom() converts each field and leaves out empty optional ones", () => {
  const fields = fieldsOf({
    type: "object",
    properties: {
      name: { type: "string" },
      note: { type: "string" },
      count: { type: "integer" },
      ratio: { type: "number" },
      loud: { type: "boolean" },
      tags: { type: "array" },
    },
    required: ["name"],
  });
  assert.deepEqual(
    argumentsFrom(fields, { name: " ", note: "", count: "3", ratio: "0.5", tags: '["x"]' }),
    { name: " ", count: 3, ratio: 0.5, loud: false, tags: ["x"] },
  );
});

Deno.test("argumentsFrom() refuses a missing, non-numeric or non-JSON value with the field's name", () => {
  const fields = fieldsOf({
    type: "object",
    properties: { count: { type: "integer" }, tags: { type: "array" } },
    required: ["count"],
  });
  assert.throws(() => argumentsFrom(fields, { count: " " }), {
    name: "TypeError",
    message: "Cannot call the tool as 'count' is required: fill it in",
  });
  assert.throws(
    () => argumentsFrom(fields, { count: "1.5" }),
    /'count' must be a whole number: received "1.5"/,
  );
  assert.throws(() => argumentsFrom(fields, { count: "1", tags: "[x" }), /'tags' must be JSON: /);
});
