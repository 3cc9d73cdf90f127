/** Two `WebRTCConnection`s with resume on, on loopback, for the resume tests. */
import { MemorySignaling, type Signaling, WebRTCConnection } from "../mod.ts";
import { useClock } from "../src/_clock.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { LOCAL } from "./_helpers.ts";

/**
 * An agent and a desktop with resume on: each dial of the agent makes a
 * signalling pair, and the desktop answers on its other end. The agent's
 * liveness reads `clock`, so its path is lost when the test moves it.
 */
export function resumablePair(): {
  agent: WebRTCConnection;
  desktop: WebRTCConnection;
  clock: ManualClock;
} {
  const ready: Signaling[] = [];
  const waiting: ((signaling: Signaling) => void)[] = [];
  const agent = new WebRTCConnection({
    ...LOCAL,
    linger: 0,
    resume: true,
    signaling: () => {
      const [a, b] = MemorySignaling.createPair();
      const waiter = waiting.shift();
      if (waiter) waiter(b);
      else ready.push(b);
      return a;
    },
  });
  const desktop = new WebRTCConnection({
    ...LOCAL,
    initiator: false,
    resume: true,
    signaling: () =>
      ready.length > 0
        ? ready.shift()!
        : new Promise<Signaling>((resolve) => waiting.push(resolve)),
  });
  const clock = new ManualClock();
  useClock(agent, clock);
  return { agent, desktop, clock };
}
