import assert from "node:assert/strict";
import { type KeptMessage, ResumeLog } from "./_resume_log.ts";
import { MemoryBudget } from "./framing.ts";
import { prng } from "./_test_prng.ts";
import { ManualClock } from "./_test_clock.ts";
import { DEFAULT_MAX_UNACKNOWLEDGED_BYTES, RESUME_ACK_INTERVAL } from "./constants.ts";

type Frame = { kind: "message"; seq: number; body: number } | { kind: "ack"; received: number };

/** One side of a session: its log, what it delivered, and its way out on the connection of now. */
class End {
  readonly delivered: number[] = [];
  readonly log: ResumeLog<number>;
  /** Frames toward the other side on the current connection; a lost connection loses them. */
  out: Frame[] = [];
  next = 0;

  constructor(clock: ManualClock, readonly budget: MemoryBudget) {
    this.log = new ResumeLog<number>({
      budget,
      clock,
      acknowledge: (received) => this.out.push({ kind: "ack", received }),
    });
  }

  send(): void {
    const body = this.next++;
    const seq = this.log.keep(body, 20);
    this.out.push({ kind: "message", seq, body });
  }

  receive(frame: Frame): void {
    if (frame.kind === "ack") this.log.release(frame.received);
    else if (this.log.accept(frame.seq)) this.delivered.push(frame.body);
  }
}

/** The new connection: each side tells its count, then sends again what the other lacks. */
function rebind(a: End, b: End): void {
  a.out = [];
  b.out = [];
  const countA = a.log.received;
  const countB = b.log.received;
  const fromA = a.log.rebind(countB);
  const fromB = b.log.rebind(countA);
  assert.equal(fromA.received, countA);
  assert.equal(fromB.received, countB);
  for (
    const [end, resend, told] of [[a, fromA.resend, countB], [b, fromB.resend, countA]] as const
  ) {
    // Implicit numbering holds: what is sent again starts right after the other side's count.
    if (resend.length > 0) assert.equal(resend[0].seq, told + 1);
    for (const kept of resend as KeptMessage<number>[]) {
      end.out.push({ kind: "message", seq: kept.seq, body: kept.message });
    }
  }
}

Deno.test("A stream of 1,000 messages each way with 5 lost connections in between delivers each message exactly once, in order", async () => {
  const random = prng(23);
  const clock = new ManualClock();
  const total = 1000;
  const a = new End(clock, new MemoryBudget("maxUnacknowledgedBytes", 1024 * 1024));
  const b = new End(clock, new MemoryBudget("maxUnacknowledgedBytes", 1024 * 1024));
  const cuts = [150, 333, 500, 501, 870];
  let rebinds = 0;
  let lostInFlight = 0;
  let steps = 0;
  while (a.delivered.length < total || b.delivered.length < total) {
    assert.ok(++steps < 100_000, "the stream did not finish");
    const sent = a.next + b.next;
    if (rebinds < cuts.length && sent >= 2 * cuts[rebinds]) {
      lostInFlight += a.out.filter((frame) => frame.kind === "message").length +
        b.out.filter((frame) => frame.kind === "message").length;
      rebind(a, b);
      rebinds++;
      continue;
    }
    const roll = random();
    if (roll < 0.25 && a.next < total) a.send();
    else if (roll < 0.5 && b.next < total) b.send();
    else if (roll < 0.7 && a.out.length > 0) b.receive(a.out.shift()!);
    else if (roll < 0.9 && b.out.length > 0) a.receive(b.out.shift()!);
    else await clock.advance(Math.floor(random() * 150));
  }
  assert.equal(rebinds, 5);
  // The cuts lost messages in flight, which were sent again.
  assert.ok(lostInFlight > 0, "no message was in flight at any cut");
  const expected = Array.from({ length: total }, (_, i) => i);
  assert.deepEqual(a.delivered, expected);
  assert.deepEqual(b.delivered, expected);
  // Once the last acknowledgements arrive, nothing is kept and the budgets are whole again.
  await clock.advance(RESUME_ACK_INTERVAL);
  for (const frame of a.out.splice(0)) b.receive(frame);
  for (const frame of b.out.splice(0)) a.receive(frame);
  for (const end of [a, b]) {
    assert.equal(end.log.kept, 0);
    assert.equal(end.budget.used, 0);
    end.log.close();
  }
});

Deno.test("A session whose unacknowledged messages would exceed its budget fails with an error naming the budget, and keeps failing", () => {
  const budget = new MemoryBudget("maxUnacknowledgedBytes", 1000);
  const log = new ResumeLog<string>({ budget });
  assert.equal(log.keep("a", 500), 1);
  assert.throws(
    () => log.keep("b", 500),
    /Cannot keep message 2 of the session \(500 bytes\) for a resume .*'maxUnacknowledgedBytes' \(1000 bytes/,
  );
  // Nothing was reserved for the refused message, and the log stays failed.
  assert.equal(budget.used, log.bytes);
  assert.throws(() => log.keep("c", 1), /maxUnacknowledgedBytes/);
  assert.throws(() => log.rebind(0), /maxUnacknowledgedBytes/);
  log.close();
  assert.equal(budget.used, 0);
});

Deno.test("The budget refused by a scope above the session's is the one the error names", () => {
  const connection = new MemoryBudget("maxUnacknowledgedBytesPerConnection", 1000);
  const one = new ResumeLog<string>({
    budget: new MemoryBudget("maxUnacknowledgedBytes", 800, connection),
  });
  const two = new ResumeLog<string>({
    budget: new MemoryBudget("maxUnacknowledgedBytes", 800, connection),
  });
  one.keep("a", 600);
  assert.throws(() => two.keep("b", 600), /'maxUnacknowledgedBytesPerConnection' \(1000 bytes/);
  // The first session goes on.
  one.release(1);
  assert.equal(one.keep("c", 600), 2);
  one.close();
  two.close();
  assert.equal(connection.used, 0);
});

Deno.test("Acknowledged messages give their bytes back; an older acknowledgement is ignored", () => {
  const budget = new MemoryBudget("maxUnacknowledgedBytes", DEFAULT_MAX_UNACKNOWLEDGED_BYTES);
  const log = new ResumeLog<number>({ budget });
  for (let i = 0; i < 10; i++) log.keep(i, 100);
  log.release(4);
  assert.equal(log.kept, 6);
  assert.equal(log.acknowledged, 4);
  const held = budget.used;
  log.release(2);
  assert.equal(log.kept, 6);
  assert.equal(budget.used, held);
  assert.throws(() => log.release(11), /acknowledgement of 11 messages as this side sent 10/);
  // After a rebind, only what the other side lacks is sent again.
  assert.deepEqual(log.rebind(7).resend.map((kept) => kept.message), [7, 8, 9]);
  log.close();
  assert.equal(budget.used, 0);
});

Deno.test("A message numbered at or below what was delivered is dropped; one that skips a number is refused", () => {
  const log = new ResumeLog<string>();
  assert.equal(log.accept(1), true);
  assert.equal(log.accept(2), true);
  assert.equal(log.accept(2), false);
  assert.equal(log.accept(1), false);
  assert.equal(log.received, 2);
  assert.throws(() => log.accept(4), /message 4 of the session as message 3 has not arrived/);
  assert.throws(() => log.accept(0), /numbered 0/);
  assert.equal(log.accept(3), true);
  log.close();
});

Deno.test("A sender that sends again from before what was delivered has the copies dropped", () => {
  const sender = new ResumeLog<string>();
  const receiver = new ResumeLog<string>();
  const delivered: string[] = [];
  for (const body of ["a", "b", "c"]) {
    const seq = sender.keep(body, 1);
    if (seq < 3 && receiver.accept(seq)) delivered.push(body);
  }
  // A sender that sends everything it keeps (it did not take the receiver's count).
  for (const kept of sender.rebind(0).resend) {
    if (receiver.accept(kept.seq)) delivered.push(kept.message);
  }
  assert.deepEqual(delivered, ["a", "b", "c"]);
  sender.close();
  receiver.close();
});

Deno.test("A received message is acknowledged after the ack interval, or at once after ackEvery messages", async () => {
  const clock = new ManualClock();
  const acks: number[] = [];
  const log = new ResumeLog<string>({
    clock,
    ackInterval: 100,
    ackEvery: 4,
    acknowledge: (received) => acks.push(received),
  });
  log.accept(1);
  await clock.advance(99);
  assert.deepEqual(acks, []);
  await clock.advance(1);
  assert.deepEqual(acks, [1]);
  for (let seq = 2; seq <= 5; seq++) log.accept(seq);
  assert.deepEqual(acks, [1, 5]);
  // That acknowledgement stopped the timer: nothing more until a new message.
  await clock.advance(1000);
  assert.deepEqual(acks, [1, 5]);
  log.accept(6);
  // A rebind tells the count itself, so the pending acknowledgement is not sent.
  assert.equal(log.rebind(0).received, 6);
  await clock.advance(1000);
  assert.deepEqual(acks, [1, 5]);
  log.accept(7);
  log.close();
  await clock.advance(1000);
  assert.deepEqual(acks, [1, 5]);
});

Deno.test("A resume log refuses a budget that is not one, and an ack interval or count below 1", () => {
  assert.throws(() => new ResumeLog({ budget: {} as MemoryBudget }), /not a MemoryBudget/);
  assert.throws(() => new ResumeLog({ ackInterval: 0 }), /'ackInterval' must be a positive/);
  assert.throws(() => new ResumeLog({ ackEvery: 1.5 }), /'ackEvery' must be a positive/);
  assert.throws(() => new ResumeLog().keep("a", -1), /size must be a non-negative integer/);
});
