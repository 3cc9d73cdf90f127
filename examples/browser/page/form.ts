/**
 * A tool's arguments from a form: the fields a tool's JSON Schema asks for,
 * and the arguments read back from what the person typed. No DOM here, so
 * it is tested in Deno; `connect.ts` renders the fields.
 *
 * @module
 */

/** What a form field holds, from the JSON Schema type of its property. */
export type FieldKind = "text" | "number" | "integer" | "boolean" | "choice" | "json";

/** One form field: a property of the tool's input schema. */
export interface Field {
  /** The property name, the argument's key. */
  name: string;
  /** How it is entered and read back. */
  kind: FieldKind;
  /** Whether the schema requires it. */
  required: boolean;
  /** The property's description, if any. */
  description?: string;
  /** The allowed values of a `choice`. */
  choices?: string[];
  /** The schema's default, shown as the initial value. */
  initial?: string;
}

/** A JSON Schema, as much of it as a form needs. */
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  description?: string;
  enum?: unknown[];
  default?: unknown;
}

function kindOf(schema: Schema): FieldKind {
  if (Array.isArray(schema.enum) && schema.enum.every((value) => typeof value === "string")) {
    return "choice";
  }
  // `["string", "null"]` and the like: the first non-null type decides.
  const type = Array.isArray(schema.type)
    ? schema.type.find((entry) => entry !== "null")
    : schema.type;
  switch (type) {
    case "string":
      return "text";
    case "number":
    case "integer":
    case "boolean":
      return type;
    default:
      return "json";
  }
}

/**
 * The fields of a tool's input schema, in the schema's order. A property of a
 * type a plain input cannot hold (object, array, a union) is a `json` field.
 *
 * @param inputSchema The tool's `inputSchema` from `tools/list`.
 * @returns One field per property; none for a tool without arguments.
 *
 * @example Fields of a greeting tool
 * ```ts
 * import { fieldsOf } from "./form.ts";
 * import assert from "node:assert/strict";
 *
 * const fields = fieldsOf({
 *   type: "object",
 *   properties: { name: { type: "string" }, times: { type: "integer" } },
 *   required: ["name"],
 * });
 * assert.deepEqual(fields.map((field) => [field.name, field.kind, field.required]), [
 *   ["name", "text", true],
 *   ["times", "integer", false],
 * ]);
 * ```
 */
export function fieldsOf(inputSchema: unknown): Field[] {
  const schema = (inputSchema ?? {}) as Schema;
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  return Object.entries(schema.properties ?? {}).map(([name, property]) => {
    const kind = kindOf(property ?? {});
    const field: Field = { name, kind, required: required.has(name) };
    if (property?.description) field.description = property.description;
    if (kind === "choice") field.choices = (property.enum as string[]).slice();
    if (property?.default !== undefined) {
      field.initial = kind === "json" || typeof property.default !== "string"
        ? JSON.stringify(property.default)
        : property.default;
    }
    return field;
  });
}

/**
 * The arguments of a call from the form's values (a checkbox's value is
 * `"on"` when checked, as the browser's `FormData` has it). Empty optional
 * fields are left out.
 *
 * @param fields The form's fields.
 * @param values What was entered, by field name.
 * @returns The tool's arguments.
 * @throws {TypeError} If a required field is empty, a number is not one, or a
 * `json` field is not JSON; the message names the field.
 *
 * @example Read a form back
 * ```ts
 * import { argumentsFrom, fieldsOf } from "./form.ts";
 * import assert from "node:assert/strict";
 *
 * const fields = fieldsOf({
 *   type: "object",
 *   properties: { name: { type: "string" }, times: { type: "integer" }, loud: { type: "boolean" } },
 *   required: ["name"],
 * });
 * assert.deepEqual(
 *   argumentsFrom(fields, { name: "Ada", times: "3", loud: "on" }),
 *   { name: "Ada", times: 3, loud: true },
 * );
 * assert.throws(() => argumentsFrom(fields, { times: "3" }), /'name' is required/);
 * ```
 */
export function argumentsFrom(
  fields: Field[],
  values: Record<string, string | undefined>,
): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.name] ?? "";
    if (field.kind === "boolean") {
      result[field.name] = raw === "on" || raw === "true";
      continue;
    }
    // A text may be only spaces; a number or JSON may not.
    const empty = field.kind === "text" ? raw === "" : raw.trim() === "";
    if (empty) {
      if (field.required) {
        throw new TypeError(`Cannot call the tool as '${field.name}' is required: fill it in`);
      }
      continue;
    }
    switch (field.kind) {
      case "number":
      case "integer": {
        const number = Number(raw);
        if (!Number.isFinite(number) || (field.kind === "integer" && !Number.isInteger(number))) {
          throw new TypeError(
            `Cannot call the tool as '${field.name}' must be ${
              field.kind === "integer" ? "a whole number" : "a number"
            }: received "${raw}"`,
          );
        }
        result[field.name] = number;
        break;
      }
      case "json":
        try {
          result[field.name] = JSON.parse(raw);
        } catch (error) {
          throw new TypeError(
            `Cannot call the tool as '${field.name}' must be JSON: ${(error as Error).message}`,
          );
        }
        break;
      default:
        result[field.name] = raw;
    }
  }
  return result;
}
