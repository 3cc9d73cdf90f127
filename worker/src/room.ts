/// <reference types="@cloudflare/workers-types" />
/**
 * One signalling room: a Durable Object that relays opaque signalling frames
 * between one host and its guests over hibernating WebSockets. Who a socket is
 * lives in its attachment and the room's verifiers in storage, so nothing is
 * lost when the object hibernates. It reads nothing of the client's request:
 * the worker hands it the checked join. The room protocol in docs/PROTOCOL.md is
 * the reference; `src/signaling/room_protocol.ts` is its code.
 *
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import {
  checkFrame,
  CLOSE,
  type ClosingErrorCode,
  decodeBase64Url,
  encodeBase64Url,
  ERROR_REPLIES_PER_SECOND,
  ERROR_REPLY_BURST,
  type ErrorCode,
  errorFrame,
  ERRORS,
  GUEST_ID,
  GUEST_INVITE,
  HOST,
  type IceServerFrame,
  type InviteRequest,
  keyDigest,
  MAX_INVITES,
  MAX_UNREAD_BYTES,
  pairRoomDigest,
  PROTOCOL,
  refOf,
  RELAY_FRAME_COST,
  type RevokeRequest,
  type Role,
  type RoomFrame,
  type SignalFrame,
  timingSafeEqual,
  VERIFIER,
  type WaitingHelloRequest,
} from "../../src/signaling/room_protocol.ts";
import {
  type Credentials,
  errorResponse,
  INTERNAL_ERROR,
  JOIN_HEADER,
  readJoin,
  refusal,
} from "./requests.ts";
import { cloudflareTurnServers, restTurnServer, type TurnEnv, turnTtl, turnUrls } from "./turn.ts";
import { takeToken, type TurnQuota } from "./turn_quota.ts";
import { count, marked, NOTHING_SENT, readUnread, seen, type Unread } from "./unread.ts";
import {
  encodeRelayFrame,
  MIN_RELAY_FRAME_BYTES,
  readRelayFrame,
  RELAY_DEFAULTS,
  RELAY_ERRORS,
  RELAY_FRAME,
  type RelayErrorCode,
  type RelayLimits,
} from "../../src/relay/protocol.ts";

/** Defaults of the limits a deployment may override with `vars`. */
export const DEFAULTS = {
  /** Guests at once in one room (`MAX_GUESTS`). */
  MAX_GUESTS: 8,
  /** Seconds an empty room keeps its verifiers (`ROOM_TTL_SECONDS`): 24 h. */
  ROOM_TTL_SECONDS: 86_400,
  /** Frames per second a socket may send, sustained (`RATE_PER_SECOND`). */
  RATE_PER_SECOND: 50,
  /** Frames a socket may send in one burst (`RATE_BURST`). */
  RATE_BURST: 200,
  /**
   * Seconds a socket may send nothing, not even `ping`, before the room closes
   * it (`SILENCE_SECONDS`): three missed pings of the client (every 20 s),
   * with room for a browser tab whose timers are throttled to once a minute.
   */
  SILENCE_SECONDS: 90,
  /**
   * TURN credentials one client address may be minted per hour, across all
   * rooms (`TURN_PER_ADDRESS_PER_HOUR`): a desktop asks once per half
   * lifetime and each agent once per connection, so a dozen covers a desktop
   * and its agents behind one NAT, while a stranger's rooms of its own do not
   * multiply what it gets.
   */
  TURN_PER_ADDRESS_PER_HOUR: 12,
  /**
   * TURN credentials one room may mint per hour (`TURN_PER_ROOM_PER_HOUR`):
   * its host and `MAX_GUESTS` guests reconnecting a few times each.
   */
  TURN_PER_ROOM_PER_HOUR: 30,
} as const;

/**
 * The bindings of the worker: the rooms, the limits (`vars`, strings) and
 * the TURN configuration (see `turn.ts`).
 */
export interface Env extends TurnEnv {
  /** The `Room` namespace. */
  ROOMS: DurableObjectNamespace<Room>;
  /** The `TurnQuota` namespace: one per client address. */
  TURN_QUOTAS: DurableObjectNamespace<TurnQuota>;
  /** TURN credentials one client address may be minted per hour. */
  TURN_PER_ADDRESS_PER_HOUR?: string;
  /** TURN credentials one room may mint per hour. */
  TURN_PER_ROOM_PER_HOUR?: string;
  /** Guests at once in one room. */
  MAX_GUESTS?: string;
  /** Bytes a guest's socket may leave unread (`MAX_UNREAD_BYTES`); the host gets a share per guest. */
  MAX_UNREAD_BYTES?: string;
  /** Seconds an empty room keeps its verifiers. */
  ROOM_TTL_SECONDS?: string;
  /** Frames per second a socket may send, sustained. */
  RATE_PER_SECOND?: string;
  /** Frames a socket may send in one burst. */
  RATE_BURST?: string;
  /** Seconds a socket may send nothing, not even `ping`, before the room closes it. */
  SILENCE_SECONDS?: string;
  /** `"off"` turns the relay off; anything else leaves it on. */
  RELAY?: string;
  /** Bytes per second a room relays, both ways and all guests together. */
  RELAY_BYTES_PER_SECOND?: string;
  /** The largest relay frame, in bytes (at least `MIN_RELAY_FRAME_BYTES`). */
  RELAY_MAX_FRAME_BYTES?: string;
}

/** Who a socket is, and its rate-limit bucket; kept in its attachment. */
interface Attachment {
  peer: string;
  role: Role;
  /** Tokens left in the bucket when the last frame arrived. */
  tokens: number;
  /** When the last frame (or the join) arrived (ms since the epoch). */
  at: number;
  /** Set once the room has announced this socket's leave. */
  gone: boolean;
  /**
   * For a socket the room has ended (replaced, refused): when it closes the
   * socket itself if the client has not (ms since the epoch), and with what.
   */
  closeAt?: number;
  /** The close code for `closeAt`. */
  closeCode?: number;
  /** The close reason for `closeAt`: the error code the socket was sent. */
  closeReason?: string;
  /** The client's address, for the TURN credentials it may be minted. */
  address?: string;
  /** Error replies left in the socket's budget when the last frame arrived. */
  errors?: number;
  /** A guest's: the name of the invite whose key it joined with. */
  invite?: string;
  /** What the room sent the socket and what it showed it read (`MAX_UNREAD_BYTES`). */
  unread?: Unread;
  /**
   * The host's of a paired room (see {@linkcode pairRoomDigest}): its key's
   * verifier and the guest verifier it joined with, which the room id binds.
   * Nothing of such a room is stored, so the state is set up again from here
   * after a wake-up.
   */
  paired?: { host: string; guest: string };
}

/** A socket and who it is. */
interface Member {
  ws: WebSocket;
  me: Attachment;
}

/** The room's state: the digest of the host key, and the verifier of each invite by name. */
interface RoomState {
  host: Uint8Array;
  invites: Map<string, Uint8Array>;
}

/**
 * The room's state as stored under {@linkcode VERIFIERS}. A room set up before
 * invites stored `guest` alone: it reads as the invite named `guest`.
 */
interface StoredVerifiers {
  host: Uint8Array;
  guest?: Uint8Array;
  invites?: [string, Uint8Array][];
}

/** The storage key of the room's verifiers: the host key's digest and the invites'. */
const VERIFIERS = "verifiers";

/**
 * The length of a room id bound to its keys (43 = base64url of 32 bytes): the
 * verifier of its host key (a version 1 ticket's room), or the digest of its
 * host's and guest's verifiers (a version 2 ticket's, `pairRoomDigest`).
 */
const BOUND_ROOM_ID_LENGTH = 43;

/**
 * How long a socket the room ended (a replaced host, a refused join) has to
 * close itself after its error frame, before the room closes it. The client
 * closes: a close the room starts from another socket's request (or from its
 * alarm) left the connection half-closed in workerd (CLOSE-WAIT) until the
 * object hibernated, once per replaced host.
 */
const CLOSE_GRACE_MS = 2_000;

/** The storage key of when an empty room expires (ms since the epoch). */
const EXPIRES = "expires";

/**
 * How far a socket's attachment may lag behind its state in memory, in ms of
 * its last frame's time (`ATTACHMENT_SAVE_MS`). The room keeps each socket's
 * bucket and last frame's time in memory between frames and writes them to
 * the attachment (which survives hibernation) at most once a second, at
 * once when the bucket is below half full or the socket was refused a frame
 * or is leaving. An object hibernates only after 10 s without events, so what
 * it reads back after waking is at most 1 s old: the silence limit may end a
 * socket up to 1 s early, and a bucket that was above half full may come back
 * fuller by what 1 s of frames took from it.
 */
const ATTACHMENT_SAVE_MS = 1_000;

/**
 * How long after a join the room waits before it writes what the join changed
 * (`SETUP_WRITE_DELAY_MS`): a new room's verifiers, the end of an empty room's
 * expiry, the alarm for silent sockets. A room that empties sooner writes it
 * all in one commit with its expiry, so a short pairing costs one storage
 * write. Meanwhile the verifiers are in memory only: the pending timer keeps
 * the object from hibernating (which it would not do within 10 s of the join
 * anyway), so an object that lost its memory lost its sockets too, and the
 * host sets the room up again when it rejoins. Short, as an eviction of the
 * object (a reset) waits for the timer; at most half the silence limit, so
 * the alarm is set in time.
 */
const SETUP_WRITE_DELAY_MS = 1_000;

/** The storage key of the room's bucket of TURN credentials (`TURN_PER_ROOM_PER_HOUR`). */
const TURN_BUCKET = "turn";

/** The window of the TURN credential limits: an hour, refilled evenly. */
const TURN_WINDOW_SECONDS = 3600;

/**
 * The Durable Object behind `GET /v1/rooms/:room`: checks keys against the
 * room's verifiers, accepts sockets with the Hibernation API, and relays
 * `signal` frames between the host and its guests, stamping `from` itself.
 *
 * @example Bind it in wrangler.jsonc and hand it a checked join
 * ```ts ignore
 * const stub = env.ROOMS.get(env.ROOMS.idFromName(join.room));
 * return stub.fetch("https://room.internal/join", {
 *   headers: { Upgrade: "websocket", [JOIN_HEADER]: JSON.stringify(join) },
 * });
 * ```
 */
export class Room extends DurableObject<Env> {
  /**
   * The room's relay budget, in memory only: frames keep the object awake, and
   * a room that hibernated relayed nothing for a while, so a full bucket is right.
   */
  #relayBudget?: { tokens: number; at: number };

  /**
   * The room's verifiers, read from storage once per wake-up and written
   * through: `null` for a room nobody set up, `undefined` until read.
   */
  #state?: RoomState | null;

  /** When the empty room expires, as stored: `null` if not set, `undefined` until read. */
  #expires?: number | null;

  /** The room's alarm, as set: `null` if none, `undefined` until read. */
  #alarm?: number | null;

  /** Whether the verifiers in memory are newer than the stored ones (a host's join not written yet). */
  #unsaved = false;

  /**
   * Whether storage holds anything of the room (its verifiers, its expiry,
   * its TURN bucket), as read once per wake-up and kept up to date: a paired
   * room that never stored anything has nothing to expire.
   */
  #kept = false;

  /** The timer of the write a join left pending (see {@linkcode SETUP_WRITE_DELAY_MS}). */
  #settleTimer?: ReturnType<typeof setTimeout>;

  /** {@linkcode SETUP_WRITE_DELAY_MS}, which a test's subclass may change. */
  protected setupWriteDelayMs: number = SETUP_WRITE_DELAY_MS;

  /**
   * Each socket's attachment as it is now, and the last frame's time of the
   * copy saved in the socket (see {@linkcode ATTACHMENT_SAVE_MS}); empty
   * after a wake-up, then filled from the attachments.
   */
  #members = new WeakMap<WebSocket, { me: Attachment; savedAt: number }>();
  /**
   * The host's waiting hellos (its `waiting_hello` frames), by invite, each
   * with the socket that left it: at most one per invite the room knows, in
   * memory only (lost on hibernation: the next guest then waits for the
   * host's hello as before), each handed to one guest of its invite.
   */
  #hellos = new Map<string, { ws: WebSocket; data: Record<string, unknown> }>();

  /** Keeps construction cheap: `ping` is answered without waking the object. */
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /**
   * Checks the key of the join the worker checked and handed over, then
   * accepts the WebSocket or refuses it with a close code. An unexpected
   * exception is logged and answered as the JSON error of every route.
   */
  override async fetch(request: Request): Promise<Response> {
    try {
      return await this.#join(request);
    } catch (error) {
      console.error("Room failed to handle a join:", error);
      return errorResponse(INTERNAL_ERROR);
    }
  }

  async #join(request: Request): Promise<Response> {
    const credentials = readJoin(request.headers.get(JOIN_HEADER));
    if (!credentials) {
      return errorResponse(refusal(
        400,
        "bad_join",
        "A room is only reached through the worker: connect to GET /v1/rooms/<room id>",
      ));
    }
    // One hash per join: the key's digest is compared with every verifier it may match.
    const keyHash = await keyDigest(credentials.key);
    const room = credentials.room;
    // A room id of 43 characters is bound to its keys (a ticket's room): only
    // the key it was derived from may open the room, so nobody can claim it
    // first. One that is no digest's base64url (its last character carries
    // bits no digest has) matches no key: nobody can open it.
    const bound = room.length === BOUND_ROOM_ID_LENGTH;
    const roomBytes = bound ? decodeBase64Url(room) ?? new Uint8Array() : undefined;
    // A paired room's id is the digest of its host's and its guest's verifiers.
    const pairs = async (hostVerifier: string, guestVerifier: string) =>
      roomBytes !== undefined &&
      timingSafeEqual(await pairRoomDigest(hostVerifier, guestVerifier), roomBytes);
    let paired: Attachment["paired"];
    if (credentials.role === "host" && roomBytes && !timingSafeEqual(keyHash, roomBytes)) {
      paired = { host: encodeBase64Url(keyHash), guest: credentials.guestVerifier! };
      if (!(await pairs(paired.host, paired.guest))) {
        return this.#refuse(credentials, "key_refused");
      }
    }
    // A guest's pair is checked before the state is read, so that nothing
    // awaits between that read and the decision it makes.
    const guestPairs = credentials.role === "guest" && credentials.hostVerifier !== undefined &&
      await pairs(credentials.hostVerifier, encodeBase64Url(keyHash));
    const stored = await this.#load();
    let invite: string | undefined;
    /** Whether this host's join refused the guests of `guest` (`INVITES_ONLY`). */
    let revokedGuests = false;
    if (credentials.role === "host") {
      if (stored && !timingSafeEqual(keyHash, stored.host)) {
        return this.#refuse(credentials, "key_refused");
      }
      const guest = decodeBase64Url(credentials.guestVerifier!)!;
      const current = stored?.invites.get(GUEST_INVITE);
      // What changes is written later, with whatever else the room has to
      // write (see SETUP_WRITE_DELAY_MS).
      if (credentials.invitesOnly) {
        // No guest with the host's guest verifier: in a paired room, whose id
        // would admit it, the refusal is what the room stores.
        if (!stored || current) {
          const invites = new Map(stored?.invites);
          invites.delete(GUEST_INVITE);
          this.#state = { host: keyHash, invites };
          this.#unsaved = true;
          this.#hellos.delete(GUEST_INVITE);
          revokedGuests = true;
        }
      } else if (paired && !stored) {
        // A paired room's id holds its guest verifier: in memory only.
        this.#state = { host: keyHash, invites: new Map([[GUEST_INVITE, guest]]) };
      } else if (!stored || !current || !timingSafeEqual(guest, current)) {
        // The guest verifier of every host join is the invite named `guest`.
        const invites = new Map(stored?.invites);
        invites.set(GUEST_INVITE, guest);
        this.#state = { host: keyHash, invites };
        this.#unsaved = true;
      }
    } else if (stored) {
      // What the room stored (its invites, a revoked `guest`) decides.
      invite = findInvite(stored, keyHash);
      if (invite === undefined) return this.#refuse(credentials, "key_refused");
    } else {
      // Nothing stored: only the guest of a paired room, by the room id itself.
      // Any other key may be an invite's whose host has not set the room up
      // yet (or whose room expired): the room cannot tell, so it says that.
      if (!guestPairs) return this.#refuse(credentials, "room_not_found");
      invite = GUEST_INVITE;
    }
    const peer = credentials.role === "host" ? HOST : randomGuestId();
    // From here to the response nothing awaits, so no other request interleaves.
    const max = limit(this.env.MAX_GUESTS, DEFAULTS.MAX_GUESTS);
    if (credentials.role === "guest" && this.#live("guest").length >= max) {
      return this.#refuse(credentials, "room_full");
    }
    // The replaced host closes its socket on the error frame (see CLOSE_GRACE_MS).
    let ended = false;
    for (const old of this.#live("host").filter(() => peer === HOST)) {
      sendError(old.ws, "host_replaced");
      this.#leave(old.ws, old.me, "host_replaced");
      ended = true;
    }
    // Guests of `guest` that a host joining with INVITES_ONLY refused go, as on a revoke.
    if (revokedGuests && this.#closeInvite(GUEST_INVITE) > 0) ended = true;
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    // The tag is the peer id: a frame's target is found by it.
    this.ctx.acceptWebSocket(server, [peer]);
    const me: Attachment = {
      peer,
      role: credentials.role,
      tokens: limit(this.env.RATE_BURST, DEFAULTS.RATE_BURST) * this.#share(credentials.role),
      at: Date.now(),
      gone: false,
      ...credentials.address !== undefined && { address: credentials.address },
      ...invite !== undefined && { invite },
      ...paired && { paired },
    };
    this.#keep(server, me, true);
    const others = this.#live(me.role === "host" ? "guest" : "host");
    const peerInvites = me.role === "host"
      ? Object.fromEntries(others.flatMap((o) => o.me.invite ? [[o.me.peer, o.me.invite]] : []))
      : {};
    // The host's waiting hello of this guest's invite (sealed with that
    // invite's key) goes to it, and is forgotten.
    const waiting = invite === undefined ? undefined : this.#hellos.get(invite);
    const hello = waiting && others.some((o) => o.ws === waiting.ws) ? waiting.data : undefined;
    if (hello) this.#hellos.delete(invite!);
    server.send(
      JSON.stringify(
        {
          type: "welcome",
          peer,
          role: me.role,
          peers: others.map((o) => o.me.peer),
          ...this.#handsOutIce() && { ice: true },
          relay: (this.#relayLimits() ?? null) as Record<string, unknown> | null,
          ...Object.keys(peerInvites).length > 0 && { peerInvites },
          ...me.role === "host" && { hellos: true },
        } satisfies RoomFrame,
      ),
    );
    if (hello) {
      this.#deliver(server, JSON.stringify({ type: "signal", from: HOST, data: hello }));
    }
    for (const other of others) {
      send(other.ws, {
        type: "join",
        peer,
        ...invite !== undefined && { invite },
        ...hello && { hello: true },
      });
    }
    // The sockets it ended need the alarm now; anything else waits (SETUP_WRITE_DELAY_MS).
    if (ended) await this.#settle(me.at + CLOSE_GRACE_MS);
    else this.#scheduleSettle();
    return upgrade(client, credentials);
  }

  /**
   * The room's verifiers: read from storage on the first need after a
   * wake-up, or, in a paired room that stored none, set up again from its
   * host's attachment. Those of a host's join not written yet are in memory,
   * which the object keeps until they are (see {@linkcode SETUP_WRITE_DELAY_MS}).
   */
  async #load(): Promise<RoomState | null> {
    if (this.#state === undefined) {
      const stored = await this.ctx.storage.get([VERIFIERS, EXPIRES, TURN_BUCKET]);
      // A join that awaited the same read meanwhile may have set the state since.
      if (this.#state === undefined) {
        const verifiers = stored.get(VERIFIERS) as StoredVerifiers | undefined;
        const paired = verifiers ? undefined : this.#live("host")[0]?.me.paired;
        this.#state = verifiers ? readVerifiers(verifiers) : paired
          ? {
            host: decodeBase64Url(paired.host)!,
            invites: new Map([[GUEST_INVITE, decodeBase64Url(paired.guest)!]]),
          }
          : null;
        this.#expires = (stored.get(EXPIRES) as number | undefined) ?? null;
        // A TURN bucket written meanwhile set it already.
        this.#kept ||= stored.size > 0;
      }
    }
    return this.#state;
  }

  /** Replaces the room's verifiers, in memory and in storage. */
  async #store(state: RoomState): Promise<void> {
    this.#state = state;
    await this.#saveVerifiers();
  }

  /** Writes the verifiers in memory (not awaited, so that writes issued with it go in one commit). */
  #saveVerifiers(): Promise<void> {
    const state = this.#state!;
    this.#unsaved = false;
    this.#kept = true;
    return this.ctx.storage.put<StoredVerifiers>(VERIFIERS, {
      host: state.host,
      invites: [...state.invites],
    });
  }

  /** Writes what joins left pending in {@linkcode SETUP_WRITE_DELAY_MS}, unless the room empties first. */
  #scheduleSettle(): void {
    // A set alarm fires before a new socket could fall silent: a join into a settled room needs nothing.
    if (!this.#unsaved && this.#expires === null && typeof this.#alarm === "number") return;
    if (this.#settleTimer !== undefined) return;
    const silence = limit(this.env.SILENCE_SECONDS, DEFAULTS.SILENCE_SECONDS);
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = undefined;
      if (this.#live().length === 0) return; // the last close wrote the expiry
      this.#settle().catch((error) => console.error("Room failed to write its state:", error));
    }, Math.min(this.setupWriteDelayMs, (silence * 1000) / 2));
  }

  /**
   * Brings storage up to an occupied room's state, in one commit: the
   * verifiers if a join changed them, no expiry, and the alarm by the first
   * moment a socket could have fallen silent (or by `at`).
   */
  async #settle(at = Infinity): Promise<void> {
    await this.#load();
    this.#alarm ??= await this.ctx.storage.getAlarm();
    const due = Math.min(at, ...this.#live().map(({ ws, me }) => this.#silentAt(ws, me)));
    // Issued without awaiting in between, so they go as one commit.
    const writes: Promise<unknown>[] = [];
    if (this.#unsaved && this.#state) writes.push(this.#saveVerifiers());
    if (this.#expires !== null) {
      writes.push(this.ctx.storage.delete(EXPIRES));
      this.#expires = null;
    }
    if (due !== Infinity && (this.#alarm === null || this.#alarm > due)) {
      writes.push(this.ctx.storage.setAlarm(due));
      this.#alarm = due;
    }
    await Promise.all(writes);
  }

  /**
   * Keeps the host's waiting hello for the next guest of its invite,
   * replacing the one before: only for an invite the room knows, so that
   * what it holds stays bounded by its invites.
   *
   * @returns The error frame to refuse with, if any.
   */
  async #leaveHello(ws: WebSocket, frame: WaitingHelloRequest): Promise<string | undefined> {
    if (frame.invite !== GUEST_INVITE && !(await this.#load())?.invites.has(frame.invite)) {
      return errorFrame("invite_not_found", frame.ref);
    }
    this.#hellos.set(frame.invite, { ws, data: frame.data });
  }

  /**
   * Adds or replaces an invite (the host's `invite` frame). Sending the same
   * verifier again writes nothing. Guests already admitted with an invite
   * that is replaced stay: only `revoke` ends them.
   *
   * @returns The answer, or the error frame to refuse with.
   */
  async #invite(frame: InviteRequest): Promise<{ answer: string } | { refusal: string }> {
    const state = await this.#load();
    if (!state) return { refusal: errorFrame("internal_error", frame.ref) };
    const verifier = decodeBase64Url(frame.verifier)!;
    const current = state.invites.get(frame.name);
    if (!current || !timingSafeEqual(current, verifier)) {
      // One slot stays free for `guest`, which every host join sets.
      const others = [...state.invites.keys()].filter((name) => name !== GUEST_INVITE).length;
      if (!current && frame.name !== GUEST_INVITE && others >= MAX_INVITES - 1) {
        return { refusal: errorFrame("too_many_invites", frame.ref) };
      }
      const invites = new Map(state.invites);
      invites.set(frame.name, verifier);
      // A hello left for the replaced key's guests would not open for the new one's.
      this.#hellos.delete(frame.name);
      await this.#store({ host: state.host, invites });
    }
    return {
      answer: JSON.stringify(
        {
          type: "invited",
          name: frame.name,
          ...frame.ref !== undefined && { ref: frame.ref },
        } satisfies RoomFrame,
      ),
    };
  }

  /**
   * Revokes an invite (the host's `revoke` frame): its key is refused from
   * now on, and every guest admitted with it gets `revoked` and is closed
   * (the host sees each one's `leave` before the answer).
   *
   * @returns The answer, or the error frame to refuse with.
   */
  async #revoke(frame: RevokeRequest): Promise<{ answer: string } | { refusal: string }> {
    const state = await this.#load();
    if (!state?.invites.has(frame.name)) {
      return { refusal: errorFrame("invite_not_found", frame.ref) };
    }
    const invites = new Map(state.invites);
    invites.delete(frame.name);
    this.#hellos.delete(frame.name);
    await this.#store({ host: state.host, invites });
    const closed = this.#closeInvite(frame.name);
    // The alarm closes the sockets whose clients do not close themselves.
    if (closed > 0) await this.#arm(Date.now() + CLOSE_GRACE_MS);
    return {
      answer: JSON.stringify(
        {
          type: "revoked",
          name: frame.name,
          closed,
          ...frame.ref !== undefined && { ref: frame.ref },
        } satisfies RoomFrame,
      ),
    };
  }

  /**
   * Sends every guest of an invite `revoked` and ends its socket (the client
   * closes it, or the alarm after {@linkcode CLOSE_GRACE_MS}).
   *
   * @returns How many it ended.
   */
  #closeInvite(name: string): number {
    let closed = 0;
    for (const { ws, me } of this.#live("guest")) {
      if (me.invite !== name) continue;
      try {
        sendError(ws, "revoked");
      } catch { /* the socket is going anyway */ }
      this.#leave(ws, me, "revoked");
      closed++;
    }
    return closed;
  }

  /**
   * Accepts, sends one error frame and leaves the closing to the client (see
   * {@linkcode CLOSE_GRACE_MS}): the only refusal a browser can read. The
   * socket is not hibernatable: a close from a timer of its own ends the
   * connection, where the alarm's close of a hibernatable socket left it
   * half-closed (CLOSE-WAIT) until the object had been idle for 10 s.
   */
  #refuse(
    credentials: Credentials,
    code: "key_refused" | "room_not_found" | "room_full",
  ): Response {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    server.accept();
    sendError(server, code);
    const timer = setTimeout(() => {
      try {
        server.close(CLOSE[code], code);
      } catch { /* closed meanwhile */ }
    }, CLOSE_GRACE_MS);
    server.addEventListener("close", (event) => {
      clearTimeout(timer);
      try {
        server.close(event.code, event.reason);
      } catch { /* already closed */ }
    });
    return upgrade(client, credentials);
  }

  /** Whether the room hands out ICE servers (on request): TURN or Cloudflare is configured. */
  #handsOutIce(): boolean {
    const env = this.env;
    return turnUrls(env).length > 0 ||
      (env.CLOUDFLARE_TURN_KEY_ID !== undefined && env.CLOUDFLARE_TURN_API_TOKEN !== undefined &&
        env.CLOUDFLARE_TURN_KEY_ID !== "" && env.CLOUDFLARE_TURN_API_TOKEN !== "");
  }

  /**
   * Answers a member's request for ICE servers: one credential from its
   * address's quota (`TURN_PER_ADDRESS_PER_HOUR`, across rooms) and one from
   * the room's (`TURN_PER_ROOM_PER_HOUR`), then credentials minted for it.
   *
   * @returns The frame to send: the servers, or an error frame.
   */
  async #iceRequest(
    me: Attachment,
    ref?: string | number,
  ): Promise<{ servers: string } | { refusal: string }> {
    if (!this.#handsOutIce()) {
      return {
        servers: JSON.stringify({ type: "ice_servers", iceServers: [] } satisfies RoomFrame),
      };
    }
    const quotas = this.env.TURN_QUOTAS;
    const perAddress = limit(
      this.env.TURN_PER_ADDRESS_PER_HOUR,
      DEFAULTS.TURN_PER_ADDRESS_PER_HOUR,
    );
    const perRoom = limit(this.env.TURN_PER_ROOM_PER_HOUR, DEFAULTS.TURN_PER_ROOM_PER_HOUR);
    // A join without an address (not through the edge) shares one quota with all such joins.
    const quota = quotas.get(quotas.idFromName(me.address ?? "unknown"));
    // The bucket may be stored below: the room expires once empty, so it goes
    // too. Said before the quota is asked, as the room's last socket may close
    // while it waits for the answer, and that close sets the expiry only for a
    // room that keeps something.
    this.#kept = true;
    if (
      !(await quota.take(perAddress, TURN_WINDOW_SECONDS)) ||
      !(await takeToken(this.ctx.storage, TURN_BUCKET, perRoom, TURN_WINDOW_SECONDS))
    ) {
      return { refusal: errorFrame("ice_servers_limited", ref) };
    }
    const iceServers = await this.#iceServers(me.peer);
    if (iceServers.length === 0) return { refusal: errorFrame("ice_servers_unavailable", ref) };
    const ttl = turnTtl(this.env);
    return {
      servers: JSON.stringify({ type: "ice_servers", iceServers, ttl } satisfies RoomFrame),
    };
  }

  /**
   * The STUN/TURN servers to hand a member who asked: credentials minted
   * with `TURN_SECRET`, and Cloudflare's (asked once per half TTL and kept in
   * memory). A source that fails is logged and left out.
   */
  async #iceServers(peer: string): Promise<IceServerFrame[]> {
    const env = this.env;
    const ttl = turnTtl(env);
    const now = Date.now();
    const servers: IceServerFrame[] = [];
    const urls = turnUrls(env);
    if (urls.length > 0) {
      servers.push(
        env.TURN_SECRET
          ? await restTurnServer(env.TURN_SECRET, urls, peer, Math.floor(now / 1000) + ttl)
          : { urls },
      );
    }
    if (env.CLOUDFLARE_TURN_KEY_ID && env.CLOUDFLARE_TURN_API_TOKEN) {
      if (!this.#cloudflare || this.#cloudflare.until <= now) {
        try {
          this.#cloudflare = {
            servers: await cloudflareTurnServers(
              env.CLOUDFLARE_TURN_KEY_ID,
              env.CLOUDFLARE_TURN_API_TOKEN,
              ttl,
              fetch,
            ),
            until: now + (ttl * 1000) / 2,
          };
        } catch (error) {
          console.error("Room could not get Cloudflare TURN credentials:", error);
        }
      }
      if (this.#cloudflare) servers.push(...this.#cloudflare.servers);
    }
    return servers;
  }

  /** Cloudflare TURN credentials, shared by the members while at least half their TTL is left. */
  #cloudflare?: { servers: IceServerFrame[]; until: number };

  /**
   * How many guests' worth of frames a socket may send: the host talks to
   * every guest, so its budget is that of `MAX_GUESTS` guests.
   */
  #share(role: Role): number {
    return role === "host" ? limit(this.env.MAX_GUESTS, DEFAULTS.MAX_GUESTS) : 1;
  }

  /**
   * Charges one frame to the socket's rate limit (every frame, text or
   * binary), then relays it; a frame the room refuses gets an error frame, as
   * long as the socket's error budget lasts. An unexpected exception is logged
   * and answered with an `internal_error` frame; the socket stays.
   */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    let member: Member | undefined;
    let refusal: string | undefined;
    try {
      member = this.#charge(ws, message);
      if (!member) return;
      if (typeof message !== "string") {
        refusal = this.#forward(member, message);
      } else {
        const frame = checkFrame(message, member.me.role);
        if ("code" in frame) refusal = errorFrame(frame.code, frame.ref);
        else if ("to" in frame) refusal = this.#relay(member, frame);
        else if (frame.type === "seen") refusal = this.#seen(ws, frame.mark);
        else if (frame.type === "waiting_hello") refusal = await this.#leaveHello(ws, frame);
        else if (frame.type === "invite" || frame.type === "revoke") {
          const answer = frame.type === "invite"
            ? await this.#invite(frame)
            : await this.#revoke(frame);
          if ("answer" in answer) return this.#deliver(ws, answer.answer);
          refusal = answer.refusal;
        } else {
          // Servers are an answer, not a refusal: they cost the frame, not the error budget.
          const answer = await this.#iceRequest(member.me, frame.ref);
          if ("servers" in answer) return this.#deliver(ws, answer.servers);
          refusal = answer.refusal;
        }
      }
    } catch (error) {
      console.error("Room failed to handle a frame:", error);
      refusal = errorFrame("internal_error", refOf(message));
    }
    if (refusal === undefined) return;
    try {
      // A failure of the room's own is answered outside the socket's error budget.
      if (member) this.#reply(member.ws, refusal);
      else ws.send(refusal);
    } catch { /* the socket closed meanwhile */ }
  }

  /**
   * Takes what a frame costs from the socket's token bucket
   * ({@linkcode RELAY_FRAME_COST} for a relay frame, else one) and refills its
   * error budget. An empty bucket closes the socket as `rate_limited`.
   *
   * @returns The socket's member, updated, or `undefined` if the frame goes no further.
   */
  #charge(ws: WebSocket, message: string | ArrayBuffer): Member | undefined {
    const me = this.#member(ws);
    if (!me || me.gone) return undefined;
    const now = Date.now();
    const share = this.#share(me.role);
    const rate = limit(this.env.RATE_PER_SECOND, DEFAULTS.RATE_PER_SECOND) * share;
    const burst = limit(this.env.RATE_BURST, DEFAULTS.RATE_BURST) * share;
    const cost = isRelayFrame(message) ? RELAY_FRAME_COST : 1;
    const tokens = Math.min(burst, me.tokens + ((now - me.at) / 1000) * rate) - cost;
    if (tokens < 0) {
      // Closed from the socket's own handler: the close leaves no half-closed connection.
      sendError(ws, "rate_limited");
      this.#leave(ws, me);
      ws.close(CLOSE.rate_limited, "rate_limited");
      return undefined;
    }
    const errors = Math.min(
      ERROR_REPLY_BURST,
      (me.errors ?? ERROR_REPLY_BURST) + ((now - me.at) / 1000) * ERROR_REPLIES_PER_SECOND,
    );
    const charged: Attachment = { ...me, tokens, at: now, errors };
    this.#keep(ws, charged, tokens < burst / 2);
    return { ws, me: charged };
  }

  /**
   * Sends one error frame, from the socket's error budget
   * ({@linkcode ERROR_REPLY_BURST}); a socket whose budget is spent gets
   * `too_many_errors` and is closed, so what the room queues for a socket
   * that never reads stays bounded.
   */
  #reply(ws: WebSocket, frame: string): void {
    // Read again: a request for ICE servers may have awaited meanwhile.
    const me = this.#member(ws);
    if (!me || me.gone) return;
    const errors = (me.errors ?? ERROR_REPLY_BURST) - 1;
    if (errors < 0) {
      sendError(ws, "too_many_errors");
      this.#leave(ws, me);
      ws.close(CLOSE.too_many_errors, "too_many_errors");
      return;
    }
    this.#keep(ws, { ...me, errors }, true);
    this.#deliver(ws, frame);
  }

  /**
   * Sends one message, counted in the socket's budget of unread bytes
   * ({@linkcode MAX_UNREAD_BYTES}, a share per guest for the host), with a
   * mark after each eighth of it; a message that would go beyond the budget
   * is not sent: the socket gets `unread_limit` and is closed, as it reads
   * nothing of what the room holds for it (workerd has no `bufferedAmount`).
   */
  #deliver(ws: WebSocket, message: string | Uint8Array): void {
    const me = this.#member(ws);
    if (!me || me.gone) return;
    const budget = limit(this.env.MAX_UNREAD_BYTES, MAX_UNREAD_BYTES) * this.#share(me.role);
    const counted = count(me.unread ?? NOTHING_SENT, message, budget);
    if (!counted) {
      sendError(ws, "unread_limit");
      this.#leave(ws, me);
      ws.close(CLOSE.unread_limit, "unread_limit");
      return;
    }
    ws.send(message);
    let unread = counted.unread;
    if (counted.mark) {
      const token = Array.from(
        crypto.getRandomValues(new Uint8Array(8)),
        (byte) => byte.toString(16).padStart(2, "0"),
      ).join("");
      const frame = JSON.stringify({ type: "mark", mark: token } satisfies RoomFrame);
      ws.send(frame);
      unread = marked(unread, frame, token);
    }
    this.#keep(ws, { ...me, unread }, true);
  }

  /** Takes a socket's echo of a mark; returns the error frame to answer with, if it names none. */
  #seen(ws: WebSocket, mark: string): string | undefined {
    const me = this.#member(ws);
    const unread = me && seen(me.unread ?? NOTHING_SENT, mark);
    if (!me || !unread) return errorFrame("unknown_mark");
    this.#keep(ws, { ...me, unread }, true);
  }

  /** Relays one signal frame; returns the error frame to answer with, if refused. */
  #relay({ me }: Member, frame: SignalFrame): string | undefined {
    const target = this.#peerSocket(frame.to, me.role === "host" ? "guest" : "host");
    if (!target) return errorFrame("unknown_peer", frame.ref);
    this.#deliver(target, JSON.stringify({ type: "signal", from: me.peer, data: frame.data }));
  }

  /** The live socket of a peer of the given role, found by its tag. */
  #peerSocket(peer: string, role: Role): WebSocket | undefined {
    return this.ctx.getWebSockets(peer).find((ws) => {
      const me = this.#member(ws);
      return me !== null && !me.gone && me.role === role && me.peer === peer;
    });
  }

  /** The relay's limits from `vars`, or `undefined` where the operator turned it off. */
  #relayLimits(): RelayLimits | undefined {
    if (this.env.RELAY?.trim().toLowerCase() === "off") return undefined;
    return {
      maxFrameBytes: Math.max(
        MIN_RELAY_FRAME_BYTES,
        Math.floor(limit(this.env.RELAY_MAX_FRAME_BYTES, RELAY_DEFAULTS.RELAY_MAX_FRAME_BYTES)),
      ),
      bytesPerSecond: limit(
        this.env.RELAY_BYTES_PER_SECOND,
        RELAY_DEFAULTS.RELAY_BYTES_PER_SECOND,
      ),
    };
  }

  /**
   * Forwards one relay frame between the host and one guest: the host's
   * frames name the guest, a guest's go to the host. The payload is opaque
   * (the peers seal it). A frame the room does not relay is dropped and
   * answered with an error frame that names the guest; no timer is set, so a
   * relaying room stays awake only while frames flow.
   */
  #forward({ me }: Member, message: ArrayBuffer): string | undefined {
    const fromHost = me.role === "host";
    const frame = readRelayFrame(message, fromHost);
    const peer = fromHost ? frame?.peer : me.peer;
    // Binary frames that are not relay frames get the answer they always had.
    if (!isRelayFrame(message)) return errorFrame("binary_frame");
    const limits = this.#relayLimits();
    if (!limits) return relayError("relay_disabled", peer);
    if (!frame) return relayError("relay_bad_frame");
    if (message.byteLength > limits.maxFrameBytes) {
      return relayError("relay_frame_too_large", peer);
    }
    const now = Date.now();
    const budget = this.#relayBudget ?? { tokens: limits.bytesPerSecond, at: now };
    const tokens = Math.min(
      limits.bytesPerSecond,
      budget.tokens + ((now - budget.at) / 1000) * limits.bytesPerSecond,
    ) - message.byteLength;
    if (tokens < 0) {
      this.#relayBudget = { tokens: tokens + message.byteLength, at: now };
      return relayError("relay_rate_limited", peer);
    }
    this.#relayBudget = { tokens, at: now };
    const target = fromHost && peer !== undefined
      ? this.#peerSocket(peer, "guest")
      : this.#peerSocket(HOST, "host");
    if (!target) {
      return JSON.stringify({
        type: "error",
        code: "unknown_peer",
        message: ERRORS.unknown_peer,
        peer,
      });
    }
    this.#deliver(
      target,
      fromHost ? encodeRelayFrame(frame.payload) : encodeRelayFrame(frame.payload, me.peer),
    );
  }

  /** Announces the leave, then always closes back so the client sees a clean close. */
  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    try {
      await this.#closed(ws);
    } catch (error) {
      console.error("Room failed to handle a close:", error);
    } finally {
      try {
        ws.close(code >= 3000 && code <= 4999 ? code : 1000, reason);
      } catch { /* already closed */ }
    }
  }

  /** Treats a broken socket as one that closed. */
  override async webSocketError(ws: WebSocket): Promise<void> {
    try {
      await this.#closed(ws);
    } catch (error) {
      console.error("Room failed to handle a broken socket:", error);
    } finally {
      try {
        ws.close(1011, "socket_error");
      } catch { /* already closed */ }
    }
  }

  /**
   * Ends the sockets that fell silent, closes the sockets the room ended that
   * did not close themselves, and forgets a room that stayed empty for its
   * TTL: its verifiers go, so the room id can be reused.
   */
  override async alarm(): Promise<void> {
    try {
      await this.#tick();
    } catch (error) {
      // Thrown again, so the runtime retries the alarm.
      console.error("Room failed in its alarm:", error);
      throw error;
    }
  }

  async #tick(): Promise<void> {
    // The alarm that fired is no longer set.
    this.#alarm = null;
    const now = Date.now();
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) return await this.#tickEmpty(now);
    for (const { ws, me } of this.#live()) {
      if (this.#silentAt(ws, me) > now) continue;
      try {
        sendError(ws, "silent");
      } catch { /* the socket is going anyway */ }
      this.#leave(ws, me, "silent");
    }
    for (const ws of sockets) {
      const me = this.#member(ws);
      if (me?.closeAt !== undefined && me.closeAt <= now) {
        try {
          ws.close(me.closeCode ?? 1000, me.closeReason ?? "");
        } catch { /* already closed */ }
      }
    }
    const next = Math.min(
      ...sockets.map((ws) => {
        const me = this.#member(ws);
        if (!me) return Infinity;
        return me.closeAt !== undefined && me.closeAt > now
          ? me.closeAt
          : me.gone
          ? Infinity
          : this.#silentAt(ws, me);
      }),
    );
    if (next !== Infinity) return await this.#arm(next);
    // Only sockets the room ended and closed are left, whose clients never
    // answered the close (workerd keeps them until their connection drops):
    // the room is empty, and expires as one.
    if (this.#live().length === 0) await this.#tickEmpty(now);
  }

  /** The alarm of a room with no member: it expires, or is forgotten once it has. */
  async #tickEmpty(now: number): Promise<void> {
    await this.#load();
    const expires = this.#expires;
    if (expires !== null && expires !== undefined && expires <= now) {
      this.#state = null;
      this.#unsaved = false;
      this.#expires = null;
      this.#kept = false;
      return await this.ctx.storage.deleteAll();
    }
    // Early, or the sockets went without a close: the room expires from now.
    return await this.#expire(expires ?? undefined);
  }

  /**
   * When a live socket counts as silent: `SILENCE_SECONDS` after the later of
   * its last frame and its last `ping` (answered by the runtime, which keeps
   * the time, so pings never wake the room).
   */
  #silentAt(ws: WebSocket, me: Attachment): number {
    const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
    const silence = limit(this.env.SILENCE_SECONDS, DEFAULTS.SILENCE_SECONDS);
    return Math.max(me.at, pinged) + silence * 1000;
  }

  /**
   * Makes sure the room's one alarm fires by `at`: while sockets are open,
   * when the first of them may have fallen silent or is due to be closed
   * (with clients that ping every 20 s and the default limit, about once a
   * minute). Only an alarm that would fire later is moved: a join into a
   * room whose alarm is already due sooner writes nothing, and the alarm
   * finds the next moment itself when it fires.
   */
  async #arm(at: number): Promise<void> {
    this.#alarm ??= await this.ctx.storage.getAlarm();
    if (this.#alarm !== null && this.#alarm <= at) return;
    await this.ctx.storage.setAlarm(at);
    this.#alarm = at;
  }

  /**
   * Sets the empty room's expiry, `ROOM_TTL_SECONDS` from now (or at
   * `expires`, if given): the one write a room makes when its last socket
   * closes, so an idle room costs nothing until it is forgotten.
   */
  async #expire(expires?: number): Promise<void> {
    const ttl = limit(this.env.ROOM_TTL_SECONDS, DEFAULTS.ROOM_TTL_SECONDS);
    const at = expires ?? Date.now() + ttl * 1000;
    clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
    // A paired room that stored nothing keeps nothing: it writes nothing, and
    // an alarm still set finds it empty and does the same.
    if (!this.#unsaved && !this.#kept) return;
    // Issued without awaiting in between, so they go as one commit.
    const writes: Promise<unknown>[] = [];
    if (this.#unsaved && this.#state) writes.push(this.#saveVerifiers());
    if (this.#expires !== at) {
      writes.push(this.ctx.storage.put(EXPIRES, at));
      this.#expires = at;
    }
    writes.push(this.ctx.storage.setAlarm(at));
    this.#alarm = at;
    await Promise.all(writes);
  }

  /**
   * A socket closed: its leave is announced if it was not yet. The alarm
   * already fires in time for the sockets left; only the last one's close
   * sets the room's expiry.
   */
  async #closed(ws: WebSocket): Promise<void> {
    const me = this.#member(ws);
    if (me && !me.gone) this.#leave(ws, me);
    this.#members.delete(ws);
    // Sockets the room ended count no more: their clients may never answer its close.
    if (this.#live().some(({ ws: other }) => other !== ws)) return;
    await this.#load();
    await this.#expire();
  }

  /**
   * Marks a socket gone and tells the other side (a host only if none
   * replaced it). With `closeWith`, the room closes the socket after
   * {@linkcode CLOSE_GRACE_MS} unless the client does first.
   */
  #leave(ws: WebSocket, me: Attachment, closeWith?: ClosingErrorCode): void {
    try {
      this.#keep(
        ws,
        closeWith === undefined ? { ...me, gone: true } : {
          ...me,
          gone: true,
          closeAt: Date.now() + CLOSE_GRACE_MS,
          closeCode: CLOSE[closeWith],
          closeReason: closeWith,
        },
        true,
      );
    } catch { /* closing: the announcement below still matters */ }
    for (const [invite, hello] of this.#hellos) {
      if (hello.ws === ws) this.#hellos.delete(invite);
    }
    const others = this.#live().filter((o) => o.ws !== ws);
    if (me.role === "host" && others.some((o) => o.me.role === "host")) return;
    for (const other of others) {
      if (other.me.role !== me.role) {
        send(other.ws, { type: "leave", peer: me.peer });
      }
    }
  }

  /** The sockets still in the room, optionally of one role. */
  #live(role?: Role): { ws: WebSocket; me: Attachment }[] {
    return this.ctx.getWebSockets(role === "host" ? HOST : undefined).flatMap((ws) => {
      const me = this.#member(ws);
      return me && !me.gone && (role === undefined || me.role === role) ? [{ ws, me }] : [];
    });
  }

  /** A socket's attachment as it is now: from memory, or read back after a wake-up. */
  #member(ws: WebSocket): Attachment | null {
    const known = this.#members.get(ws);
    if (known) return known.me;
    const me = readAttachment(ws);
    if (me) this.#members.set(ws, { me, savedAt: me.at });
    return me;
  }

  /**
   * Keeps a socket's attachment in memory, and saves it in the socket when
   * `save` says so or its copy lags by {@linkcode ATTACHMENT_SAVE_MS}.
   */
  #keep(ws: WebSocket, me: Attachment, save: boolean): void {
    const known = this.#members.get(ws);
    if (save || !known || me.at - known.savedAt >= ATTACHMENT_SAVE_MS) {
      ws.serializeAttachment(me);
      this.#members.set(ws, { me, savedAt: me.at });
    } else {
      this.#members.set(ws, { me, savedAt: known.savedAt });
    }
  }
}

/** Reads an attachment, or `null` if it is missing or not ours. */
function readAttachment(ws: WebSocket): Attachment | null {
  let value: unknown;
  try {
    value = ws.deserializeAttachment();
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const {
    peer,
    role,
    tokens,
    at,
    gone,
    closeAt,
    closeCode,
    closeReason,
    address,
    errors,
    invite,
    paired,
  } = value as Record<string, unknown>;
  const valid = role === "host"
    ? peer === HOST
    : role === "guest" && typeof peer === "string" && GUEST_ID.test(peer);
  if (!valid || typeof tokens !== "number" || typeof at !== "number" || typeof gone !== "boolean") {
    return null;
  }
  const ending = typeof closeAt === "number" && typeof closeCode === "number" &&
      typeof closeReason === "string"
    ? { closeAt, closeCode, closeReason }
    : {};
  return {
    peer: peer as string,
    role: role as Role,
    tokens,
    at,
    gone,
    ...ending,
    ...typeof address === "string" && { address },
    ...typeof errors === "number" && { errors },
    ...typeof invite === "string" && { invite },
    ...role === "host" && isPair(paired) && { paired },
    ...unreadOf(value),
  };
}

/** Whether an attachment's `paired` is two verifiers. */
function isPair(value: unknown): value is { host: string; guest: string } {
  const { host, guest } = (value ?? {}) as Record<string, unknown>;
  return typeof host === "string" && VERIFIER.test(host) &&
    typeof guest === "string" && VERIFIER.test(guest);
}

/** The count of unread bytes an attachment holds, as a spread. */
function unreadOf(value: object): { unread?: Unread } {
  const unread = readUnread((value as { unread?: unknown }).unread);
  return unread ? { unread } : {};
}

/** The room's state from what storage holds (a room from before invites holds `guest` alone). */
function readVerifiers(stored: StoredVerifiers): RoomState {
  const invites = new Map(stored.invites ?? []);
  if (!stored.invites && stored.guest) invites.set(GUEST_INVITE, stored.guest);
  return { host: stored.host, invites };
}

/**
 * The name of the invite whose verifier is this key's digest, if any: every
 * verifier is compared, each in constant time (at most `MAX_INVITES`).
 */
function findInvite(state: RoomState, digest: Uint8Array): string | undefined {
  let found: string | undefined;
  for (const [name, verifier] of state.invites) {
    if (timingSafeEqual(digest, verifier) && found === undefined) found = name;
  }
  return found;
}

function sendError(ws: WebSocket, code: ErrorCode): void {
  ws.send(errorFrame(code));
}

/** An error frame about a relay frame, naming the guest it concerned (if known). */
function relayError(code: RelayErrorCode, peer?: string): string {
  return JSON.stringify({ type: "error", code, message: RELAY_ERRORS[code], peer });
}

/** Whether a frame is binary and starts as a relay frame does. */
function isRelayFrame(message: string | ArrayBuffer): boolean {
  return typeof message !== "string" && message.byteLength > 0 &&
    new Uint8Array(message, 0, 1)[0] === RELAY_FRAME;
}

function send(ws: WebSocket, frame: RoomFrame): void {
  ws.send(JSON.stringify(frame));
}

function upgrade(client: WebSocket, credentials: Credentials): Response {
  const headers: HeadersInit = credentials.subprotocol
    ? { "Sec-WebSocket-Protocol": PROTOCOL }
    : {};
  return new Response(null, { status: 101, webSocket: client, headers });
}

function limit(value: string | undefined, fallback: number): number {
  const number = Number(value);
  return value !== undefined && Number.isFinite(number) && number > 0 ? number : fallback;
}

function randomGuestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
