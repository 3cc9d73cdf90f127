import assert from "node:assert/strict";
import { LOOPBACK_MTU } from "./constants.ts";
import { withPathMtu } from "./_mtu.ts";

Deno.test("withPathMtu() raises the MTU of a connection bound to a loopback address", () => {
  assert.deepEqual(withPathMtu({ bindAddress: "127.0.0.1" }, [], true), {
    bindAddress: "127.0.0.1",
    mtu: LOOPBACK_MTU,
  });
  assert.equal(withPathMtu({ bindAddress: "::1" }, [], true).mtu, LOOPBACK_MTU);
});

Deno.test("withPathMtu() keeps the default MTU toward a peer not known to take large packets", () => {
  assert.deepEqual(withPathMtu({ bindAddress: "127.0.0.1" }), { bindAddress: "127.0.0.1" });
  assert.deepEqual(withPathMtu({ bindAddress: "::1" }, [], false), { bindAddress: "::1" });
});

Deno.test("withPathMtu() keeps the default MTU for any other binding", () => {
  assert.deepEqual(withPathMtu({}, [], true), {});
  assert.deepEqual(withPathMtu({ bindAddress: "192.168.1.2" }, [], true), {
    bindAddress: "192.168.1.2",
  });
  assert.deepEqual(withPathMtu({ bindAddress: "0.0.0.0" }, [], true), { bindAddress: "0.0.0.0" });
});

Deno.test("withPathMtu() keeps the MTU the user set", () => {
  assert.deepEqual(withPathMtu({ bindAddress: "127.0.0.1", mtu: 1400 }, [], true), {
    bindAddress: "127.0.0.1",
    mtu: 1400,
  });
});

Deno.test("withPathMtu() keeps the default MTU where a TURN path may be taken", () => {
  const loopback = { bindAddress: "127.0.0.1" };
  assert.equal(withPathMtu(loopback, [{ urls: "turn:127.0.0.1:3478" }], true).mtu, undefined);
  assert.equal(withPathMtu(loopback, [{ urls: ["stun:x", "turns:y"] }], true).mtu, undefined);
  const relay = { ...loopback, iceTransportPolicy: "relay" };
  assert.equal(withPathMtu(relay, [], true).mtu, undefined);
  assert.equal(withPathMtu(loopback, [{ urls: "stun:127.0.0.1:3478" }], true).mtu, LOOPBACK_MTU);
});
