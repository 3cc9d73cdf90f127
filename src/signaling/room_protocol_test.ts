import assert from "node:assert/strict";
import {
  checkFrame,
  CLOSE,
  errorFrame,
  ERRORS,
  FINAL,
  inviteFrame,
  joinProtocols,
  keyVerifier,
  MAX_FRAME_BYTES,
  readRoomFrame,
  revokeFrame,
  roomIdOf,
  roomUrl,
  signalFrame,
  verifyKey,
} from "./room_protocol.ts";

const ROOM = "Nq3RkWmvh0VrKz2Hd7yXbA";

Deno.test("roomIdOf() reads only the canonical path: no escapes, no extra segments or slashes", () => {
  const base = "http://signal.test";
  assert.equal(roomIdOf(`${base}/v1/rooms/${ROOM}`), ROOM);
  assert.equal(roomIdOf(`${base}/v1/rooms/${ROOM}?role=host`), ROOM);
  for (
    const path of [
      `/v1/rooms/%4E${ROOM.slice(1)}`,
      `/v1/rooms/${ROOM.slice(0, -1)}%41`,
      `/v1/rooms/${ROOM}/`,
      `/v1/rooms//${ROOM}`,
      `/v1/%72ooms/${ROOM}`,
      `/v1/rooms/${ROOM}/extra`,
      `/v1/rooms/${ROOM.slice(0, 21)}`,
      `/v1/rooms/${"a".repeat(129)}`,
      `/v1/rooms/${ROOM.slice(0, 21)}+`,
    ]
  ) {
    assert.equal(roomIdOf(`${base}${path}`), undefined, path);
  }
});

Deno.test("roomUrl() and roomIdOf() agree, whatever the service URL's path", () => {
  for (const url of ["wss://signal.test", "wss://signal.test/", "wss://signal.test/base/"]) {
    const room = roomUrl({ url, room: ROOM });
    assert.equal(roomIdOf(room.replace(/\/base/, "")), ROOM, room);
  }
});

Deno.test("joinProtocols() offers the protocol, the key and a host's verifier, in that order", async () => {
  const verifier = await keyVerifier("guest-key-0123456789");
  assert.deepEqual(joinProtocols("host-key-0123456789", verifier), [
    "mcp-webrtc.v1",
    "mcp-webrtc.key.host-key-0123456789",
    `mcp-webrtc.guest-verifier.${verifier}`,
  ]);
});

Deno.test("verifyKey() accepts only the key a verifier was made from", async () => {
  const verifier = await keyVerifier("key-0123456789abcdef");
  assert.equal(await verifyKey("key-0123456789abcdef", verifier), true);
  assert.equal(await verifyKey("key-0123456789abcdeg", verifier), false);
  assert.equal(await verifyKey("key-0123456789abcdef", "not base64url!"), false);
  assert.equal(await verifyKey("key-0123456789abcdef", verifier.slice(0, -1)), false);
});

Deno.test("every closing error maps to 4000 + its HTTP status, and only refusals are final", () => {
  assert.deepEqual(CLOSE, {
    key_refused: 4403,
    room_not_found: 4404,
    room_full: 4409,
    host_replaced: 4409,
    rate_limited: 4429,
    too_many_errors: 4429,
    silent: 4408,
    revoked: 4410,
    unread_limit: 4413,
  });
  assert.deepEqual([...FINAL].sort(), [
    "host_replaced",
    "key_refused",
    "revoked",
    "room_full",
    "room_not_found",
  ]);
  for (const code of Object.keys(CLOSE)) assert.ok(code in ERRORS, code);
});

Deno.test("every error frame the room writes reads back whole, with a sentence saying what to do", () => {
  for (const code of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) {
    const frame = readRoomFrame(errorFrame(code, 7));
    assert.deepEqual(frame, { type: "error", code, message: ERRORS[code], ref: 7 });
    assert.match(ERRORS[code], /^[A-Z].*[^.]$/);
  }
});

Deno.test("readRoomFrame() refuses malformed frames instead of passing them on", () => {
  const bad = [
    "pong",
    "not json",
    "[]",
    '{"type":"welcome","peer":"host","role":"host"}',
    '{"type":"welcome","peer":"host","role":"admin","peers":[]}',
    '{"type":"welcome","peer":"host","role":"host","peers":[1]}',
    '{"type":"welcome","peer":"host","role":"host","peers":[],"iceServers":[{"urls":1}]}',
    '{"type":"ice_servers","iceServers":{"urls":"turn:x"}}',
    '{"type":"join"}',
    '{"type":"leave","peer":7}',
    '{"type":"signal","from":"host","data":"sdp"}',
    '{"type":"signal","data":{}}',
    '{"type":"error","code":"bad_json"}',
    '{"type":"hello"}',
  ];
  for (const text of bad) assert.equal(readRoomFrame(text), undefined, text);
  assert.deepEqual(
    readRoomFrame(
      '{"type":"welcome","peer":"host","role":"host","peers":[],"iceServers":[{"urls":["turn:t"],"username":"u","credential":"c"}]}',
    ),
    {
      type: "welcome",
      peer: "host",
      role: "host",
      peers: [],
      iceServers: [{ urls: ["turn:t"], username: "u", credential: "c" }],
    },
  );
});

Deno.test("a frame the client writes is one the room accepts, up to the frame limit", () => {
  const frame = signalFrame("host", { type: "offer", sdp: "v=0" }, 3);
  assert.deepEqual(checkFrame(frame, "guest"), {
    to: "host",
    data: { type: "offer", sdp: "v=0" },
    ref: 3,
  });
  const overhead = signalFrame("host", { type: "x", pad: "" }, 3).length;
  const largest = signalFrame("host", {
    type: "x",
    pad: "é".repeat((MAX_FRAME_BYTES - overhead) / 2),
  }, 3);
  assert.ok(!("code" in checkFrame(largest, "guest")));
  const over = signalFrame("host", {
    type: "x",
    pad: "é".repeat((MAX_FRAME_BYTES - overhead) / 2 + 1),
  }, 3);
  assert.deepEqual(checkFrame(over, "guest"), { code: "frame_too_large" });
});

Deno.test("checkFrame() takes invite and revoke frames from the host only, checking name and verifier", () => {
  const verifier = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
  assert.deepEqual(checkFrame(inviteFrame("alice.b_c-1", verifier, 1), "host"), {
    type: "invite",
    name: "alice.b_c-1",
    verifier,
    ref: 1,
  });
  assert.deepEqual(checkFrame(revokeFrame("alice"), "host"), { type: "revoke", name: "alice" });
  assert.deepEqual(checkFrame(inviteFrame("alice", verifier, 2), "guest"), {
    code: "host_only",
    ref: 2,
  });
  assert.deepEqual(checkFrame(revokeFrame("alice"), "guest"), { code: "host_only" });
  for (const name of ["", "a b", "x".repeat(65), "é", "a/b"]) {
    assert.deepEqual(checkFrame(inviteFrame(name, verifier), "host"), { code: "bad_invite_name" });
  }
  assert.deepEqual(checkFrame(inviteFrame("alice", "short"), "host"), { code: "bad_verifier" });
});

Deno.test("readRoomFrame() reads the answers to invite and revoke, and the invite of a join", () => {
  assert.deepEqual(readRoomFrame('{"type":"invited","name":"alice","ref":3}'), {
    type: "invited",
    name: "alice",
    ref: 3,
  });
  assert.deepEqual(readRoomFrame('{"type":"revoked","name":"alice","closed":2}'), {
    type: "revoked",
    name: "alice",
    closed: 2,
  });
  assert.equal(readRoomFrame('{"type":"revoked","name":"alice","closed":-1}'), undefined);
  assert.equal(readRoomFrame('{"type":"invited"}'), undefined);
  assert.deepEqual(readRoomFrame('{"type":"join","peer":"0123456789abcdef","invite":"alice"}'), {
    type: "join",
    peer: "0123456789abcdef",
    invite: "alice",
  });
  const welcome = readRoomFrame(
    '{"type":"welcome","peer":"host","role":"host","peers":["0123456789abcdef"],"peerInvites":{"0123456789abcdef":"alice"}}',
  );
  assert.deepEqual(welcome, {
    type: "welcome",
    peer: "host",
    role: "host",
    peers: ["0123456789abcdef"],
    peerInvites: { "0123456789abcdef": "alice" },
  });
});

Deno.test("The waiting hello's frames: the host's request (for its own invite or a named one), the welcome's flag and the join's mark are read, a guest's request refused", () => {
  assert.deepEqual(checkFrame('{"type":"waiting_hello","data":{"type":"sealed"}}', "host"), {
    type: "waiting_hello",
    data: { type: "sealed" },
    invite: "guest",
  });
  assert.deepEqual(
    checkFrame('{"type":"waiting_hello","data":{},"invite":"ci","id":"x"}', "host"),
    { type: "waiting_hello", data: {}, invite: "ci", ref: "x" },
  );
  assert.deepEqual(
    checkFrame('{"type":"waiting_hello","data":{},"invite":"no spaces","id":4}', "host"),
    { code: "bad_invite_name", ref: 4 },
  );
  assert.deepEqual(checkFrame('{"type":"waiting_hello","data":{},"invite":7}', "host"), {
    code: "bad_invite_name",
  });
  assert.deepEqual(checkFrame('{"type":"waiting_hello","data":{},"id":3}', "guest"), {
    code: "host_only",
    ref: 3,
  });
  assert.deepEqual(checkFrame('{"type":"waiting_hello","data":"x"}', "host"), { code: "bad_data" });
  assert.deepEqual(readRoomFrame('{"type":"join","peer":"0123456789abcdef","hello":true}'), {
    type: "join",
    peer: "0123456789abcdef",
    hello: true,
  });
  assert.deepEqual(readRoomFrame('{"type":"join","peer":"0123456789abcdef","hello":1}'), {
    type: "join",
    peer: "0123456789abcdef",
  });
  assert.deepEqual(
    readRoomFrame('{"type":"welcome","peer":"host","role":"host","peers":[],"hellos":true}'),
    {
      type: "welcome",
      peer: "host",
      role: "host",
      peers: [],
      hellos: true,
    },
  );
});
