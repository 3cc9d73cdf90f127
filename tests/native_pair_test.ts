import assert from "node:assert/strict";
import nodeDataChannel from "node-datachannel";
import { linkPeers, type SignallingPeer } from "../bench/_native.ts";

/**
 * A peer that throws as node-datachannel does: a candidate before the remote
 * description, or once the connection closed (its ICE transport is gone while
 * the remote description stays).
 */
class FakePeer implements SignallingPeer {
  readonly added: string[] = [];
  remote?: string;
  closed = false;
  description?: (sdp: string, type: string) => void;
  candidate?: (candidate: string, mid: string) => void;
  onLocalDescription(callback: (sdp: string, type: string) => void): void {
    this.description = callback;
  }
  onLocalCandidate(callback: (candidate: string, mid: string) => void): void {
    this.candidate = callback;
  }
  setRemoteDescription(sdp: string): void {
    if (this.closed) throw new Error("setRemoteDescription() called on destroyed peer connection");
    this.remote = sdp;
  }
  addRemoteCandidate(candidate: string): void {
    if (this.remote === undefined) {
      throw new Error(
        "libdatachannel error while adding remote candidate: Got a remote candidate without remote description",
      );
    }
    if (this.closed) {
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
  b.candidate!("b1", "0");
  a.description!("offer-sdp", "offer");
  assert.deepEqual(a.added, []);
  b.description!("answer-sdp", "answer");
  assert.deepEqual([a.remote, a.added], ["answer-sdp", ["b1"]]);
  b.candidate!("b2", "0");
  assert.deepEqual(a.added, ["b1", "b2"]);
});

Deno.test("the benchmark's native pair holds the offerer's candidates until the answer is set on the offerer", () => {
  const a = new FakePeer();
  const b = new FakePeer();
  linkPeers(a, b);
  a.candidate!("a1", "0");
  a.description!("offer-sdp", "offer");
  a.candidate!("a2", "0");
  // With them, the answerer would check the offerer and start the DTLS handshake
  // before the offerer knows the answer's fingerprint: the offerer refuses it.
  assert.deepEqual([b.remote, b.added], ["offer-sdp", []]);
  b.description!("answer-sdp", "answer");
  assert.deepEqual(b.added, ["a1", "a2"]);
  a.candidate!("a3", "0");
  assert.deepEqual(b.added, ["a1", "a2", "a3"]);
});

Deno.test("the benchmark's native pair drops a candidate or description for a peer that closed, throwing nothing into the callback", () => {
  const a = new FakePeer();
  const b = new FakePeer();
  const errors: Error[] = [];
  linkPeers(a, b, (error) => errors.push(error));
  a.description!("offer-sdp", "offer");
  // The answerer's connection fails (its transports close) while the offerer still gathers.
  b.closed = true;
  a.candidate!("a1", "0");
  b.description!("answer-sdp", "answer");
  a.closed = true;
  b.candidate!("b1", "0");
  assert.deepEqual([a.added, b.added], [[], []]);
  assert.equal(errors.length, 2);
  assert.match(errors[0].message, /Cannot add a candidate to the native pair's answerer/);
  assert.match(errors[0].message, /without ICE transport/);
});

Deno.test("a real native pair survives a candidate called back after its offerer closed", async () => {
  const config = { iceServers: [], bindAddress: "127.0.0.1" };
  const real = new nodeDataChannel.PeerConnection("closing-a", config);
  const b = new nodeDataChannel.PeerConnection("closing-b", config);
  // The offerer closes as soon as it has the answer: the answerer's candidates come after.
  const a: SignallingPeer = {
    onLocalDescription: (callback) => real.onLocalDescription(callback),
    onLocalCandidate: (callback) => real.onLocalCandidate(callback),
    setRemoteDescription(sdp, type) {
      real.setRemoteDescription(sdp, type as nodeDataChannel.DescriptionType);
      real.close();
    },
    addRemoteCandidate: (candidate, mid) => real.addRemoteCandidate(candidate, mid),
  };
  const refused = Promise.withResolvers<Error>();
  linkPeers(a, b, (error) => refused.resolve(error));
  const gathered = new Promise<void>((resolve) =>
    b.onGatheringStateChange((state) => state === "complete" && resolve())
  );
  real.createDataChannel("floor");
  const error = await refused.promise;
  assert.match(error.message, /Cannot add a candidate to the native pair's offerer/);
  await gathered;
  const closed = new Promise<void>((resolve) =>
    b.onStateChange((state) => state === "closed" && resolve())
  );
  b.close();
  await closed;
});
