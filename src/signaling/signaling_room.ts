/**
 * The client of the signalling room (the room protocol in docs/PROTOCOL.md): one
 * WebSocket to a room, shared by a {@linkcode Signaling} view per remote peer,
 * kept alive with pings and reconnected after a drop. Runtime neutral: the
 * WebSocket client is chosen in `src/runtime.ts`, or passed in.
 *
 * Its parts live beside it: the options (`_room_options.ts`), the per-peer
 * view (`_peer_signaling.ts`), the host's invite and revoke requests
 * (`_room_requests.ts`), the ICE servers it holds (`_room_ice_servers.ts`)
 * and why its socket closed (`_room_close.ts`). It is over 400 lines because
 * what remains is one socket's lifecycle (join, welcome, dispatch of each
 * frame, drop and reconnect, close) whose states are shared by every step;
 * split further, each part would reach into the others' fields.
 *
 * @module
 */
import {
  ROOM_PING_INTERVAL,
  ROOM_RECONNECT_MAX_DELAY,
  ROOM_RECONNECT_MIN_DELAY,
  ROOM_TIMEOUT,
  SOCKET_CLOSE_TIMEOUT,
} from "../constants.ts";
import { SignalingRoomError, WebRTCTransportError } from "../errors.ts";
import { clockOf } from "../_clock.ts";
import type { IceServer } from "../peer.ts";
import { utf8Length } from "../_utf8.ts";
import { resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from "../runtime.ts";
import {
  CLOSE,
  type ClosingErrorCode,
  encodeBase64Url,
  FINAL,
  GUEST_INVITE,
  HOST,
  inviteFrame,
  INVITES_ONLY,
  joinProtocols,
  KEY,
  MAX_FRAME_BYTES,
  MAX_INVITES,
  PROTOCOL,
  readRoomFrame,
  revokeFrame,
  type RoomFrame,
  seenFrame,
  signalFrame,
  VERIFIER,
  waitingHelloFrame,
} from "./room_protocol.ts";
import { readRelayFrame, readRelayLimits } from "../relay/protocol.ts";
import { RelayPacer, RoomRelayPipe } from "../relay/room_pipe.ts";
import type { Signaling, SignalingHub, SignalingMessage } from "./signaling.ts";
import { PeerSignaling } from "./_peer_signaling.ts";
import { claimsWelcome, closeError } from "./_room_close.ts";
import type { ReconnectOptions, SignalingRoomOptions } from "./_room_options.ts";
import { RoomIceServers } from "./_room_ice_servers.ts";
import { escapeName, type RoomAnswer, RoomRequests } from "./_room_requests.ts";

export { roomUrl } from "./room_protocol.ts";
export type { ReconnectOptions, SignalingRoomOptions };

/** Frame ids remembered to route an error frame to the view that sent it. */
const MAX_REFS = 256;

/**
 * A connection to a signalling room, as its host or as a guest. It hands out
 * one {@linkcode Signaling} view per remote peer (`signaling(peer)`), keeps
 * the connection alive with pings and reconnects after a drop.
 *
 * A drop closes every view: a guest comes back with a new id, so the other
 * side treats it as a new peer. Peers present after a reconnect are announced
 * again with `onpeerjoin`.
 *
 * @example A host and a guest exchange a message
 * ```ts ignore
 * import { keyVerifier, SignalingRoom } from "@mcp/webrtc/signaling";
 *
 * const url = "ws://127.0.0.1:8787/v1/rooms/Nq3RkWmvh0VrKz2Hd7yXbA";
 * const guestKey = "guest-key-0123456789";
 * const host = await SignalingRoom.join(url, {
 *   role: "host",
 *   key: "host-key-0123456789",
 *   guestVerifier: await keyVerifier(guestKey),
 * });
 * host.onpeerjoin = (peer) => {
 *   const signaling = host.signaling(peer);
 *   signaling.onmessage = (message) => console.log(peer, "says", message);
 *   signaling.start?.();
 * };
 * const guest = await SignalingRoom.join(url, { role: "guest", key: guestKey });
 * await guest.signaling("host").send({ type: "hello" });
 * ```
 */
export class SignalingRoom implements SignalingHub {
  /** Called when a peer enters the room (after `join()` resolved). */
  onpeerjoin?: (peer: string) => void;
  /** Called when a peer leaves the room, or our own connection dropped. */
  onpeerleave?: (peer: string) => void;
  /** Called for a problem that does not close the room (e.g. a drop that will be retried). */
  onerror?: (error: Error) => void;
  /** Called once when the room is closed for good, with the reason unless `close()` was called. */
  onclose?: (error?: SignalingRoomError) => void;

  readonly #url: string;
  #protocols: string[];
  readonly #options: SignalingRoomOptions;
  readonly #WebSocket: WebSocketConstructor;
  #socket?: WebSocketLike;
  #peer?: string;
  /** The ICE servers the room handed out, and the request for them in flight. */
  readonly #ice = new RoomIceServers(() => clockOf(this).now());
  #views = new Map<string, PeerSignaling>();
  /** The invite each present guest joined with, by peer id (host only). */
  #invites = new Map<string, string>();
  /** The host's invite and revoke requests waiting for the room's answer. */
  #requests = new RoomRequests();
  #refs = new Map<number, string>();
  /** Whether the room of the current connection keeps a waiting hello (its welcome said so). */
  #keepsHellos = false;
  /** The hellos left with the room and not yet handed to a guest, by invite (host only). */
  #waitingHellos = new Map<string, SignalingMessage>();
  /**
   * The waiting hellos sent, by frame id, to drop one the room refuses: the
   * last `2 × MAX_INVITES` (the room answers only a refusal).
   */
  #helloRefs = new Map<number, { invite: string; hello: SignalingMessage }>();
  /** The present guests the room handed the waiting hello to (host only). */
  #tookHello = new Set<string>();
  #nextRef = 0;
  #attempts = 0;
  #closed = false;
  #closing?: Promise<void>;
  #retryTimer?: unknown;
  #pingTimer?: ReturnType<typeof setInterval>;
  #awaitingPong = false;
  /** The relay's pacing on the current connection, if the room relays. */
  #pacer?: RelayPacer;
  /** Ends the current connection attempt or connection, if any. */
  #fail?: (error: SignalingRoomError) => void;
  #abort = () => void this.close();

  private constructor(
    url: string,
    protocols: string[],
    options: SignalingRoomOptions,
    WebSocket: WebSocketConstructor,
  ) {
    this.#url = url;
    this.#protocols = protocols;
    this.#options = options;
    this.#WebSocket = WebSocket;
  }

  /**
   * Joins a room and resolves once the room welcomed us.
   *
   * @param url The room URL, `wss://…/v1/rooms/<room id>` (`https:` works too).
   * @param options Role, key and connection options.
   * @returns The joined room; its present peers are in `peers`.
   * @throws {TypeError} If the URL, role, key or verifier is malformed, or there is no WebSocket.
   * @throws {SignalingRoomError} If the room refused us or could not be reached (not retried).
   *
   * @example Join as a guest
   * ```ts ignore
   * import { SignalingRoom } from "@mcp/webrtc/signaling";
   *
   * const room = await SignalingRoom.join("wss://signal.example/v1/rooms/Nq3RkWmvh0VrKz2Hd7yXbA", {
   *   role: "guest",
   *   key: "guest-key-0123456789",
   * });
   * console.log(room.peers); // ["host"]
   * await room.close();
   * ```
   */
  static async join(url: string | URL, options: SignalingRoomOptions): Promise<SignalingRoom> {
    const { role, key, guestVerifier, hostVerifier, invitesOnly } = options;
    const target = new URL(url);
    target.protocol = target.protocol.replace(/^http/, "ws");
    if (target.protocol !== "ws:" && target.protocol !== "wss:") {
      throw new TypeError(
        `Cannot join room as the URL must start with wss:, ws:, https: or http:: received "${target.protocol}"`,
      );
    }
    if (role !== "host" && role !== "guest") {
      throw new TypeError(
        `Cannot join room as the role must be "host" or "guest": received ${role}`,
      );
    }
    if (typeof key !== "string" || !KEY.test(key)) {
      throw new TypeError("Cannot join room as the key must be 16 to 128 base64url characters");
    }
    if (role === "host" ? !VERIFIER.test(guestVerifier ?? "") : guestVerifier !== undefined) {
      throw new TypeError(
        role === "host"
          ? "Cannot join room as host without a guest verifier: pass keyVerifier(guestKey)"
          : "Cannot join room as guest with a guest verifier: only the host sends one",
      );
    }
    if (invitesOnly && role !== "host") {
      throw new TypeError("Cannot join room as guest with 'invitesOnly': only a host sets it");
    }
    if (hostVerifier !== undefined && (role !== "guest" || !VERIFIER.test(hostVerifier))) {
      throw new TypeError(
        role === "guest"
          ? "Cannot join room as the host verifier must be 43 base64url characters: pass the ticket's hostVerifier"
          : "Cannot join room as host with a host verifier: only a guest sends one",
      );
    }
    for (const name of ["pingInterval", "timeout"] as const) {
      const value = options[name];
      if (value !== undefined && !(value > 0)) {
        throw new RangeError(
          `Cannot join room as '${name}' must be a positive number: received ${value}`,
        );
      }
    }
    const WebSocket = options.WebSocket ?? await resolveWebSocket();
    options.signal?.throwIfAborted();
    target.searchParams.set("role", role);
    const protocols = joinProtocols(
      key,
      role === "host" ? guestVerifier : undefined,
      hostVerifier,
      invitesOnly === true,
    );
    const room = new SignalingRoom(target.href, protocols, options, WebSocket);
    options.signal?.addEventListener("abort", room.#abort, { once: true });
    try {
      await room.#connect();
    } catch (error) {
      room.#close();
      throw options.signal?.aborted ? options.signal.reason : error;
    }
    return room;
  }

  /** Our own peer id: `"host"`, or the id the room gave this guest connection. */
  get peer(): string | undefined {
    return this.#peer;
  }

  /**
   * The STUN/TURN servers the room handed out last, with short-lived
   * credentials, or `undefined` if it handed out none yet. A room that hands
   * them out on request does so only through {@linkcode requestIceServers}.
   */
  get iceServers(): IceServer[] | undefined {
    return this.#ice.servers;
  }

  /**
   * The STUN/TURN servers to use for a new peer connection, asked from the
   * room when needed: the room mints TURN credentials only on request, within
   * its limits per client address and per room. Credentials are kept and
   * reused while at least half their lifetime is left, so a connection set up
   * with them lasts at least that long.
   *
   * @returns The servers, or `undefined` if the room hands out none, or
   *   refused (`onerror` says why) and no valid ones are left.
   *
   * @example Use the room's TURN servers for a peer connection
   * ```ts ignore
   * const iceServers = await room.requestIceServers();
   * const pc = new RTCPeerConnection({ iceServers: iceServers ?? [] });
   * ```
   */
  requestIceServers(): Promise<IceServer[] | undefined> {
    return this.#ice.request({
      socket: this.#socket,
      nextId: () => this.#nextRef++,
      timeout: this.#options.timeout,
      onerror: (error) => this.onerror?.(error),
    });
  }

  /**
   * The name of the invite a present guest joined with, as the room told the
   * host: `"guest"` for the key of the host's own guest verifier, another
   * name for a key added with {@linkcode invite}.
   *
   * @param peer A guest's peer id.
   * @returns The invite's name, or `undefined` on a guest's side, for a peer
   *   not present, or from a room that does not name invites.
   *
   * @example Tell agents apart as they arrive
   * ```ts ignore
   * room.onpeerjoin = (peer) => console.log(peer, "joined with", room.inviteOf(peer));
   * ```
   */
  inviteOf(peer: string): string | undefined {
    return this.#invites.get(peer);
  }

  /**
   * Adds an invite to the room, or replaces the verifier of the invite of
   * that name (the host only): a guest key whose verifier it is gets in from
   * now on, and the host learns its name in {@linkcode inviteOf}. The room
   * keeps invites while it lives, across the host's reconnects; sending the
   * same invite again changes nothing. Guests admitted before a replacement
   * stay.
   *
   * @param name 1 to 64 letters, digits, `.`, `_` or `-`.
   * @param verifier The {@linkcode keyVerifier} of the invite's guest key.
   * @returns Resolves once the room stored the invite.
   * @throws {TypeError} If this is a guest's connection, or the name or verifier is malformed.
   * @throws {SignalingRoomError} If the room refused (`frame_refused`: e.g. it holds
   *   `MAX_INVITES`), is disconnected, or did not answer in time.
   *
   * @example Invite an agent with a key of its own
   * ```ts ignore
   * import { createRoomKey, keyVerifier } from "@mcp/webrtc/signaling";
   *
   * const aliceKey = createRoomKey();
   * await room.invite("alice", await keyVerifier(aliceKey));
   * ```
   */
  invite(name: string, verifier: string): Promise<void> {
    if (!VERIFIER.test(verifier)) {
      return Promise.reject(
        new TypeError(
          `Cannot invite "${
            escapeName(name)
          }" as the verifier must be keyVerifier(guest key), 43 base64url characters`,
        ),
      );
    }
    // A hello sealed for the invite's key before would not open for a new key's guests.
    this.#waitingHellos.delete(name);
    return this.#request("invite", name, (id) => inviteFrame(name, verifier, id)).then(() => {});
  }

  /**
   * Revokes an invite (the host only): the room refuses its key from now on
   * and closes every guest connection admitted with it (each one's
   * `onpeerleave` fires before this resolves); other guests stay.
   *
   * @param name The invite's name.
   * @returns How many guest connections the room closed.
   * @throws {TypeError} If this is a guest's connection, or the name is malformed.
   * @throws {SignalingRoomError} If the room has no invite of that name
   *   (`frame_refused`, naming `invite_not_found`), is disconnected, or did not answer in time.
   *
   * @example Revoke an agent's invite
   * ```ts ignore
   * const closed = await room.revoke("alice");
   * console.log(`closed ${closed} connection(s) of alice`);
   * ```
   */
  async revoke(name: string): Promise<number> {
    // Whatever the room answers, the invite's hello is not left again.
    this.#waitingHellos.delete(name);
    // A host's join sets the invite "guest" to its guest verifier: the joins
    // after this one (reconnects) admit invites only, so the revoked key stays out.
    if (name === GUEST_INVITE && !this.#protocols.includes(INVITES_ONLY)) {
      this.#protocols = [...this.#protocols, INVITES_ONLY];
    }
    const answer = await this.#request("revoke", name, (id) => revokeFrame(name, id));
    return answer.type === "revoked" ? answer.closed : 0;
  }

  /** Sends the host's invite or revoke frame, and settles on the room's answer to it. */
  #request(
    what: "invite" | "revoke",
    name: string,
    frame: (id: number) => string,
  ): Promise<RoomAnswer> {
    return this.#requests.send({
      what,
      name,
      role: this.#options.role,
      socket: this.#peer === undefined ? undefined : this.#socket,
      nextId: () => this.#nextRef++,
      frame,
      timeout: this.#options.timeout ?? ROOM_TIMEOUT,
    });
  }

  /**
   * Leaves a hello with the room for the next guest of an invite (the host
   * only): the room hands it, right after its welcome, to the next guest that
   * joins with that invite's key, as a message from the host on that guest's
   * view, and {@linkcode tookHello} then names that guest. One waits per
   * invite: a new one replaces the last. The room keeps them in memory only;
   * they are left again after a reconnect, and when a guest of an invite
   * whose hello should wait joined without it. Revoking an invite drops its
   * hello.
   *
   * @param hello The message the next guest receives first from the host
   *   (a sealed hello of `AuthenticatedSignaling.prepareHello`, with the
   *   invite's key).
   * @param invite The invite's name: `"guest"` (the host's own guest key) by default.
   * @returns `false` if this is a guest's connection or the room keeps no
   *   waiting hello (a room of an earlier version): then nothing was left.
   * @throws {RangeError} If the hello's frame is larger than `MAX_FRAME_BYTES`.
   *
   * @example Leave a sealed hello for the next agent
   * ```ts ignore
   * import { AuthenticatedSignaling } from "@mcp/webrtc/signaling";
   *
   * const hello = await AuthenticatedSignaling.prepareHello({ key: signalingKey, role: "host" });
   * if (room.leaveHello(hello.message)) console.log("the next agent gets it with its welcome");
   * ```
   */
  leaveHello(hello: SignalingMessage, invite: string = GUEST_INVITE): boolean {
    if (this.#options.role !== "host" || !this.#keepsHellos) return false;
    const size = utf8Length(waitingHelloFrame(hello, invite));
    if (size > MAX_FRAME_BYTES) {
      throw new RangeError(
        `Cannot leave hello with the room as it takes ${size} bytes: the room takes frames of at most ${MAX_FRAME_BYTES} (MAX_FRAME_BYTES)`,
      );
    }
    this.#waitingHellos.set(invite, hello);
    this.#sendWaitingHello(invite);
    return true;
  }

  /**
   * Whether the room handed the hello left with {@linkcode leaveHello} to
   * this guest, as its join said.
   *
   * @param peer A guest's peer id.
   * @returns `true` for the one guest that took it, while present.
   *
   * @example Build the guest's connection on the hello it took
   * ```ts ignore
   * room.onpeerjoin = (peer) => console.log(peer, room.tookHello(peer) ? "has" : "lacks", "the hello");
   * ```
   */
  tookHello(peer: string): boolean {
    return this.#tookHello.has(peer);
  }

  /** Sends the waiting hello of `invite`, or all of them, to a room that keeps them. */
  #sendWaitingHello(invite?: string): void {
    if (!this.#keepsHellos || !this.#socket) return;
    for (const [name, hello] of this.#waitingHellos) {
      if (invite !== undefined && invite !== name) continue;
      const id = this.#nextRef++;
      this.#helloRefs.set(id, { invite: name, hello });
      if (this.#helloRefs.size > 2 * MAX_INVITES) {
        this.#helloRefs.delete(this.#helloRefs.keys().next().value!);
      }
      this.#socket.send(waitingHelloFrame(hello, name, id));
    }
  }

  /**
   * Takes the room's refusal of a waiting hello, if `frame` is one: the hello
   * waits no longer. An invite the room does not hold (a room set up anew
   * since, or one revoked meanwhile) is no fault; other refusals are
   * reported.
   *
   * @returns Whether the frame was about a waiting hello.
   */
  #helloRefused(frame: { ref?: string | number; code: string; message: string }): boolean {
    const sent = typeof frame.ref === "number" ? this.#helloRefs.get(frame.ref) : undefined;
    if (!sent) return false;
    this.#helloRefs.delete(frame.ref as number);
    if (this.#waitingHellos.get(sent.invite) === sent.hello) {
      this.#waitingHellos.delete(sent.invite);
    }
    if (frame.code !== "invite_not_found") {
      this.onerror?.(
        new SignalingRoomError(
          "frame_refused",
          `Signalling room refused the waiting hello of invite "${sent.invite}": ${frame.message} (${frame.code})`,
        ),
      );
    }
    return true;
  }

  /** The ids of the peers we may talk to, present now. */
  get peers(): string[] {
    return [...this.#views.keys()];
  }

  /**
   * The signalling channel to one present peer. The same view is returned
   * until that peer leaves; its `onclose` fires then, or when the room closes.
   * Messages from the peer are kept until the view's `start()`.
   *
   * @param peer A peer id from `peers` or `onpeerjoin`.
   * @returns The view of that peer.
   * @throws {WebRTCTransportError} If the peer is not in the room.
   *
   * @example Answer each guest on its own view
   * ```ts ignore
   * room.onpeerjoin = (peer) => {
   *   const signaling = room.signaling(peer);
   *   signaling.onmessage = (message) => void signaling.send({ type: "echo", message });
   *   signaling.start?.();
   * };
   * ```
   */
  signaling(peer: string): Signaling {
    const view = this.#views.get(peer);
    if (!view) {
      throw new WebRTCTransportError(
        `Cannot open signalling to peer "${peer}" as it is not in the room: wait for onpeerjoin`,
      );
    }
    return view;
  }

  /**
   * Leaves the room for good: closes the socket and every view, stops
   * reconnecting. Idempotent; resolves once the socket closed (at most 1 s).
   *
   * @example Leave
   * ```ts ignore
   * await room.close();
   * ```
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const socket = this.#socket;
    this.#close();
    this.#closing = new Promise<void>((resolve) => {
      if (!socket) return resolve();
      const timer = setTimeout(resolve, SOCKET_CLOSE_TIMEOUT);
      socket.onclose = () => {
        clearTimeout(timer);
        resolve();
      };
      socket.close(1000, "bye");
    });
    return this.#closing;
  }

  /** One connection attempt: resolves on the welcome, rejects if the socket closed first. */
  #connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new this.#WebSocket(this.#url, this.#protocols);
      // Relay frames arrive as binary messages: as ArrayBuffers, not Blobs or Buffers.
      (socket as { binaryType?: string }).binaryType = "arraybuffer";
      this.#socket = socket;
      let opened = false;
      let welcomed = false;
      let lastError: { code: string; message: string } | undefined;
      const fail = (error: SignalingRoomError) => {
        clearTimeout(timer);
        if (this.#socket !== socket) return;
        this.#socket = this.#fail = undefined;
        socket.onclose = socket.onmessage = null;
        if (!welcomed) return reject(error);
        this.#dropped(error);
      };
      this.#fail = fail;
      const timer = setTimeout(() => {
        fail(new SignalingRoomError("timeout", "Cannot join room as it did not answer in time"));
        socket.close();
      }, this.#options.timeout ?? ROOM_TIMEOUT);
      socket.onopen = () => {
        opened = true;
        if (socket.protocol === PROTOCOL) return;
        fail(
          new SignalingRoomError(
            "protocol_error",
            `Cannot join room as the server did not answer with the "${PROTOCOL}" subprotocol: check that the URL is a signalling room`,
          ),
        );
        socket.close();
      };
      socket.onmessage = ({ data }) => {
        if (data === "pong") return void (this.#awaitingPong = false);
        if (typeof data !== "string") return void (welcomed && this.#relayed(data));
        const frame = readRoomFrame(data);
        // Read this far: the room counts what it sent before the mark as read.
        if (frame?.type === "mark") return socket.send(seenFrame(frame.mark));
        if (frame?.type === "error") {
          lastError = frame;
          // A socket the room ends gets an error frame, then is ours to close: the
          // room closes it itself only after a grace period.
          if (frame.code in CLOSE) {
            const code = CLOSE[frame.code as ClosingErrorCode];
            fail(closeError(code, frame.code, opened, frame));
            return socket.close();
          }
        }
        if (welcomed) return this.#dispatch(frame, data);
        if (frame === undefined && claimsWelcome(data)) {
          fail(
            new SignalingRoomError(
              "protocol_error",
              "Cannot join room as its welcome is malformed",
            ),
          );
          return socket.close();
        }
        if (frame?.type !== "welcome") return;
        welcomed = true;
        clearTimeout(timer);
        this.#ice.welcomed(frame);
        const limits = readRelayLimits(frame);
        this.#pacer = limits && new RelayPacer(limits, (bytes) => socket.send(bytes));
        for (const [peer, name] of Object.entries(frame.peerInvites ?? {})) {
          if (frame.peers.includes(peer)) this.#invites.set(peer, name);
        }
        this.#keepsHellos = frame.hellos === true;
        this.#welcome(frame.peer, frame.peers);
        // After a reconnect, the new socket's room has none yet.
        this.#sendWaitingHello();
        resolve();
      };
      socket.onclose = ({ code, reason }) => fail(closeError(code, reason, opened, lastError));
      // The close event that follows says what happened; the ws package throws without this.
      socket.onerror = () => {};
    });
  }

  #welcome(peer: string, peers: string[]): void {
    const rejoined = this.#peer !== undefined;
    this.#peer = peer;
    this.#attempts = 0;
    for (const id of peers) {
      this.#views.set(id, new PeerSignaling(id, this.#sender(id), this.#pipe(id)));
    }
    this.#awaitingPong = false;
    this.#pingTimer = setInterval(() => {
      if (!this.#awaitingPong) {
        this.#awaitingPong = true;
        return this.#socket?.send("ping");
      }
      const socket = this.#socket;
      this.#fail?.(
        new SignalingRoomError(
          "connection_lost",
          "Lost the signalling room: it stopped answering pings",
        ),
      );
      socket?.close();
    }, this.#options.pingInterval ?? ROOM_PING_INTERVAL);
    if (rejoined) { for (const id of peers) this.onpeerjoin?.(id); }
  }

  #dispatch(frame: RoomFrame | undefined, raw: unknown): void {
    if (frame?.type === "join" && !this.#views.has(frame.peer)) {
      if (frame.invite !== undefined) this.#invites.set(frame.peer, frame.invite);
      const invite = frame.invite ?? GUEST_INVITE;
      if (frame.hello && this.#waitingHellos.has(invite)) {
        this.#waitingHellos.delete(invite);
        this.#tookHello.add(frame.peer);
      } else if (this.#waitingHellos.has(invite)) {
        // The room lost it (a hibernating room keeps none): left again.
        this.#sendWaitingHello(invite);
      }
      this.#views.set(
        frame.peer,
        new PeerSignaling(frame.peer, this.#sender(frame.peer), this.#pipe(frame.peer)),
      );
      this.onpeerjoin?.(frame.peer);
    } else if (frame?.type === "leave" && this.#views.has(frame.peer)) {
      this.#closePeer(frame.peer);
    } else if (frame?.type === "ice_servers") {
      this.#ice.received(frame);
    } else if (frame?.type === "signal") {
      const view = this.#views.get(frame.from);
      if (view && typeof frame.data.type === "string") {
        view.receive(frame.data as SignalingMessage);
      } else {
        this.onerror?.(
          new SignalingRoomError(
            "protocol_error",
            "Dropped a signal frame from an unknown peer or without a type",
          ),
        );
      }
    } else if (frame?.type === "error" && frame.peer !== undefined) {
      // About a relay frame: it names the peer the frame was for, or from.
      this.#views.get(frame.peer)?.pipe.refused(frame.code, frame.message);
    } else if (frame && this.#requests.answer(frame)) {
      // An invite or revoke request's answer: settled.
    } else if (frame?.type === "error" && this.#helloRefused(frame)) {
      // A waiting hello the room would not keep: dropped.
    } else if (frame?.type === "error" && this.#ice.asked(frame.ref)) {
      this.onerror?.(
        new SignalingRoomError(
          "frame_refused",
          `Cannot get ICE servers from the signalling room: ${frame.message} (${frame.code})`,
        ),
      );
      this.#ice.settle();
    } else if (frame?.type === "error") {
      const peer = this.#refs.get(frame.ref as number);
      const view = this.#views.get(peer ?? "");
      const error = new SignalingRoomError(
        "frame_refused",
        `Signalling room refused a frame: ${frame.message} (${frame.code})`,
      );
      if (view) view.onerror?.(error);
      // A frame of a view closed since (a goodbye to a peer that left): nobody waits on it.
      else if (peer === undefined) this.onerror?.(error);
    } else {
      this.onerror?.(
        new SignalingRoomError(
          "protocol_error",
          `Dropped an unexpected frame from the signalling room: ${raw}`,
        ),
      );
    }
  }

  /** The relay pipe of a new view: it relays while this connection's room does. */
  #pipe(peer: string): RoomRelayPipe {
    const pacer = this.#pacer;
    return new RoomRelayPipe(peer, () => pacer, this.#options.role === "host");
  }

  /** One binary message: a relay frame from a peer. */
  #relayed(data: unknown): void {
    const bytes = data instanceof ArrayBuffer || data instanceof Uint8Array ? data : undefined;
    const frame = bytes && readRelayFrame(bytes, this.#options.role === "host");
    const view = frame && this.#views.get(frame.peer ?? HOST);
    if (frame && view) return view.pipe.deliver(frame.payload);
    this.onerror?.(
      new SignalingRoomError(
        "protocol_error",
        "Dropped a binary frame from the signalling room that is not a relay frame of a present peer",
      ),
    );
  }

  #closePeer(peer: string): void {
    const view = this.#views.get(peer);
    this.#views.delete(peer);
    this.#invites.delete(peer);
    this.#tookHello.delete(peer);
    void view?.close();
    this.onpeerleave?.(peer);
  }

  #sender(peer: string): (message: SignalingMessage) => Promise<void> {
    return (message) => {
      if (!this.#socket) {
        return Promise.reject(
          new SignalingRoomError(
            "disconnected",
            "Cannot send signalling message as the signalling room is disconnected",
          ),
        );
      }
      const id = this.#nextRef++;
      const text = signalFrame(peer, message, id);
      const size = utf8Length(text);
      if (size > MAX_FRAME_BYTES) {
        return Promise.reject(
          new RangeError(
            `Cannot send signalling message as it takes ${size} bytes: the room relays at most ${MAX_FRAME_BYTES}`,
          ),
        );
      }
      this.#refs.set(id, peer);
      if (this.#refs.size > MAX_REFS) this.#refs.delete(this.#refs.keys().next().value!);
      this.#socket.send(text);
      return Promise.resolve();
    };
  }

  /** The socket dropped after the welcome: close the views, then retry or give up. */
  #dropped(error: SignalingRoomError): void {
    clearInterval(this.#pingTimer);
    this.#ice.settle();
    this.#requests.fail(error);
    for (const peer of [...this.#views.keys()]) this.#closePeer(peer);
    const reconnect = this.#options.reconnect ?? {};
    if (this.#closed) return;
    if (reconnect === false || FINAL.some((code) => code === error.code)) {
      return this.#close(error);
    }
    if (++this.#attempts > (reconnect.maxAttempts ?? Infinity)) {
      return this.#close(
        new SignalingRoomError(
          error.code,
          `Signalling room gave up after ${reconnect.maxAttempts} failed reconnects: ${error.message}`,
          { cause: error },
        ),
      );
    }
    this.onerror?.(error);
    const ceiling = Math.min(
      reconnect.maxDelay ?? ROOM_RECONNECT_MAX_DELAY,
      (reconnect.minDelay ?? ROOM_RECONNECT_MIN_DELAY) * 2 ** (this.#attempts - 1),
    );
    this.#retryTimer = clockOf(this).setTimeout(() => {
      this.#connect().catch((error) => this.#dropped(error));
    }, ceiling / 2 + Math.random() * ceiling / 2);
  }

  /** Closes for good, without touching the socket. */
  #close(error?: SignalingRoomError): void {
    if (this.#closed) return;
    this.#closed = true;
    clockOf(this).clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    this.#ice.settle();
    this.#options.signal?.removeEventListener("abort", this.#abort);
    const ended = error ??
      new SignalingRoomError("disconnected", "Cannot join room as it was closed meanwhile");
    this.#fail?.(ended);
    this.#requests.fail(ended);
    for (const peer of [...this.#views.keys()]) this.#closePeer(peer);
    this.onclose?.(error);
  }
}

/**
 * Creates a random room id: 128 bits as 22 base64url characters.
 *
 * @returns A fresh room id.
 *
 * @example A room URL
 * ```ts
 * import { createRoomId } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const url = `wss://signal.example/v1/rooms/${createRoomId()}`;
 * assert.match(url, /\/v1\/rooms\/[A-Za-z0-9_-]{22}$/);
 * ```
 */
export function createRoomId(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Creates a random room key: 256 bits as 43 base64url characters.
 *
 * @returns A fresh key.
 *
 * @example Keys for a host and its guests
 * ```ts
 * import { createRoomKey, keyVerifier } from "@mcp/webrtc/signaling";
 * import assert from "node:assert/strict";
 *
 * const hostKey = createRoomKey();
 * const guestKey = createRoomKey();
 * assert.notEqual(hostKey, guestKey);
 * assert.equal((await keyVerifier(guestKey)).length, 43);
 * ```
 */
export function createRoomKey(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}
