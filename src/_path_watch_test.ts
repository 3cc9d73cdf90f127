import assert from "node:assert/strict";
import { PathWatch, type Timers } from "./_path_watch.ts";
import { PATH_CHECK_INTERVAL } from "./constants.ts";
import type { ConnectionPath } from "./peer.ts";

/** A clock that fires its timers only when told to. */
class ManualTimers implements Timers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  #next = 0;

  setTimeout(fn: () => void, ms: number): number {
    this.pending.set(++this.#next, { fn, ms });
    return this.#next;
  }

  clearTimeout(id: unknown): void {
    this.pending.delete(id as number);
  }

  /** Fires every pending timer once, then lets the checks they start settle. */
  async tick(): Promise<void> {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const { fn } of due) fn();
    await settle();
  }
}

/** Lets the promise callbacks queued so far (and those they queue) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const TURN: ConnectionPath = {
  localCandidateType: "relay",
  remoteCandidateType: "srflx",
  remoteAddress: "203.0.113.3:40000",
};
const DIRECT: ConnectionPath = {
  localCandidateType: "srflx",
  remoteCandidateType: "srflx",
  remoteAddress: "203.0.113.3:40002",
};

function setup() {
  const timers = new ManualTimers();
  const state = { path: TURN as ConnectionPath | undefined, reads: 0 };
  const seen: ConnectionPath[] = [];
  const errors: Error[] = [];
  let handler: ((path: ConnectionPath) => void) | undefined = (path) => seen.push(path);
  const watch = new PathWatch(
    () => {
      state.reads++;
      return Promise.resolve(state.path);
    },
    () => handler,
    (error) => errors.push(error),
    250,
    timers,
  );
  return {
    timers,
    state,
    seen,
    errors,
    watch,
    setHandler: (next: typeof handler) => (handler = next),
  };
}

Deno.test("PathWatch reports the path at once, then only a path that differs, one read per interval", async () => {
  const { timers, state, seen, watch } = setup();
  const before = PathWatch.running;
  watch.start();
  assert.equal(PathWatch.running, before + 1);
  await settle();
  assert.deepEqual(seen, [TURN]);
  assert.deepEqual([...timers.pending.values()].map((t) => t.ms), [250]);
  await timers.tick();
  assert.deepEqual(seen, [TURN], "an unchanged path is not reported again");
  state.path = DIRECT;
  await timers.tick();
  assert.deepEqual(seen, [TURN, DIRECT]);
  // No path (the statistics are gone): nothing reported, the last path stays the reference.
  state.path = undefined;
  await timers.tick();
  state.path = DIRECT;
  await timers.tick();
  assert.deepEqual(seen, [TURN, DIRECT]);
  assert.equal(state.reads, 5);
  watch.stop();
  assert.equal(PathWatch.running, before);
});

Deno.test("PathWatch.stop() clears its timer, and a read under way reports nothing", async () => {
  const { timers, state, seen, watch } = setup();
  const before = PathWatch.running;
  watch.start();
  await settle();
  watch.stop();
  watch.stop();
  assert.equal(timers.pending.size, 0);
  assert.equal(PathWatch.running, before);
  // Stopped while a read is under way: its answer is dropped.
  const second = setup();
  let answer: (path: ConnectionPath) => void = () => {};
  const slow = new PathWatch(
    () => new Promise<ConnectionPath>((resolve) => (answer = resolve)),
    () => (path) => second.seen.push(path),
    () => {},
    250,
    second.timers,
  );
  slow.start();
  slow.stop();
  answer(TURN);
  await settle();
  assert.deepEqual(second.seen, []);
  assert.equal(second.timers.pending.size, 0);
  assert.deepEqual(seen, [TURN]);
  assert.equal(state.reads, 1);
});

Deno.test("PathWatch reads nothing while no handler is set, and a new handler gets the path in use", async () => {
  const { timers, state, seen, watch, setHandler } = setup();
  const handler = (path: ConnectionPath) => seen.push(path);
  setHandler(undefined);
  watch.start();
  await settle();
  await timers.tick();
  assert.equal(state.reads, 0);
  assert.equal(timers.pending.size, 1, "it still checks for a handler each interval");
  setHandler(handler);
  await timers.tick();
  assert.deepEqual(seen, [TURN]);
  watch.stop();
});

Deno.test("PathWatch passes a handler's error to onerror and goes on; a failed read is skipped", async () => {
  const { timers, state, errors, watch, setHandler } = setup();
  setHandler(() => {
    throw new Error("handler broke");
  });
  watch.start();
  await settle();
  assert.deepEqual(errors.map((error) => error.message), ["handler broke"]);
  const seen: ConnectionPath[] = [];
  setHandler((path) => seen.push(path));
  state.path = DIRECT;
  await timers.tick();
  assert.deepEqual(seen, [DIRECT]);
  watch.stop();

  const failing = new PathWatch(
    () => Promise.reject(new Error("getStats failed")),
    () => (path) => seen.push(path),
    (error) => errors.push(error),
    250,
    timers,
  );
  failing.start();
  await settle();
  assert.deepEqual(seen, [DIRECT]);
  assert.equal(errors.length, 1);
  assert.equal(timers.pending.size, 1, "it reads again next interval");
  failing.stop();
});

Deno.test("PathWatch reads every PATH_CHECK_INTERVAL by default, 500 ms as documented", async () => {
  assert.equal(PATH_CHECK_INTERVAL, 500);
  const timers = new ManualTimers();
  const watch = new PathWatch(
    () => Promise.resolve(TURN),
    () => () => {},
    () => {},
    undefined,
    timers,
  );
  watch.start();
  await settle();
  assert.deepEqual([...timers.pending.values()].map((t) => t.ms), [500]);
  watch.stop();
});
