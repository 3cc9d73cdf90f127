/**
 * The signalling split between the direct attempts and the relay: relay
 * hellos are taken out for the relay, the rest goes to the direct attempts;
 * once muted (the relay took over), the direct attempts' messages are dropped
 * both ways and only a goodbye still counts.
 *
 * @module
 */

import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import { RELAY_HELLO } from "./crypto.ts";
import type { RelayCarrier } from "./protocol.ts";

/**
 * The signalling as the direct attempt sees it: relay hellos are taken out
 * for the relay; once muted (the relay took over), the direct attempt's
 * messages are dropped both ways and only a goodbye still counts.
 */
export class RelayDemux implements Signaling {
  readonly #inner: Signaling;
  #muted = false;
  #starting?: Promise<void>;
  onmessage?: (message: SignalingMessage) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onhello?: (message: SignalingMessage) => void;
  onbye?: (message: SignalingMessage) => void;
  onrelayclose?: () => void;

  constructor(inner: Signaling) {
    this.#inner = inner;
    inner.onmessage = (message) => {
      if (message.type === RELAY_HELLO) return this.onhello?.(message);
      if (!this.#muted) return this.onmessage?.(message);
      if (message.type === "bye") this.onbye?.(message);
    };
    inner.onclose = () => (this.#muted ? this.onrelayclose : this.onclose)?.();
    inner.onerror = (error) => this.onerror?.(error);
  }

  mute(): void {
    this.#muted = true;
  }

  /** The STUN/TURN servers the signalling hands out, if any (a room's TURN credentials). */
  get iceServers(): unknown {
    return (this.#inner as { iceServers?: unknown }).iceServers;
  }

  /** Whether the signalling is sealed end to end, as it says. */
  get authenticated(): boolean | undefined {
    return (this.#inner as RelayCarrier).authenticated;
  }

  /** The signalling's own {@linkcode Signaling.meetingPoint}. */
  get meetingPoint(): string | undefined {
    return this.#inner.meetingPoint;
  }

  start(options?: { initiator: boolean }): Promise<void> {
    this.#starting ??= Promise.resolve(this.#inner.start?.(options));
    return this.#starting;
  }

  send(message: SignalingMessage): Promise<void> {
    if (this.#muted) return Promise.resolve();
    return this.#inner.send(message);
  }

  sendRaw(message: SignalingMessage): Promise<void> {
    return this.#inner.send(message);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
