import assert from "node:assert/strict";
import { AuthenticationError, ConnectError } from "../errors.ts";
import {
  channelRefused,
  connectionFailed,
  goodbyeError,
  type Observed,
  refusedByPeer,
  stageOf,
  timedOut,
} from "./diagnosis.ts";
import { attemptSettings, retryable } from "./retry.ts";

const FINGERPRINT = "AA:BB:CC:DD";
const OTHER_FINGERPRINT = "11:22:33:44";

/** What an offerer observed whose offer and answer were exchanged at t = 1000. */
function observed(overrides: Partial<Observed> = {}): Observed {
  return {
    initiator: true,
    meetingPoint: "room abc",
    sealed: false,
    remoteSet: true,
    iceConnected: false,
    pathFound: false,
    negotiatedAt: 1_000,
    dtlsUp: false,
    connectionState: "connecting",
    remoteSdp: `v=0\r\na=fingerprint:sha-256 ${FINGERPRINT}\r\n`,
    ours: true,
    broke: true,
    now: 1_200,
    ...overrides,
  };
}

Deno.test("stageOf() names the first stage not completed: signalling, ICE, DTLS, then the channel", () => {
  assert.equal(stageOf(observed({ remoteSet: false })), "signaling");
  assert.equal(stageOf(observed()), "ice");
  assert.equal(stageOf(observed({ iceConnected: true })), "dtls");
  assert.equal(stageOf(observed({ iceConnected: true, connectionState: "connected" })), "channel");
});

Deno.test("timedOut() names the stage and the timeout, and the refused message at the signalling stage", () => {
  const ice = timedOut(observed(), 15_000);
  assert.equal(ice.stage, "ice");
  assert.match(ice.message, /ICE connectivity check did not complete within 15000 ms/);
  assert.match(ice.message, /TURN server/);
  const refused = new Error("a forged offer");
  const signaling = timedOut(observed({ remoteSet: false, refused }), 5_000);
  assert.equal(signaling.stage, "signaling");
  assert.match(signaling.message, /signalling messages were refused \(a forged offer\)/);
  assert.equal(signaling.cause, refused);
  const unanswered = timedOut(observed({ remoteSet: false }), 5_000);
  assert.match(unanswered.message, /no answer came from the other peer; check .* uses room abc/);
  assert.match(
    timedOut(observed({ remoteSet: false, initiator: false }), 5_000).message,
    /the offer or its candidates did not arrive; check that both peers use room abc/,
  );
});

Deno.test("connectionFailed() without a path is the ICE stage's, conclusive", () => {
  const { error, conclusive } = connectionFailed(observed(), "failed");
  assert.equal(error.stage, "ice");
  assert.match(error.message, /failed before ICE found a path/);
  assert.equal(conclusive, true);
});

Deno.test("connectionFailed() after the answerer's check proved a path is the handshake's, timed from the exchange", () => {
  const { error, conclusive } = connectionFailed(observed({ pathFound: true }), "failed");
  assert.equal(error.stage, "dtls");
  assert.match(error.message, /during the DTLS handshake, 200 ms after a network path was found/);
  assert.match(error.message, /before the other peer's certificate was checked/);
  assert.equal(conclusive, false);
});

Deno.test("connectionFailed() once the encrypted session was up is the channel's, conclusive", () => {
  const { error, conclusive } = connectionFailed(
    observed({ iceConnected: true, dtlsUp: true }),
    "closed",
  );
  assert.equal(error.stage, "channel");
  assert.match(error.message, /closed after the encrypted session was up/);
  assert.equal(conclusive, true);
});

Deno.test("connectionFailed() names an altered fingerprint only when the handshake's certificate differs from the signalled one", () => {
  const base = { iceConnected: true, iceConnectedAt: 1_150 };
  const altered = connectionFailed(
    observed({ ...base, remoteCertificate: { algorithm: "SHA-256", value: OTHER_FINGERPRINT } }),
    "failed",
  );
  assert.equal(altered.conclusive, true);
  assert.equal(altered.error.stage, "dtls");
  assert.match(
    altered.error.message,
    /does not match the fingerprint in the answer it signalled \(sha-256 11:22:33:44 in the handshake, AA:BB:CC:DD signalled\): something on the signalling channel altered/,
  );
  const sealed = connectionFailed(
    observed({
      ...base,
      sealed: true,
      remoteCertificate: { algorithm: "sha-256", value: OTHER_FINGERPRINT },
    }),
    "failed",
  );
  assert.match(
    sealed.error.message,
    /the signalling is sealed, so that fingerprint is the other peer's own/,
  );
  const matching = connectionFailed(
    observed({ ...base, remoteCertificate: { algorithm: "sha-256", value: "aa:bb:cc:dd" } }),
    "failed",
  );
  assert.equal(matching.conclusive, false);
  assert.match(
    matching.error.message,
    /50 ms after a network path was found, although the other peer's certificate matches/,
  );
  const uncompared = connectionFailed(
    observed({ ...base, remoteCertificate: { algorithm: "sha-1", value: FINGERPRINT } }),
    "failed",
  );
  assert.equal(uncompared.conclusive, false);
  assert.match(
    uncompared.error.message,
    /not compared \(its answer signalled no sha-1 fingerprint\)/,
  );
});

Deno.test("goodbyeError() joins what was seen here to the other peer's reason, cut to its bound", () => {
  const unexplained = new ConnectError("dtls", "Cannot connect as the handshake failed");
  const joined = goodbyeError(observed({ unexplained }), "its certificate check failed");
  assert.equal(joined.stage, "dtls");
  assert.equal(
    joined.message,
    "Cannot connect as the handshake failed; the other peer said: its certificate check failed",
  );
  const cut = goodbyeError(observed({ remoteSet: false }), "x".repeat(5_000));
  assert.equal(cut.stage, "signaling");
  assert.equal(cut.message, `Cannot connect as the other peer gave up: ${"x".repeat(600)}`);
  assert.match(goodbyeError(observed({ remoteSet: false }), 42).message, /no reason given/);
});

Deno.test("goodbyeError() keeps the other peer's own diagnosis, and says when this side refused its message", () => {
  const theirs = goodbyeError(observed(), "Cannot connect as ICE found no path");
  assert.equal(theirs.stage, "ice");
  assert.match(
    theirs.message,
    /gave up during the ICE connectivity check, saying: Cannot connect as ICE/,
  );
  const guessed = goodbyeError(observed(), "closed");
  assert.match(
    guessed.message,
    /gave up \(closed\) during the ICE connectivity check: no network path/,
  );
  const refused = new AuthenticationError("a seal did not verify");
  const ours = goodbyeError(observed({ refused }), "closed");
  assert.match(ours.message, /this peer refused a signalling message \(a seal did not verify\)/);
  assert.equal(ours.cause, refused);
});

Deno.test("refusedByPeer() and channelRefused() say what the other peer refused", () => {
  const refusal = new Error("The other peer refused our offer: its seal did not verify");
  const error = refusedByPeer(observed({ remoteSet: false }), refusal);
  assert.equal(error.stage, "signaling");
  assert.equal(
    error.message,
    "Cannot connect as the other peer refused our offer: its seal did not verify",
  );
  assert.equal(channelRefused().stage, "channel");
});

Deno.test("retryable() holds for a broken ICE or DTLS stage between peers of this module within the window, on the first attempt", () => {
  const dtls = new ConnectError("dtls", "refused");
  const first = attemptSettings(1).mayRetry;
  assert.equal(first, true);
  assert.equal(attemptSettings(2).mayRetry, false);
  assert.equal(attemptSettings(2).retry, true);
  assert.equal(retryable(observed(), first, dtls), true);
  assert.equal(retryable(observed(), first, new ConnectError("ice", "no path")), true);
  // Decided alike on both sides, so only for what both can see.
  assert.equal(retryable(observed(), false, dtls), false);
  assert.equal(retryable(observed({ ours: false }), first, dtls), false);
  assert.equal(retryable(observed({ broke: false }), first, dtls), false);
  assert.equal(retryable(observed({ negotiatedAt: undefined }), first, dtls), false);
  assert.equal(retryable(observed(), first, new ConnectError("channel", "reset")), false);
  assert.equal(retryable(observed(), first, new Error("not a connect error")), false);
  // The DTLS window, on the peer's clock.
  assert.equal(retryable(observed({ now: 1_000 + 4_999 }), first, dtls), true);
  assert.equal(retryable(observed({ now: 1_000 + 5_000 }), first, dtls), false);
});

Deno.test("connectionFailed() names an altered fingerprint even when no ICE event was seen before the failure", () => {
  const { error, conclusive } = connectionFailed(
    observed({
      iceConnected: false,
      pathFound: false,
      remoteCertificate: { algorithm: "SHA-256", value: OTHER_FINGERPRINT },
    }),
    "closed",
  );
  assert.equal(conclusive, true);
  assert.equal(error.stage, "dtls");
  assert.match(error.message, /does not match the fingerprint in the answer it signalled/);
});
