import assert from "node:assert/strict";
import { FairWindow } from "./_fair_window.ts";
import {
  CHUNK_SIZE,
  FAIR_REPORT_WAIT_MAX_MS,
  FAIR_REPORT_WAIT_MS,
  FAIR_RTT_INTERVAL_MS,
  FAIR_SEND_RECORDS,
  FAIR_WINDOW,
  FAIR_WINDOW_MAX,
} from "./constants.ts";

/** Checks what must hold whatever a peer reports. */
function bounded(window: FairWindow): void {
  assert.ok(window.window >= FAIR_WINDOW && window.window <= FAIR_WINDOW_MAX, `${window.window}`);
  assert.ok(window.records <= FAIR_SEND_RECORDS, `${window.records} records`);
  assert.ok(window.read <= window.sent, `${window.read} read of ${window.sent}`);
  assert.ok(
    window.reportWait >= FAIR_REPORT_WAIT_MS && window.reportWait <= FAIR_REPORT_WAIT_MAX_MS,
  );
}

Deno.test("a report of more than was sent counts as all that was sent", () => {
  const window = new FairWindow();
  window.handed(CHUNK_SIZE, 0, true);
  assert.equal(window.reported(Number.MAX_SAFE_INTEGER, 60), true);
  assert.equal(window.read, CHUNK_SIZE);
  assert.equal(window.records, 0);
  // Nothing more was sent: a second such report moves nothing.
  assert.equal(window.reported(Number.MAX_SAFE_INTEGER, 70), false);
  bounded(window);
});

Deno.test("late, repeated and backward reports change nothing", () => {
  const window = new FairWindow();
  for (let i = 0; i < 4; i++) window.handed(CHUNK_SIZE, i, true);
  assert.equal(window.reported(3 * CHUNK_SIZE, 60), true);
  const rtt = window.rtt;
  assert.equal(window.reported(CHUNK_SIZE, 61), false);
  assert.equal(window.reported(3 * CHUNK_SIZE, 62), false);
  assert.equal(window.reported(0, 63), false);
  assert.equal(window.reported(Number.NaN, 63), false);
  assert.equal(window.reported(-1, 63), false);
  assert.equal(window.read, 3 * CHUNK_SIZE);
  assert.equal(window.rtt, rtt);
  assert.equal(window.records, 1);
  bounded(window);
});

Deno.test("the ring and the window stay within their constants whatever a peer reports", () => {
  const window = new FairWindow();
  let now = 0;
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 5_000; i++) {
    // Runs of unreported chunks longer than the ring, then reports of any size at any delay.
    const chunks = Math.floor(random() * 3 * FAIR_SEND_RECORDS);
    for (let c = 0; c < chunks; c++) {
      window.handed(CHUNK_SIZE * (0.5 + random()), now, random() < 0.8);
    }
    now += random() < 0.5 ? random() * 5_000 : random();
    const kind = random();
    const bytes = kind < 0.2
      ? Number.MAX_SAFE_INTEGER
      : kind < 0.4
      ? window.read * random()
      : window.read + (window.sent - window.read) * random() * 1.5;
    window.reported(bytes, now);
    bounded(window);
  }
});

Deno.test("a report wait follows the base round trip within its bounds", () => {
  const slow = new FairWindow();
  assert.equal(slow.reportWait, FAIR_REPORT_WAIT_MS);
  slow.handed(CHUNK_SIZE, 0, true);
  slow.reported(CHUNK_SIZE, 200);
  assert.equal(slow.reportWait, 400);
  const hostile = new FairWindow();
  hostile.handed(CHUNK_SIZE, 0, true);
  hostile.reported(CHUNK_SIZE, 60_000);
  assert.equal(hostile.reportWait, FAIR_REPORT_WAIT_MAX_MS);
});

/** Hands `window.window` of chunks at `now` and reports them `rtt` later; returns the new time. */
function roundTrip(window: FairWindow, now: number, rtt: number): number {
  for (let bytes = 0; bytes + CHUNK_SIZE <= window.window; bytes += CHUNK_SIZE) {
    window.handed(CHUNK_SIZE, now, true);
  }
  window.reported(window.sent, now + rtt);
  return now + rtt;
}

Deno.test("chunks handed while not held give no sample: the queue they built is not taken for the path", () => {
  const window = new FairWindow();
  // An unheld transfer queued 2 MiB; its reports come 2 s after.
  for (let i = 0; i < 32; i++) window.handed(CHUNK_SIZE, 0, false);
  window.reported(window.sent, 2000);
  assert.equal(window.window, FAIR_WINDOW);
  assert.equal(window.rtt, Infinity);
  // Held from now on, the window grows from FAIR_WINDOW with the path's own round trip.
  roundTrip(window, 2000, 50);
  assert.equal(window.rtt, 50);
});

Deno.test("a base round trip older than FAIR_RTT_INTERVAL_MS gives way: the window starts again from FAIR_WINDOW", () => {
  const window = new FairWindow();
  let now = 0;
  for (let i = 0; i < 10; i++) now = roundTrip(window, now, 50);
  assert.equal(window.rtt, 50);
  const grown = window.window;
  assert.ok(grown > 2 * FAIR_WINDOW, `${grown}`);
  // Bytes queue: every round trip takes 75 ms, none reaches the base again.
  const base = now;
  while (now + 75 - base <= FAIR_RTT_INTERVAL_MS) now = roundTrip(window, now, 75);
  assert.equal(window.rtt, 50);
  now = roundTrip(window, now, 75);
  assert.equal(window.window, FAIR_WINDOW, "the window starts again");
  assert.equal(window.rtt, Infinity, "and the base round trip is measured anew");
  // Only chunks handed since give samples: at FAIR_WINDOW the queue drained.
  now = roundTrip(window, now, 52);
  assert.equal(window.rtt, 52);
});
