import assert from "node:assert/strict";
import { transportOptions } from "./args.ts";
import { UsageError } from "../errors.ts";

Deno.test("--mtu sets the MTU of the peer connections", () => {
  assert.deepEqual(transportOptions({ "bind-address": "10.0.0.2", mtu: "1400" }).rtcConfiguration, {
    bindAddress: "10.0.0.2",
    mtu: 1400,
  });
});

Deno.test("--mtu out of range or not a number is refused with the range", () => {
  for (const mtu of ["4156", "100", "1.5e3", "big", ""]) {
    assert.throws(
      () => transportOptions({ mtu }),
      (error: unknown) => error instanceof UsageError && /from 576 to 4155/.test(error.message),
    );
  }
});
