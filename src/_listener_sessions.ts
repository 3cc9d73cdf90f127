/**
 * The checks a {@linkcode WebRTCListener} makes of each agent that arrives
 * (the ticket's and the invite's expiry, the agent count) and of each session
 * it opens (how many are open, the start rate, the tool names), the refusals
 * an agent reads, and where the listener asks its hub for ICE servers.
 *
 * @module
 */

import type { Transport } from "@modelcontextprotocol/sdk/shared/transport";
import { settle } from "./_async.ts";
import type { Clock } from "./_clock.ts";
import type { InviteEntry } from "./_listener_invites.ts";
import type { WebRTCListenerOptions } from "./_listener_options.ts";
import type { Signaling } from "./signaling/signaling.ts";
import {
  DEFAULT_MAX_AGENTS,
  DEFAULT_MAX_AGENTS_PER_INVITE,
  REFUSAL_TIMEOUT,
  SESSION_LIMIT_REACHED,
} from "./constants.ts";
import { GUEST_INVITE } from "./signaling/room_protocol.ts";
import { WebRTCTransportError } from "./errors.ts";
import type { IceServer } from "./webrtc_transport.ts";

/**
 * Why an arriving agent is refused (the ticket or its invite expired, or the
 * desktop serves `maxAgents` already), or `undefined` to accept it.
 */
export function agentRefusal(
  options: WebRTCListenerOptions,
  invite: InviteEntry | undefined,
  agents: number,
  now: number,
  inviteAgents = 0,
): string | undefined {
  const {
    expiresAt,
    maxAgents = DEFAULT_MAX_AGENTS,
    maxAgentsPerInvite = DEFAULT_MAX_AGENTS_PER_INVITE,
  } = options;
  if (expiresAt && expiresAt.getTime() <= now) {
    return "the ticket expired; ask the desktop for a new one";
  }
  if (invite?.expiresAt && invite.expiresAt.getTime() <= now) {
    return `the invite "${invite.name}" expired; ask the desktop for a new one`;
  }
  if (agents >= maxAgents) {
    return `the desktop serves its maximum of ${maxAgents} agents; try again later`;
  }
  if (invite && invite.name !== GUEST_INVITE && inviteAgents >= maxAgentsPerInvite) {
    return `the invite "${invite.name}" has ${inviteAgents} agents connected, the most one invite may have (maxAgentsPerInvite): close one of them, or ask the desktop for an invite of its own`;
  }
  return undefined;
}

/**
 * Tells a refused agent why (sealed, when signalling is authenticated, so
 * the agent can trust the reason), then lets go of its signalling.
 */
export async function refuseAgent(signaling: Signaling, reason: string): Promise<void> {
  try {
    await signaling.start?.();
    await settle(signaling.send({ type: "bye", reason }), REFUSAL_TIMEOUT);
  } catch {
    // The agent is gone already.
  } finally {
    await signaling.close().catch(() => {});
  }
}

/** What a {@linkcode SessionGate} needs. */
export interface SessionGateOptions {
  /** The agent's peer id, for the errors. */
  readonly peer: string;
  /** The most sessions the agent may hold open (`maxSessionsPerAgent`). */
  readonly maxSessions: number;
  /** The rate the agent may start sessions at (`sessionStartsPerSecond`). */
  readonly startsPerSecond: number;
  readonly clock: Clock;
  /** Told of each session refused. */
  readonly onerror: (error: Error) => void;
}

/**
 * Admits one agent's sessions while it holds fewer than `maxSessions` open
 * and starts them no faster than `startsPerSecond`; refuses the others with
 * a reason the agent reads. With resume, a channel is held as it arrives,
 * before its first message says whether it starts a session or resumes one
 * ({@linkcode SessionGate.hold}, at most `maxSessions` such channels at
 * once), and only a session it starts takes a slot: a session kept for a
 * resume holds its slot until it ends, and the channel that resumes it takes
 * none.
 */
export class SessionGate {
  readonly #options: SessionGateOptions;
  #starts: StartRate;
  #open = 0;
  #waiting = 0;
  /** The gate that took this one's counts over (a redial's claim joined them). */
  #into?: SessionGate;

  constructor(options: SessionGateOptions) {
    this.#options = options;
    this.#starts = new StartRate(options.startsPerSecond, options.maxSessions, options.clock);
  }

  /** The gate that counts for this one now. */
  #counting(): SessionGate {
    // One hop per redial that took over a gate; `absorb` never makes a cycle.
    return this.#into ? this.#into.#counting() : this;
  }

  /**
   * Why the agent may not take `other`'s sessions over too: together they
   * would hold more than `maxSessions` (`undefined` when they may).
   */
  overWith(other: SessionGate): string | undefined {
    const into = this.#counting();
    const from = other.#counting();
    if (from === into) return undefined;
    const total = into.#open + from.#open;
    const { maxSessions } = this.#options;
    return total > maxSessions
      ? `with the sessions it opened since, the agent would hold ${total}, more than the ${maxSessions} allowed (maxSessionsPerAgent)`
      : undefined;
  }

  /**
   * Counts `other`'s sessions and channels here from now on, and those it
   * gives back: a redial's connection whose claim took over this gate's
   * sessions keeps one count for the agent.
   */
  absorb(other: SessionGate): void {
    const into = this.#counting();
    const from = other.#counting();
    if (from === into) return;
    into.#open += from.#open;
    into.#waiting += from.#waiting;
    from.#open = from.#waiting = 0;
    from.#into = into;
    // The redial's own starts: those of the lost connection may be spent on
    // the sessions it now resumes, and a new dial has a full burst anyway.
    into.#starts = from.#starts;
  }

  /**
   * Takes a slot for the session, or refuses it (`undefined`). The slot is
   * the caller's until it calls the `release` returned (idempotent): when the
   * channel closes, for a plain session; when the session ends, for one kept
   * for a resume, which outlives its channel.
   */
  admit(transport: Transport, start = true): (() => void) | undefined {
    const { peer, maxSessions, clock, onerror } = this.#options;
    const open = this.#counting().#open;
    if (open >= maxSessions) {
      onerror(
        new WebRTCTransportError(
          `Refused a session of agent ${peer}: it has ${open} open, the most allowed (maxSessionsPerAgent)`,
        ),
      );
      refuseSession(
        transport,
        `Cannot open another MCP session as this agent has ${open} open, the most the desktop allows: close one and try again`,
        clock,
      );
      return undefined;
    }
    if (start && !this.#start(transport)) return undefined;
    this.#counting().#open++;
    let held = true;
    return () => {
      if (held) this.#counting().#open--;
      held = false;
    };
  }

  /** Takes a start from the rate, or refuses the session (`false`). */
  #start(transport: Transport): boolean {
    const { peer, startsPerSecond, clock, onerror } = this.#options;
    if (this.#starts.take()) return true;
    onerror(
      new WebRTCTransportError(
        `Refused a session of agent ${peer}: it starts sessions faster than ${startsPerSecond} a second (sessionStartsPerSecond)`,
      ),
    );
    refuseSession(
      transport,
      `Cannot open another MCP session as this agent starts sessions faster than the desktop allows (${startsPerSecond} a second, sessionStartsPerSecond): wait a second and try again, or keep sessions open instead of opening new ones`,
      clock,
    );
    return false;
  }

  /**
   * Holds a channel the agent opened until its first message says whether
   * it starts or resumes a session: at most `maxSessions` at once, whatever
   * the sessions held, each a start of the rate; or refuses it (`undefined`).
   * `release` (idempotent) lets it go. The session it may start then takes
   * its slot with `admit(session, false)`: its start was taken here.
   */
  hold(transport: Transport): (() => void) | undefined {
    const { peer, maxSessions, clock, onerror } = this.#options;
    // Every channel is a start, whatever it turns out to carry: a loop of
    // channels refused for their first message is held to the rate too.
    if (!this.#start(transport)) return undefined;
    const waiting = this.#counting().#waiting;
    if (waiting >= maxSessions) {
      onerror(
        new WebRTCTransportError(
          `Refused a channel of agent ${peer}: ${waiting} of its channels have not said yet what they carry, the most allowed (maxSessionsPerAgent)`,
        ),
      );
      refuseSession(
        transport,
        `Cannot open another MCP session as ${waiting} channels of this agent have not started yet, the most the desktop allows (maxSessionsPerAgent): wait for them and try again`,
        clock,
      );
      return undefined;
    }
    this.#counting().#waiting++;
    let held = true;
    return () => {
      if (held) this.#counting().#waiting--;
      held = false;
    };
  }
}

/**
 * Counts one agent's session starts against its rate: a token bucket that
 * holds `burst` starts and refills at `perSecond`.
 */
class StartRate {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(perSecond: number, burst: number, clock: Clock) {
    this.#rate = perSecond;
    this.#burst = burst;
    this.#clock = clock;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  /** Takes a start if the rate allows one now. */
  take(): boolean {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Refuses one session: its first request gets a JSON-RPC error with the
 * reason (the SDK's `connect()` rejects with it), then its channel closes.
 */
function refuseSession(transport: Transport, reason: string, clock: Clock): void {
  let done = false;
  const close = () => {
    if (done) return;
    done = true;
    clock.clearTimeout(timer);
    void transport.close();
  };
  transport.onmessage = (message) => {
    if (!("method" in message) || !("id" in message)) return;
    void transport.send({
      jsonrpc: "2.0",
      id: message.id,
      error: { code: SESSION_LIMIT_REACHED, message: reason },
    }).catch(() => {}).finally(close);
  };
  // An agent that sends nothing gets its channel closed after a while.
  const timer = clock.setTimeout(close, REFUSAL_TIMEOUT);
  transport.start().catch(close);
}

/** Throws unless `tools` is undefined or an array of tool names. */
export function assertToolNames(tools: unknown, action: string): void {
  if (tools === undefined) return;
  if (!Array.isArray(tools) || tools.some((tool) => typeof tool !== "string")) {
    throw new TypeError(
      `${action} as 'tools' must be an array of tool names: received ${JSON.stringify(tools)}`,
    );
  }
}

/**
 * The STUN/TURN servers a hub hands out: asked for where it can (a room mints
 * TURN credentials only on request), else as it holds them.
 */
export function hubIceServers(hub: unknown): Promise<IceServer[] | undefined> {
  const source = hub as {
    iceServers?: IceServer[];
    requestIceServers?: () => Promise<IceServer[] | undefined>;
  };
  return typeof source.requestIceServers === "function"
    ? source.requestIceServers()
    : Promise.resolve(source.iceServers);
}
