import assert from "node:assert/strict";
import { Candidates, MAX_QUEUED_CANDIDATES } from "./candidates.ts";
import { splitCandidates, withCandidates } from "./sdp.ts";
import type { IceCandidateInit } from "./types.ts";

function candidate(n: number): IceCandidateInit {
  return { candidate: `candidate:${n} 1 UDP 1 127.0.0.1 ${5000 + n} typ host`, sdpMid: "0" };
}

/** A description's session lines and its first media line. */
const HEAD = [
  "v=0",
  "o=- 1 1 IN IP4 0.0.0.0",
  "s=-",
  "t=0 0",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
];

function recorder() {
  const events: string[] = [];
  const candidates = new Candidates({
    send: (c) => events.push(`sent ${c.candidate.split(" ")[0]}`),
    apply: (c) => {
      events.push(`applied ${c.candidate.split(" ")[0]}`);
      return Promise.resolve();
    },
  });
  return { events, candidates };
}

Deno.test("Candidates never sends a local candidate before the description, even when released first", () => {
  const { events, candidates } = recorder();
  candidates.local(candidate(1));
  // ICE connected while the answer was being made: the policy releases early.
  candidates.release();
  candidates.local(candidate(2));
  assert.deepEqual(events, [] as string[]);
  events.push("description");
  candidates.descriptionSent();
  candidates.local(candidate(3));
  assert.deepEqual(events, [
    "description",
    "sent candidate:1",
    "sent candidate:2",
    "sent candidate:3",
  ]);
});

Deno.test("Candidates holds local candidates after the description until the policy releases them", () => {
  const { events, candidates } = recorder();
  candidates.descriptionSent();
  candidates.local(candidate(1));
  assert.deepEqual(events, []);
  candidates.release();
  assert.deepEqual(events, ["sent candidate:1"]);
});

Deno.test("Candidates applies remote candidates only after the remote description, in order", async () => {
  const { events, candidates } = recorder();
  await candidates.remote(candidate(1));
  await candidates.remote(candidate(2));
  assert.deepEqual(events, []);
  assert.equal(await candidates.remoteDescriptionApplied(), 2);
  await candidates.remote(candidate(3));
  assert.deepEqual(events, ["applied candidate:1", "applied candidate:2", "applied candidate:3"]);
});

Deno.test("Candidates refuses remote candidates beyond its queue while the description is awaited", async () => {
  const { candidates } = recorder();
  for (let n = 0; n < MAX_QUEUED_CANDIDATES; n++) await candidates.remote(candidate(n));
  assert.throws(() => candidates.remote(candidate(99)), RangeError);
});

Deno.test("Candidates sends nothing once closed", () => {
  const { events, candidates } = recorder();
  candidates.local(candidate(1));
  candidates.close();
  candidates.descriptionSent();
  candidates.release();
  candidates.local(candidate(2));
  assert.deepEqual(events, []);
});

Deno.test("splitCandidates takes a description's candidates out, each with its section's mid and index", () => {
  const sdp = [
    ...HEAD,
    "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host",
    "a=end-of-candidates",
    "a=mid:0",
    "a=sctp-port:5000",
    "",
  ].join("\r\n");
  const { sdp: bare, candidates } = splitCandidates(sdp);
  assert.deepEqual(candidates, [{
    candidate: "candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host",
    sdpMid: "0",
    sdpMLineIndex: 0,
  }]);
  assert.doesNotMatch(bare, /candidate/);
  assert.match(bare, /^a=mid:0\r\na=sctp-port:5000\r\n$/m);
});

Deno.test("withCandidates puts candidates at the end of their sections, and splitCandidates takes the same ones out", () => {
  const sdp = [
    ...HEAD,
    "a=mid:0",
    "a=sctp-port:5000",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=mid:1",
    "",
  ].join("\r\n");
  const first = candidate(1);
  // As node-datachannel gives them: the attribute line, `a=` included.
  // A mid no section has: placed by its index.
  const second = {
    candidate: `a=${candidate(2).candidate}`,
    sdpMid: "9",
    sdpMLineIndex: 1,
  };
  const described = withCandidates(sdp, [first, second]);
  assert.equal(
    described,
    sdp.replace("a=sctp-port:5000\r\n", `a=sctp-port:5000\r\na=${first.candidate}\r\n`) +
      `a=${candidate(2).candidate}\r\n`,
  );
  assert.deepEqual(splitCandidates(described), {
    sdp,
    candidates: [
      { candidate: first.candidate, sdpMid: "0", sdpMLineIndex: 0 },
      { candidate: candidate(2).candidate, sdpMid: "1", sdpMLineIndex: 1 },
    ],
  });
  assert.equal(withCandidates(sdp, []), sdp);
  // By mid where no index is given; once, however often it is given.
  const byMid = { ...candidate(3), sdpMid: "1", sdpMLineIndex: null };
  assert.equal(
    withCandidates(described, [byMid, byMid, first]),
    described + `a=${candidate(3).candidate}\r\n`,
  );
});

Deno.test("Candidates hands its held candidates over to the description once, and none after it was sent", () => {
  const { events, candidates } = recorder();
  candidates.local(candidate(1));
  candidates.local(candidate(2));
  assert.deepEqual(candidates.takeHeld().map((c) => c.candidate), [
    candidate(1).candidate,
    candidate(2).candidate,
  ]);
  assert.deepEqual(candidates.takeHeld(), []);
  candidates.local(candidate(3));
  candidates.descriptionSent();
  candidates.release();
  assert.deepEqual(candidates.takeHeld(), []);
  assert.deepEqual(events, ["sent candidate:3"]);
});

Deno.test("Candidates applies a description's own candidates before those queued for it", async () => {
  const { events, candidates } = recorder();
  await candidates.remote(candidate(2));
  assert.equal(await candidates.remoteDescriptionApplied([candidate(1)]), 2);
  assert.deepEqual(events, ["applied candidate:1", "applied candidate:2"]);
});
