import assert from "node:assert/strict";
import type { Clock } from "../_clock.ts";
import { RelayPacer } from "./room_pipe.ts";

/** A clock that moves only when told, and runs its timers then. */
function manualClock(): Clock & { advance(ms: number): void; delays: number[] } {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 0;
  const delays: number[] = [];
  return {
    delays,
    now: () => now,
    setTimeout(fn, ms) {
      delays.push(ms);
      timers.set(++next, { at: now + ms, fn });
      return next;
    },
    clearTimeout: (id) => void timers.delete(id as number),
    advance(ms) {
      now += ms;
      for (const [id, timer] of [...timers]) {
        if (timer.at > now) continue;
        timers.delete(id);
        timer.fn();
      }
    },
  };
}

Deno.test("RelayPacer sends within its bucket at once and holds the next frame for the time its share of the room's rate needs, on its clock", async () => {
  const clock = manualClock();
  const sent: number[] = [];
  // Half of 1000 B/s is paced; the bucket holds a quarter second of it, at least one frame.
  const pacer = new RelayPacer(
    { bytesPerSecond: 1_000, maxFrameBytes: 100 },
    (frame) => sent.push(frame.byteLength),
    clock,
  );
  await pacer.send(new Uint8Array(100));
  assert.deepEqual(sent, [100]);
  const second = pacer.send(new Uint8Array(150));
  // 125 tokens at first, 100 spent, 150 asked: 125 short, at 500 B/s.
  for (let turn = 0; turn < 100 && clock.delays.length === 0; turn++) await Promise.resolve();
  assert.deepEqual(clock.delays, [250]);
  assert.deepEqual(sent, [100]);
  clock.advance(249);
  await Promise.resolve();
  assert.deepEqual(sent, [100]);
  clock.advance(1);
  await second;
  assert.deepEqual(sent, [100, 150]);
  // The bucket refills on the clock: 250 ms later 125 tokens are back, so 0 again.
  clock.advance(250);
  await pacer.send(new Uint8Array(100));
  assert.deepEqual(sent, [100, 150, 100]);
  assert.deepEqual(clock.delays, [250]);
});
