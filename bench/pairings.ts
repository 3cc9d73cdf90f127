/**
 * How connects on one host are spread, and how often one stalls for
 * libdatachannel's 1 s DTLS retransmission: N sequential pairings of two peers
 * of this module on 127.0.0.1, once with the offer as sent (marked: the
 * answerer applies the offerer's candidates, answers once its check of them
 * succeeded, and makes the offerer the DTLS client), once with the mark taken
 * out on the way (the answerer then treats it as another stack's offer: it
 * answers at once, applies the candidates after, keeps the default DTLS roles).
 *
 * For each: the open time (both `connect()` calls resolved) as median, p90 and
 * max, and how many took over 500 ms (a stall is ~1 s; an open is ~5–60 ms).
 *
 * Run: `deno run -A bench/pairings.ts [--count 200]`
 *
 * @module
 */
import { MemorySignaling, type Signaling, type SignalingMessage } from "../mod.ts";
import { OFFER_MARK } from "../src/constants.ts";
import { Peer } from "../src/peer.ts";

const countIndex = Deno.args.indexOf("--count");
const COUNT = countIndex >= 0 ? Number(Deno.args[countIndex + 1]) : 200;
const STALL_MS = 500;
const LOCAL = { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } };

/** The offer without this module's mark: the answerer keeps the default DTLS roles. */
function unmarked(inner: Signaling): Signaling {
  const wrapper: Signaling = {
    start: (options) => inner.start?.(options) ?? Promise.resolve(),
    send: (message: SignalingMessage) =>
      inner.send(
        message.type === "offer"
          ? { ...message, sdp: String(message.sdp).replace(`${OFFER_MARK}\r\n`, "") }
          : message,
      ),
    close: () => inner.close(),
  };
  inner.onmessage = (message) => wrapper.onmessage?.(message);
  inner.onclose = () => wrapper.onclose?.();
  return wrapper;
}

async function pairing(marked: boolean): Promise<number> {
  const [a, b] = MemorySignaling.createPair();
  const options = { ...LOCAL, connectTimeout: 10_000, waitForPeer: false };
  const offerer = new Peer({ ...options, signaling: marked ? a : unmarked(a), initiator: true });
  const answerer = new Peer({ ...options, signaling: b, initiator: false });
  const started = performance.now();
  try {
    await Promise.all([offerer.connect(), answerer.connect()]);
    return performance.now() - started;
  } finally {
    await Promise.all([offerer.close(), answerer.close()]);
  }
}

function summary(label: string, times: number[]) {
  const sorted = [...times].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const stalls = times.filter((t) => t > STALL_MS).length;
  return {
    label,
    pairings: times.length,
    stalls,
    medianMs: Number(at(0.5).toFixed(1)),
    p90Ms: Number(at(0.9).toFixed(1)),
    maxMs: Number(sorted.at(-1)!.toFixed(1)),
  };
}

const results = [];
for (const marked of [true, false]) {
  const times: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    times.push(await pairing(marked));
    if ((i + 1) % 50 === 0) console.error(`${marked ? "marked" : "unmarked"}: ${i + 1} pairings`);
  }
  results.push(
    summary(
      marked ? "marked offer (this module's order)" : "unmarked (as another stack's offer)",
      times,
    ),
  );
}
console.table(results);
