/**
 * The invites of a {@linkcode WebRTCListener}: their public shapes, the
 * checks of `invite()` and of kept records, and the book the listener keeps
 * of them (registered in the room, listed with their agents).
 *
 * @module
 */

import { GUEST_INVITE, INVITE_NAME, keyVerifier } from "./signaling/room_protocol.ts";
import type { SignalingHub } from "./signaling/signaling.ts";
import { deriveTicketKeys, formatTicket, parseTicket, type Ticket } from "./ticket.ts";
import { MAX_INVITE_TOOLS, MAX_INVITES } from "./constants.ts";

/** Options of {@linkcode WebRTCListener.invite}. */
export interface InviteOptions {
  /**
   * The invite's name: 1 to 64 letters, digits, `.`, `_` or `-`; unique
   * among the listener's invites. It names the agent in every event.
   */
  name: string;
  /**
   * The only tools the agent may use (enforced where the server's transport
   * is wrapped to read `Agent.tools`); absent means every tool.
   *
   * @default {undefined}
   */
  tools?: readonly string[];
  /**
   * When the invite stops being valid: agents that arrive after it are
   * refused by the desktop.
   *
   * @default {undefined} never
   */
  expiresAt?: Date;
}

/** An invite as it can be kept and given back to `listen({ invites })`. */
export interface InviteRecord {
  /** Its name. */
  readonly name: string;
  /** Its guest ticket: the agent's credential (keep it secret). */
  readonly ticket: string;
  /** The tools it may use, if limited. */
  readonly tools?: readonly string[];
}

/** One invite of a listener, as {@linkcode WebRTCListener.invites} lists it. */
export interface Invite extends InviteRecord {
  /** When it expires, if it does (from its ticket). */
  readonly expiresAt?: Date;
  /** How many agents hold a connection with it now. */
  readonly agents: number;
  /** Whether an agent holds a connection with it now. */
  readonly connected: boolean;
}

/** What {@linkcode WebRTCListener.revoke} did. */
export interface RevokeResult {
  /** The invite revoked. */
  readonly name: string;
  /** How many of its agents' connections the desktop closed. */
  readonly closed: number;
}

/** What the listener keeps of one invite. */
export interface InviteEntry {
  readonly name: string;
  readonly ticket?: string;
  readonly tools?: readonly string[];
  readonly expiresAt?: Date;
  readonly signalingKey?: CryptoKey;
}

/** What the listener needs of a hub to manage invites (a `SignalingRoom` joined as host). */
export interface InviteHub {
  invite(name: string, verifier: string): Promise<unknown>;
  revoke(name: string): Promise<unknown>;
}

/**
 * The invites agents may come with, by name; each has its own signalling
 * key. What the listener's `invite()`, `revoke()` and `invites` act on.
 */
export class InviteBook {
  readonly #entries = new Map<string, InviteEntry>();

  /** The invite of that name, if there is one. */
  get(name: string): InviteEntry | undefined {
    return this.#entries.get(name);
  }

  /** Whether there is an invite of that name. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Keeps an invite without telling the room (the guest ticket, whose slot the room keeps). */
  set(entry: InviteEntry): void {
    this.#entries.set(entry.name, entry);
  }

  /**
   * Forgets an invite here (from now on its hello opens with no key here,
   * whatever the room does) and tells the room, if it stores invites.
   * Resolves once the room has it revoked.
   */
  revoke(name: string, hubOf: SignalingHub): Promise<void> {
    this.#entries.delete(name);
    const hub = inviteHub(hubOf);
    // A room that no longer has it (made again since) admits it no more either.
    const roomDone = hub
      ? hub.revoke(name).then(() => {}, (error: Error) => {
        if (!/invite_not_found/.test(String(error?.message))) throw error;
      })
      : Promise.resolve();
    roomDone.catch(() => {});
    return roomDone;
  }

  /** The names of the invites. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Registers a checked invite in the room, then here. */
  async register(invite: CheckedInvite, hubOf: SignalingHub): Promise<void> {
    const { name } = invite;
    if (this.#entries.has(name)) {
      throw new TypeError(
        `Cannot invite "${name}" as an invite of that name exists: revoke it first, or pick another name`,
      );
    }
    // The room keeps a slot for "guest" whether or not this desktop serves it.
    const held = this.#entries.size + (this.#entries.has(GUEST_INVITE) ? 0 : 1);
    if (held >= MAX_INVITES) {
      throw new RangeError(
        `Cannot invite "${name}" as the room holds ${MAX_INVITES} invites ("guest" included), the most it keeps (MAX_INVITES): revoke one first`,
      );
    }
    const hub = inviteHub(hubOf);
    if (!hub) {
      throw new TypeError(
        `Cannot invite "${name}" as the hub does not store invites: listen on a signalling room (WebRTCListener.listen())`,
      );
    }
    // Held here first, so a second call with the same name fails at once.
    this.#entries.set(name, invite);
    try {
      await hub.invite(name, invite.verifier);
    } catch (error) {
      if (this.#entries.get(name) === invite) this.#entries.delete(name);
      throw error;
    }
  }

  /** The invites that have a ticket, each with how many of `agents` came with it. */
  list(agents: Iterable<{ readonly name?: string }>): Invite[] {
    const counts = new Map<string, number>();
    for (const agent of agents) {
      if (agent.name !== undefined) counts.set(agent.name, (counts.get(agent.name) ?? 0) + 1);
    }
    const list: Invite[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.ticket === undefined) continue;
      const agents = counts.get(entry.name) ?? 0;
      list.push(Object.freeze({
        name: entry.name,
        ticket: entry.ticket,
        ...(entry.tools ? { tools: entry.tools } : {}),
        ...(entry.expiresAt ? { expiresAt: new Date(entry.expiresAt.getTime()) } : {}),
        agents,
        connected: agents > 0,
      }));
    }
    return list;
  }
}

/** An invite record, checked and with its keys. */
export interface CheckedInvite extends InviteEntry {
  readonly ticket: string;
  readonly verifier: string;
  readonly signalingKey: CryptoKey;
}

/** Checks the options of `invite()`; throws a TypeError that says what is wrong. */
export function checkInviteOptions(options: InviteOptions): InviteOptions {
  const { name, tools, expiresAt } = options ?? {} as InviteOptions;
  checkInviteName(name);
  if (tools !== undefined) checkTools(name, tools);
  if (
    expiresAt !== undefined && (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime()))
  ) {
    throw new TypeError(`Cannot invite "${name}" as 'expiresAt' is not a valid Date`);
  }
  return {
    name,
    ...(tools ? { tools: Object.freeze([...tools]) } : {}),
    ...(expiresAt ? { expiresAt } : {}),
  };
}

function checkInviteName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !INVITE_NAME.test(name)) {
    throw new TypeError(
      `Cannot invite ${
        typeof name === "string" ? `"${clipName(name)}"` : "an agent"
      } as an invite's name must be 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
}

function checkTools(name: string, tools: unknown): void {
  if (!Array.isArray(tools)) {
    throw new TypeError(`Cannot invite "${name}" as 'tools' is not an array of tool names`);
  }
  if (tools.length > MAX_INVITE_TOOLS) {
    throw new RangeError(
      `Cannot invite "${name}" with ${tools.length} tools as an invite lists at most ${MAX_INVITE_TOOLS} (MAX_INVITE_TOOLS): leave 'tools' out to allow every tool`,
    );
  }
  for (const tool of tools) {
    if (typeof tool !== "string" || tool.length < 1 || tool.length > 128) {
      throw new TypeError(
        `Cannot invite "${name}" as a tool name must be a string of 1 to 128 characters: received ${
          JSON.stringify(tool)?.slice(0, 40)
        }`,
      );
    }
  }
}

/** Reads a kept invite record: a guest ticket of the host ticket's room, and its keys. */
export async function readInviteRecord(record: InviteRecord, host: Ticket): Promise<CheckedInvite> {
  const { name, tools } = record ?? {} as InviteRecord;
  checkInviteName(name);
  if (tools !== undefined) checkTools(name, tools);
  const ticket = parseTicket(record.ticket);
  if (
    ticket.kind !== "guest" || ticket.room !== host.room || ticket.url !== host.url ||
    ticket.hostVerifier !== host.hostVerifier
  ) {
    throw new TypeError(
      `Cannot restore invite "${name}" as its ticket is not a guest ticket of this room: keep the invites with their host ticket`,
    );
  }
  const keys = await deriveTicketKeys(ticket);
  return {
    name,
    ticket: formatTicket(ticket),
    ...(tools ? { tools: Object.freeze([...tools]) } : {}),
    ...(ticket.expiresAt ? { expiresAt: ticket.expiresAt } : {}),
    verifier: keys.guestVerifier,
    signalingKey: keys.signalingKey,
  };
}

/** The hub's invite operations, if it stores invites (a `SignalingRoom` joined as host). */
export function inviteHub(hub: SignalingHub): InviteHub | undefined {
  const source = hub as Partial<InviteHub>;
  return typeof source.invite === "function" && typeof source.revoke === "function"
    ? source as InviteHub
    : undefined;
}

/** The invite a hub says a peer came with, if it names invites. */
export function inviteNameOf(hub: SignalingHub, peer: string): string | undefined {
  const source = hub as { inviteOf?: (peer: string) => string | undefined };
  return typeof source.inviteOf === "function" ? source.inviteOf(peer) : undefined;
}

/** The verifier of a fresh random key that is thrown away: it admits nobody. */
export function unusableVerifier(): Promise<string> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return keyVerifier(Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(""));
}

/** Shortens a name from elsewhere for an error message. */
export function clipName(name: string): string {
  return name.length > 64 ? `${name.slice(0, 64)}…` : name;
}
