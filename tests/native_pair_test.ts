import assert from "node:assert/strict";
import { linkPeers, type SignallingPeer } from "../bench/_native.ts";

/** A peer that throws, as node-datachannel does, when a candidate comes before the remote description. */
class FakePeer implements SignallingPeer {
  readonly added: string[] = [];
  remote?: string;
  description?: (sdp: string, type: string) => void;
  candidate?: (candidate: string, mid: string) => void;
  onLocalDescription(callback: (sdp: string, type: string) => void): void {
    this.description = callback;
  }
  onLocalCandidate(callback: (candidate: string, mid: string) => void): void {
    this.candidate = callback;
  }
  setRemoteDescription(sdp: string): void {
    this.remote = sdp;
  }
  addRemoteCandidate(candidate: string): void {
    if (this.remote === undefined) {
      throw new Error(
        "libdatachannel error while adding remote candidate: Got a remote candidate without ICE transport",
      );
    }
    this.added.push(candidate);
  }
}

Deno.test("the benchmark's native pair adds a candidate that came before its description once the description is set", () => {
  const a = new FakePeer();
  const b = new FakePeer();
  linkPeers(a, b);
  // Each callback has its own queue in node-datachannel: a candidate may be called back first.
  a.candidate!("a1", "0");
  b.candidate!("b1", "0");
  assert.deepEqual([a.added, b.added], [[], []]);
  a.description!("offer-sdp", "offer");
  assert.deepEqual(b.added, ["a1"]);
  a.candidate!("a2", "0");
  assert.deepEqual(b.added, ["a1", "a2"]);
  b.description!("answer-sdp", "answer");
  assert.deepEqual([a.remote, a.added], ["answer-sdp", ["b1"]]);
});
