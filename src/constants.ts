/**
 * Every tunable of the transports, each with the reason for its value.
 *
 * Over 400 lines for a reason: it is a table, one constant and its reason
 * per entry, in one place so that each limit is found, documented and
 * checked against docs/LIMITS.md from here.
 *
 * @module
 */

/**
 * The label of the data channel that carries MCP. The reference
 * implementations (mcp-webrtc for Python and TypeScript) use the same label, so
 * their peers and ours find each other's channel.
 */
export const CHANNEL_LABEL = "mcp";

/**
 * The data channel sub-protocol this module announces on the channel it
 * creates. A peer that accepts a channel with this protocol knows the other
 * side speaks the full framing (chunks and keepalives); one without it gets
 * only plain text frames, as the reference implementations expect.
 */
export const CHANNEL_PROTOCOL = "mcp-webrtc.v1";

/**
 * The largest message sent as one frame when the peer's limit is unknown.
 * 64 KiB is what SCTP assumes when an SDP omits `a=max-message-size`, so it is
 * safe with every WebRTC stack.
 */
export const FALLBACK_MAX_MESSAGE_SIZE = 65_536;

/**
 * The largest frame ever sent, whatever the peer advertises: a message up to
 * this size (and the peer's limit) goes as one text frame. libdatachannel and
 * Chrome both advertise 256 KiB.
 */
export const MAX_FRAME_SIZE = 262_144;

/**
 * The largest chunk frame of a message sent in chunks. SCTP hands a message
 * over only once all of it arrived, so smaller chunks keep the receiver busy
 * sooner: on loopback, 16 MiB took 0.89–0.90× the raw channel's time in 64 KiB
 * chunks against 0.73–0.87× in 256 KiB ones (MTU 4000; at 1280, 0.99× against
 * 0.93–0.95×), 1 MiB 11 ms against 14–15 ms.
 */
export const CHUNK_SIZE = 65_536;

/**
 * The default cap on one received message, reassembled: large enough for the
 * tool results people send (files and screenshots of tens of MiB), small enough
 * that a hostile peer cannot exhaust memory with one endless message. A tool
 * result of a 64 MiB file is a little over 64 MiB with its envelope; raise
 * `maxReceiveSize` for such payloads.
 */
export const DEFAULT_MAX_RECEIVE_SIZE = 64 * 1024 * 1024;

/**
 * The default budget of bytes that one agent's unfinished chunked messages
 * may hold on a desktop, across all its sessions (`maxUnfinishedBytesPerAgent`;
 * `unfinishedBudget` of a `WebRTCConnection`): two messages of
 * {@linkcode DEFAULT_MAX_RECEIVE_SIZE} under way at once. An agent is a peer
 * connection: agents that share a ticket cannot be told apart, and a holder of
 * the ticket that opens several connections has this budget on each. A
 * session holds one unfinished message at a time (the channel is ordered), so
 * without it one agent holding 64 sessions could make a desktop keep
 * 64 × 64 MiB (measured before it existed: 63 such sessions grew `serve` to
 * 4.3 GB, and V8's heap limit ended it).
 */
export const DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT = 2 * DEFAULT_MAX_RECEIVE_SIZE;

/**
 * The default budget of bytes that the unfinished chunked messages of all
 * agents together may hold on a desktop (`maxUnfinishedBytes`): two agents'
 * worth of {@linkcode DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT}. What a desktop
 * holds for messages under way is bounded by it whatever the agents do, well
 * below V8's default heap limit (about 4 GiB on 64-bit) even though a message
 * held as strings while parsed takes up to about 2.5 times its bytes. One
 * connection may take half of it; a holder of the ticket with two connections
 * may take all of it, and then other agents' chunked messages are refused
 * until its messages finish or stall.
 */
export const DEFAULT_MAX_UNFINISHED_BYTES = 2 * DEFAULT_MAX_UNFINISHED_BYTES_PER_AGENT;

/**
 * The default budget of bytes a transport's messages may hold while they wait
 * to be written behind others (`queueBudget` of a `DataChannelTransport`):
 * two of {@linkcode DEFAULT_MAX_RECEIVE_SIZE}, so that a full-size answer
 * can wait behind another. A peer that stops reading yet keeps asking made
 * its answers pile up without bound before (200 answers of 1 MiB held 198
 * MiB in a test, with 4 MiB in the channel's buffer). A connection's sessions
 * reserve it inside the connection's
 * {@linkcode DEFAULT_MAX_QUEUED_BYTES_PER_AGENT}.
 */
export const DEFAULT_MAX_QUEUED_BYTES = 2 * DEFAULT_MAX_RECEIVE_SIZE;

/**
 * The default budget of bytes that the messages of all sessions of one
 * connection may hold while they wait to be written behind others: two of
 * {@linkcode DEFAULT_MAX_QUEUED_BYTES}. Kept apart from what its sessions keep
 * until acknowledged, which holds the same messages: counted in one budget,
 * each would count twice.
 */
export const DEFAULT_MAX_QUEUED_BYTES_PER_AGENT = 2 * DEFAULT_MAX_QUEUED_BYTES;

/**
 * The default budget of bytes that the waiting messages of all agents of a
 * listener may hold: two agents' worth of
 * {@linkcode DEFAULT_MAX_QUEUED_BYTES_PER_AGENT}, so that what a desktop holds
 * for agents that stopped reading is bounded whatever they do.
 */
export const DEFAULT_MAX_QUEUED_BYTES_PER_DESKTOP = 2 * DEFAULT_MAX_QUEUED_BYTES_PER_AGENT;

/**
 * How long a chunked message may go without a new chunk before it is dropped
 * and its session closed (`unfinishedMessageTimeout`). It measures progress,
 * not total time: a sender of this module sends a message's chunks back to
 * back (a 64 KiB chunk takes milliseconds even at 100 kB/s), so 10 s without
 * one means the sender stopped in the middle of the message, on purpose or
 * not, and what it holds of the budget goes back.
 */
export const DEFAULT_UNFINISHED_MESSAGE_TIMEOUT = 10_000;

/**
 * The JSON-RPC error code of the answer to a request dropped because its
 * sender stopped in the middle of it ({@linkcode DEFAULT_UNFINISHED_MESSAGE_TIMEOUT}):
 * in the range JSON-RPC leaves to implementations, as the SDK's own transport
 * errors are, so clients show the message.
 */
export const UNFINISHED_MESSAGE_TIMED_OUT = -32000;

/**
 * How long a transport's `start()` waits for its data channel to open
 * (`openTimeout`). On a connection that is up a channel opens within a round
 * trip; one that has not opened in 10 s will not, and a desktop must not
 * hold a session slot for it.
 */
export const DEFAULT_CHANNEL_OPEN_TIMEOUT = 10_000;

/**
 * How long a transport waits for a data channel that the other peer opened to
 * be open. Such a channel is open once its opening message has come, before
 * it is announced; one that the other peer closed right after opening it
 * stays "connecting" on node-datachannel, which fires neither `open` nor
 * `close` for it (measured: 40 channels opened and closed at once by an agent
 * left 40 such channels on the desktop, each holding a session slot). Past
 * it the session is closed, its slot freed, and the error names this limit;
 * the other peer opens a new session if it still wants one. A connection with
 * `resume` waits as long for such a channel's first message (its opener
 * sends it at once: MCP, or which session it starts or resumes).
 */
export const INCOMING_CHANNEL_OPEN_TIMEOUT = 2_000;

/**
 * The JSON-RPC error code of a request or response dropped for exceeding the
 * receiver's cap: in the range JSON-RPC leaves to implementations, so the SDK
 * passes it to the caller as an `McpError` with this code.
 */
export const MESSAGE_TOO_LARGE = -32000;

/**
 * The SCTP MTU (the largest packet each side sends) of a peer connection
 * bound to a loopback address, when the configuration sets none and the
 * other peer said it takes such packets ({@linkcode LARGE_PACKETS_MARK}). On
 * loopback every path is a host candidate pair on the same machine, where no
 * packet is ever cut; per-packet work in libdatachannel is what limits
 * throughput there (measured: 1280, the default, ~90 MB/s raw; 4000 ~200
 * MB/s). Above 4155 nothing arrives: libjuice receives into a 4096-byte
 * buffer. Any other binding keeps libdatachannel's default (1280), which fits
 * every path: the MTU is fixed when the peer connection is made, before any
 * candidate is known.
 */
export const LOOPBACK_MTU = 4000;

/**
 * `send()` waits once the channel buffers more than this many bytes. 4 MiB keeps
 * the SCTP stack saturated on loopback (measured ceiling ~70 MB/s) while a
 * 64 MiB message never holds more than a few MiB in the channel.
 */
export const HIGH_WATER_MARK = 4 * 1024 * 1024;

/**
 * The longest `send()` encodes frames of one message without letting the
 * event loop run, when the channel keeps taking them: a large message is
 * serialised as it is sent, and other sessions' messages, timers and
 * incoming frames are served in between.
 */
export const SEND_SLICE_MS = 4;

/**
 * Sending resumes when the buffer drains to this many bytes
 * (`bufferedAmountLowThreshold`). A quarter of the high-water mark leaves room
 * for the next burst before the pipe runs dry.
 */
export const LOW_WATER_MARK = 1024 * 1024;

/**
 * The most bytes the large messages of a connection's sessions may keep
 * buffered in its SCTP association, together, while it carries more than one
 * session (one session alone fills it to {@linkcode HIGH_WATER_MARK}).
 * libdatachannel sends an association's messages first in, first out, so a
 * small message of one session leaves after everything buffered before it by
 * the others: measured on loopback, a small call beside another session's
 * 64 MiB result waited for the 3–4 MiB buffered ahead of it (p50 78 ms of an
 * 83 ms round trip). With this mark 320 KiB at most were ahead of it; what
 * the SCTP stack itself buffers beyond `bufferedAmount` (about 1 MiB, see
 * the design notes) {@linkcode FAIR_WINDOW} bounds, with peers that report
 * what they read.
 */
export const SHARED_HIGH_WATER_MARK = 256 * 1024;

/**
 * The most bytes of a session's large messages handed to its channel and not
 * yet reported read by the other peer's receiving code, while another session
 * of the same connection sent or received a message within
 * {@linkcode FAIR_ACTIVE_MS}. The other peer reports what it read
 * (see `framing.ts`); a session alone, or beside silent ones, is not held to
 * it, so a lone transfer keeps its speed. Measured on loopback (both peers
 * in one process), the bytes ahead of a small message were not in
 * `bufferedAmount` but in usrsctp's send buffer (1 MiB by default) and on
 * their way to the other peer's code: a small call beside a 64 MiB result
 * waited behind about 1.3 MiB. This bounds all of it, wherever it sits.
 * It is the least window: on a path whose base round trip is
 * {@linkcode FAIR_PATH_RTT_MS} or more, the window follows what the path
 * holds in flight, up to {@linkcode FAIR_WINDOW_MAX}, so that a held transfer
 * does not crawl at `FAIR_WINDOW` a round trip.
 */
export const FAIR_WINDOW = 128 * 1024;

/**
 * The most {@linkcode FAIR_WINDOW} grows to on a path that holds more bytes
 * in flight than it: the sender measures the path's base round trip and the
 * rate the other peer reads at from its reports, and keeps
 * {@linkcode FAIR_WINDOW_GAIN} times their product unread (the path's own
 * bytes in flight and a little more), never less than `FAIR_WINDOW`. 4 MiB
 * lets a transfer held beside another session move 80 MiB/s over a 50 ms
 * path; usrsctp's send buffer (1 MiB by default) and
 * {@linkcode SHARED_HIGH_WATER_MARK} bound what is in flight anyway unless
 * an application raised the former.
 */
export const FAIR_WINDOW_MAX = 4 * 1024 * 1024;

/**
 * How many times the path's bytes in flight (read rate × base round trip)
 * a held sender keeps unread. Above 1, the window grows each round trip
 * while the round trip stays near its base, and stops growing once bytes
 * queue (the round trip rises, the rate does not): then about half the
 * path's bytes in flight wait beyond it, half a base round trip for a small
 * message behind them.
 */
export const FAIR_WINDOW_GAIN = 1.5;

/**
 * Below this base round trip (ms) the window stays {@linkcode FAIR_WINDOW}:
 * at 4 ms it already moves 32 MiB/s, and a base round trip read at the
 * clock's millisecond is no measure of a path that short (on loopback what
 * holds the bytes is the event loop, not the path).
 */
export const FAIR_PATH_RTT_MS = 4;

/**
 * How long (ms) the least round trip a held sender measured stands for the
 * path's base round trip. Once it is older, the window starts again from
 * {@linkcode FAIR_WINDOW} (the queue it kept drains) and the path is
 * measured anew from the chunks handed since: a path whose round trip grew
 * for good is measured again, and a queue the window kept is not taken for
 * the path.
 */
export const FAIR_RTT_INTERVAL_MS = 10_000;

/**
 * How many of the latest read-rate samples (one per report) the window takes
 * the highest of: each already spans a round trip, so a few smooth a late
 * report without keeping a rate the path lost.
 */
export const FAIR_RATE_SAMPLES = 8;

/**
 * How many chunks' send times a held sender keeps to measure the round trip
 * of the bytes a report covers: enough for {@linkcode FAIR_WINDOW_MAX} of
 * full chunks; with more in flight the oldest are dropped (no sample from
 * them).
 */
export const FAIR_SEND_RECORDS = FAIR_WINDOW_MAX / CHUNK_SIZE;

/**
 * How many base round trips a held sender waits for a report before it hands
 * one more chunk anyway, when that is longer than
 * {@linkcode FAIR_REPORT_WAIT_MS}: a slow path is not taken for a peer that
 * stopped reporting.
 */
export const FAIR_REPORT_WAIT_RTTS = 2;

/**
 * The longest (ms) a held sender waits for a report before it hands one more
 * chunk anyway, however long the measured round trip: a peer that reports
 * late on purpose slows its own transfer to a chunk per second at worst.
 */
export const FAIR_REPORT_WAIT_MAX_MS = 1000;

/**
 * How recently another session of the connection must have sent or received
 * a message for {@linkcode FAIR_WINDOW} to hold a session's large messages.
 * Longer than a round trip between two calls of a busy session; short enough
 * that a transfer started after the others fell silent runs unheld.
 */
export const FAIR_ACTIVE_MS = 100;

/**
 * How long a sender held by {@linkcode FAIR_WINDOW} waits for the other
 * peer's report before it hands one more chunk anyway, at least (on a path
 * whose base round trip is longer, {@linkcode FAIR_REPORT_WAIT_RTTS} of
 * them, up to {@linkcode FAIR_REPORT_WAIT_MAX_MS}): reports come as the
 * other peer reads, so this only matters when it stops reading or reporting
 * (it is busy, or was lost), and then the transfer goes on at a chunk per
 * wait instead of stopping.
 */
export const FAIR_REPORT_WAIT_MS = 50;

/**
 * How many bytes of chunk frames a receiver reads before it reports them to
 * a sender that asked for reports: one report per chunk at most.
 */
export const FAIR_REPORT_BYTES = 32 * 1024;

/**
 * How long to wait for a connection (signalling, ICE, DTLS and the channel
 * opening) before giving up. A path through TURN opens in under a second; ICE
 * itself gives up only after ~40 s, so a shorter bound is what tells a user
 * early that no path exists.
 */
export const DEFAULT_CONNECT_TIMEOUT = 15_000;

/**
 * The longest the answerer of an offer from this module waits for the
 * offerer's first ICE candidate before it answers: a bound, not a tuning.
 * The offerer sends its candidates in its offer or right behind it, and the answerer
 * applies them before answering, so that its connectivity checks reach the
 * offerer ahead of the answer (see `Peer`); a host candidate comes within a
 * millisecond of the offer. Offers of other stacks are answered at once.
 */
export const OFFER_CANDIDATE_WAIT = 250;

/**
 * The longest the answerer of an offer from this module waits, before it
 * answers, for its first connectivity check of the offerer's candidates to
 * succeed: a bound, not a tuning. Between peers that reach each other
 * directly (one host, one LAN) the check succeeds within a round trip, and
 * answering after it spares the 50 ms by which libjuice paces a check that
 * a check from the other side triggers (measured on loopback: connect p90
 * 55 ms before, 7 ms after). Where the offerer's NAT drops the check, the
 * answer goes when the bound passes.
 */
export const OFFER_CHECK_WAIT = 20;

/**
 * The session-level SDP attribute with which an offer says it comes from this
 * module. Only then does the answerer make the offerer the DTLS client (it
 * reads the offer's `a=setup:actpass` as `a=setup:active`), the cure for a
 * 1 s DTLS stall of libdatachannel: its DTLS client's first flight, sent as
 * soon as its ICE connects, is often dropped by a server not ready yet and
 * resent only after 1 s. Peers of other stacks never see the swap: aiortc, for
 * one, numbers its channels by its ICE role, and as a DTLS client against a
 * libdatachannel server its `mcp` channel is reset. SDP parsers ignore
 * attributes they do not know (RFC 4566, section 5.13). The answer to a marked
 * offer carries it too: the offerer then knows its answerer follows this
 * module's order, and both may try a refused handshake once more (see
 * `Peer.retryable`).
 */
export const OFFER_MARK = "a=x-mcp-webrtc:dtls-client";

/**
 * The session-level SDP attribute with which an offer of this module says it
 * tries once more after its first attempt's handshake was refused (see
 * `Peer.retryable`). The cause of the refusal: libdatachannel 0.24 hands an
 * applied answer to ICE before it records the answer's fingerprint, and when
 * the answerer's check came before the answer, the offerer's ICE connects in
 * that gap and its DTLS checks the other certificate against no fingerprint
 * if its thread is held up there. On a loaded machine that came back on the
 * new offer (measured: 3 agents dialling one `serve` on two busy cores, a
 * connect failed in 5 of 6 runs, each time on both attempts), and with the
 * DTLS roles swapped back too (the offerer, as DTLS server, refused the
 * client's certificate: its thread was held up for milliseconds). So the
 * retry's offer carries no candidates and the offerer sends its candidates
 * only once the answer is applied: no check can reach it before. Its
 * answerer keeps the default DTLS roles (it is the client) and answers
 * first, as for another stack's offer; the cost, on this attempt alone, is
 * the 1 s stall that {@linkcode OFFER_MARK} spares, at most.
 */
export const RETRY_MARK = "a=x-mcp-webrtc:retry";

/**
 * The session-level SDP attribute with which an answer of this module says
 * that its connectivity check of the offerer's candidates succeeded before it
 * answered: a network path exists. The answer carries {@linkcode OFFER_MARK}
 * too, so the offerer knows its answerer follows this module's order.
 */
export const PATH_MARK = "a=x-mcp-webrtc:path-found";

/**
 * The session-level SDP attribute with which an offer of this module on
 * node-datachannel says that it takes packets of {@linkcode LOOPBACK_MTU}:
 * libjuice receives into a 4096-byte buffer. Only such a peer is sent them.
 * A browser's WebRTC stack (libwebrtc) drops every datagram over 2048 bytes,
 * so at an MTU of 4000 a large message toward Chromium never arrived and the
 * connection closed (measured in `tests/browser_test.ts`: MTU 2100 carries
 * it, 2200 does not); other stacks are not known. The MTU is fixed when the
 * peer connection is made: the answerer makes its connection once the offer
 * has come and reads the mark; the offerer cannot know, and keeps the default.
 */
export const LARGE_PACKETS_MARK = "a=x-mcp-webrtc:large-packets";

/**
 * How soon after the offer and answer were exchanged a connection between two
 * peers of this module must have failed at the ICE or DTLS stage for both to
 * try once more with a new offer (see `Peer.retryable`): over a working path
 * the handshake takes a few round trips (milliseconds; about 1 s when one
 * flight is lost and resent), and libdatachannel's early certificate check
 * (the race the retry cures) fails within 20 ms on loopback. It decides a
 * retry only; what an error says comes from what was observed.
 */
export const DTLS_REFUSAL_WINDOW = 5_000;

/**
 * How long a peer whose DTLS handshake failed, with nothing here showing why
 * (the other peer's certificate matched, or never came), waits for the other
 * peer's goodbye before it fails with what it saw: the other peer may have
 * observed the cause (our certificate against an altered fingerprint) and
 * says so in its goodbye, which follows its failure within milliseconds.
 * Not waited for between two peers of this module that will try once more.
 */
export const DIAGNOSIS_WAIT = 1_000;

/**
 * How many refusal notices one `AuthenticatedSignaling` sends per connection:
 * each answers an envelope that failed its seal, so a relay that floods
 * forgeries could otherwise make an end send as many notices. The first
 * notice is the one that matters (an altered offer or answer ends the
 * connect); a few more cover altered candidates.
 */
export const MAX_REFUSAL_NOTICES = 8;

/**
 * How many of its last sealed messages `AuthenticatedSignaling` remembers (a
 * sequence number and a code each, about 100 bytes), to tell a refusal notice
 * about one of them from a forgery: a pairing sends a hello, a description,
 * a few candidates and a goodbye, so a notice names one of the last few;
 * older ones are forgotten, so that a long-lived signalling channel holds no
 * more than this.
 */
export const SENT_MESSAGES_REMEMBERED = 256;

/**
 * How long `close()` waits for the goodbye to be handed to signalling: the
 * other peer learns at once that the connection is gone, yet a signalling
 * channel that is already down cannot hold a close up.
 */
export const BYE_TIMEOUT = 500;

/**
 * How long a peer that received the other's goodbye waits for the data
 * channels to close before it takes the connection as gone: the other peer
 * closes them first, but the goodbye may be handled first, and the messages
 * the channels still carry would be lost (a session's end among them, so a
 * session closed on purpose would wait for a redial).
 */
export const BYE_DRAIN_TIMEOUT = 500;

/**
 * The most messages a session holds from the other peer before its own side
 * (the desktop's server, made for it) starts: an MCP client sends
 * `initialize` and waits for its result before anything but pings and
 * notifications, so a handful is all a peer needs. A peer that sends more
 * ends the session with an error that says so; together with
 * {@linkcode MAX_EARLY_BYTES} this bounds what a peer can make the desktop
 * hold while a server is being made.
 */
export const MAX_EARLY_MESSAGES = 16;

/**
 * The most bytes (as JSON) of the messages a session holds from the other
 * peer before its own side starts (see {@linkcode MAX_EARLY_MESSAGES}).
 */
export const MAX_EARLY_BYTES = 1024 * 1024;

/**
 * How long a side that ends a resumable session waits for the other side's
 * answer (its own `mcp-webrtc/end`) before it closes the channel: closed at
 * once, the channel's close could reach the other peer's code before the end
 * did, and the other side would hold the session for a redial.
 */
export const SESSION_END_TIMEOUT = 500;

/**
 * How long closing waits for a data channel's `close` event, and then for the
 * connection's: node-datachannel releases its callbacks into JavaScript only
 * then, and a process that ends before it may crash. Both come within
 * milliseconds on a live connection; the bound covers a dead one.
 */
export const CHANNEL_RELEASE_TIMEOUT = 500;

/**
 * The bound on waiting for a closed node-datachannel connection's `closed`
 * state; see {@linkcode CHANNEL_RELEASE_TIMEOUT}. A browser's connection is
 * not waited for: the standard's `close()` fires no event.
 */
export const CONNECTION_RELEASE_TIMEOUT = 1_000;

/**
 * How often a peer that speaks the full framing sends a keepalive frame when it
 * has sent nothing else. libdatachannel notices a vanished peer only after
 * 14–29 s; keepalives let us notice within {@linkcode DEFAULT_IDLE_TIMEOUT}.
 */
export const DEFAULT_KEEPALIVE_INTERVAL = 1_000;

/**
 * A peer that has sent nothing (not even a keepalive) for this long is taken as
 * gone and the transport closes. Eight missed keepalives: long enough for a busy
 * event loop, short enough to notice a killed process within 10 s. With
 * `resume` on, {@linkcode RESUME_IDLE_TIMEOUT} instead.
 */
export const DEFAULT_IDLE_TIMEOUT = 8_000;

/**
 * How long a dialling connection stays up after its last MCP session closed.
 * HTTP clients open a session per task and often close it just before opening
 * the next: 30 s keeps the next session free of ICE and DTLS (tens of
 * milliseconds on loopback, several round trips across the internet) while a
 * connection nobody uses is still given back within a minute.
 */
export const DEFAULT_CONNECTION_LINGER = 30_000;

/**
 * Bytes of sent messages one session keeps until the other peer acknowledges
 * them, so that it can send them again on a new peer connection after a
 * network change. The other peer decides when it acknowledges, so this bounds
 * what it can make us hold; a session that would go over it fails with an
 * error naming it. 64 MiB is {@linkcode DEFAULT_MAX_RECEIVE_SIZE}: the largest
 * message the other peer takes by default fits, and the other peer
 * acknowledges within {@linkcode RESUME_ACK_INTERVAL} of reading it.
 */
export const DEFAULT_MAX_UNACKNOWLEDGED_BYTES = 64 * 1024 * 1024;

/**
 * The default budget of bytes that all sessions of one connection together
 * keep until the other peer acknowledges them
 * (`maxUnacknowledgedBytesPerAgent` of a listener, `unacknowledgedBudget` of
 * a `WebRTCConnection`): four of {@linkcode DEFAULT_MAX_UNACKNOWLEDGED_BYTES},
 * four of the largest messages the other peer takes by default at once. Each
 * session has its own budget inside it. An agent that never acknowledges
 * could otherwise make a desktop keep that much per session, on each of its
 * sessions (64 MiB × 64 sessions, past V8's heap limit).
 */
export const DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT = 4 * DEFAULT_MAX_UNACKNOWLEDGED_BYTES;

/**
 * The default budget of bytes that the sessions of all agents of a listener
 * keep until acknowledged (`maxUnacknowledgedBytes` of a listener): two
 * agents' worth of {@linkcode DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT}, so
 * that what a desktop keeps for resends is bounded whatever its agents do.
 */
export const DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_DESKTOP = 2 *
  DEFAULT_MAX_UNACKNOWLEDGED_BYTES_PER_AGENT;

/**
 * Milliseconds a session waits, after receiving a message it has not yet
 * acknowledged, before it acknowledges on its own: short against the round
 * trip of a call, so the other side's kept messages are given back quickly,
 * and long enough for one acknowledgement to cover a burst.
 */
export const RESUME_ACK_INTERVAL = 100;

/**
 * Messages a session receives before it acknowledges at once, without
 * waiting for {@linkcode RESUME_ACK_INTERVAL}: a stream of small messages
 * costs one acknowledgement per 64 of them.
 */
export const RESUME_ACK_EVERY = 64;

/**
 * Milliseconds a connection keeps a resumable session whose peer connection
 * was lost, for the dialling side to dial again and resume it; after it the
 * session ends as it does when a connection closes. Two minutes covers a
 * change of Wi-Fi, a VPN coming up or a laptop's short sleep.
 */
export const DEFAULT_RESUME_GRACE = 120_000;

/** Milliseconds before the first redial after a lost connection; each failed one doubles it. */
export const RESUME_BACKOFF_FIRST = 250;

/**
 * The longest wait between two redials. A redial costs one signalling
 * exchange and a few ICE checks, so trying every second for the grace period
 * is cheap, and a path that comes back is found within about a second: with
 * 8 s, a session lost in an 8 s outage waited up to 8 s more after the
 * network was back.
 */
export const RESUME_BACKOFF_MAX = 1_000;

/**
 * Milliseconds one redial may take before it is given up for the next
 * (`connectTimeout` when that is shorter). A redial made while the network is
 * still down is checked by ICE at growing intervals, so it succeeds only at
 * its next check once the network is back (in the namespace lab, one begun
 * during an outage connected 3.6 s after it began, up to 2 s after the
 * network was back), or fails after `connectTimeout` (15 s): a fresh one
 * finds the path at once. Above `relayAfter`'s default (3 s), so
 * that a redial can still move to the relay.
 */
export const RESUME_DIAL_TIMEOUT = 4_000;

/**
 * Milliseconds of silence after which a connection with `resume` on takes its
 * path as lost, unless `idleTimeout` is given: three missed keepalives
 * ({@linkcode DEFAULT_KEEPALIVE_INTERVAL}). Shorter than
 * {@linkcode DEFAULT_IDLE_TIMEOUT} because a false alarm costs only a redial
 * (its sessions resume), while a late one keeps calls waiting on a dead path:
 * with it, a session is back about 3.5 s after its path moved.
 */
export const RESUME_IDLE_TIMEOUT = 3_000;

/**
 * The largest message accepted on a connection's resume control channel (a
 * claim, a grant or an answer: about 150 bytes); a larger one is refused
 * and the channel closed, so a peer cannot make us parse more.
 */
export const MAX_RESUME_CLAIM_BYTES = 1024;

/**
 * The most MCP sessions one agent may hold open on one connection. Each
 * session is a server (the CLI bridge starts a process for each), so the
 * limit bounds what one agent can make a desktop run; 64 is above what MCP
 * clients open in practice (the conformance suite opens about 30, one per
 * scenario, and closes none).
 */
export const DEFAULT_MAX_SESSIONS_PER_AGENT = 64;

/**
 * The most MCP sessions one agent may start per second on a desktop
 * (`sessionStartsPerSecond`), after a burst of `maxSessionsPerAgent`: each
 * start is a server (the CLI bridge starts a process for each), and a loop
 * that opened and closed channels started ~120 processes a second before
 * this existed. An agent may fill its slots at once (the MCP conformance
 * suite opens about 30 sessions, a pool of HTTP clients 50); past that, one
 * start more than the rate allows is refused with a JSON-RPC error naming
 * the limit, and starts nothing.
 */
export const DEFAULT_SESSION_STARTS_PER_SECOND = 10;

/**
 * The JSON-RPC error code of the answer to a session over the per-agent
 * limit: in the range JSON-RPC leaves to implementations, as the MCP SDK's own
 * transport errors are, so clients show the message.
 */
export const SESSION_LIMIT_REACHED = -32000;

/**
 * How long `close()` waits for queued frames to leave before closing the
 * channel, so a final response is not discarded.
 */
export const CLOSE_DRAIN_TIMEOUT = 2_000;

/**
 * While `close()` waits for queued frames to leave, how often it looks at the
 * channel's `bufferedAmount`: often enough that a drained channel closes
 * within a frame's time, rarely enough to cost nothing.
 */
export const DRAIN_CHECK_INTERVAL = 20;

/**
 * How long a sender waiting for the channel to drain below the high-water mark
 * sleeps before it looks again, should `bufferedamountlow` not come (an
 * implementation that misses the event must not stall a session for good).
 */
export const BUFFERED_LOW_CHECK_INTERVAL = 250;

/**
 * The most agents (peer connections, and so room slots) a listener serves at
 * once (`maxAgents`, `serve --agents`). Each holds a peer connection with its
 * ports and native threads; eight covers a person's agents, and a room holds
 * more guests than that.
 */
export const DEFAULT_MAX_AGENTS = 8;

/**
 * The most agents (peer connections) one named invite may hold at once
 * (`maxAgentsPerInvite`, `serve --agents-per-invite`): half of
 * `DEFAULT_MAX_AGENTS`, so that the holder of one invite cannot take every
 * agent slot from the others (as the budgets per agent connection are half
 * the desktop's). The one shared guest ticket is bounded by `maxAgents` only:
 * the desktop cannot tell its holders apart.
 */
export const DEFAULT_MAX_AGENTS_PER_INVITE = 4;

/**
 * How long the CLI, stopped by a signal, waits for its connections to close
 * before it exits: enough for the goodbye ({@linkcode BYE_TIMEOUT}) and the
 * release of the peer connection, short enough that a stopped process is
 * gone at once for the user who pressed Ctrl-C.
 */
export const CLI_STOP_TIMEOUT = 1_500;

/**
 * Milliseconds the dialling side waits, from the answer it received, for ICE to
 * find a path before it moves the connection to the relay through the
 * signalling room. ICE found its path within 0.5 s in every NAT-lab case
 * measured (cone NATs through STUN 65–200 ms, symmetric NATs through TURN
 * 120–500 ms), and within milliseconds on one machine; 3 s leaves six times
 * that for slow links, while an agent behind a firewall that drops UDP waits
 * 3 s for its relay instead of libjuice's 39.5 s of failing checks.
 */
export const RELAY_FALLBACK_DELAY = 3_000;

/**
 * Bytes of relayed frames (sealed, their tag included) a peer lets the other
 * have in flight toward it through the signalling room: the credit it grants
 * in its relay hello and renews as it reads (QUIC's flow control, RFC 9000
 * §4). A sender stops at the window and its `send()` waits, so between peers
 * that keep to it the room holds at most this much per direction whatever the
 * reader does (the room cannot see inside the seal to enforce it): with the default
 * `MAX_GUESTS` of 8, 16 MiB for a full room, far below a Worker's 128 MB. The
 * default 1 MiB is the bandwidth-delay product of the room's pace (4 MiB/s
 * per side at the default `RELAY_BYTES_PER_SECOND`) at a 250 ms round trip,
 * so the window binds only on slower links; on loopback a 16 MiB result
 * crossed as fast with it as without (see bench/README.md).
 */
export const RELAY_WINDOW = 1024 * 1024;

/**
 * The smallest window a relay hello may grant: the largest relay frame (a
 * 64 KiB message, its 5-byte header and its 16-byte AES-GCM tag), so that
 * every frame can be sent once the window is free. A hello that grants less
 * is refused as malformed: with it a sender could never send a full chunk.
 */
export const RELAY_MIN_WINDOW = 65_536 + 5 + 16;

/**
 * Bytes of uncounted relay frames (credits and the end, which the window
 * does not cover, so that flow control cannot stall itself) that a receiver
 * lets arrive beyond the window it granted before it closes the relay path
 * as one whose peer ignores flow control. An honest peer has a few credit
 * frames (29 bytes each) and one end in flight at most; 64 KiB is over two
 * thousand of them, and still bounds what a peer that ignores the window
 * makes the receiver hold.
 */
export const RELAY_CONTROL_SLACK = 64 * 1024;

/**
 * How long a bridge whose one side ended waits for the answers still queued
 * for the other side to leave before closing it: a final response is
 * delivered, a stuck transport does not hold the bridge.
 */
export const BRIDGE_DRAIN_TIMEOUT = 2_000;

/**
 * How long closing a stream transport (the CLI's stdio, a child's pipes)
 * waits for its writable to close before it aborts it: a reader that stopped
 * reading leaves a write, and so the close, pending for ever.
 */
export const STREAM_CLOSE_TIMEOUT = 2_000;

/**
 * How long a bridge waits, when a side closes while starting, for the reason
 * its `start()` failed, so the other side hears why rather than only that it
 * closed.
 */
export const BRIDGE_FAILURE_TIMEOUT = 1_000;

/**
 * How long closing an HTTP session waits for the upstream server to answer
 * its DELETE: polite to a server that keeps per-session state, bounded for one
 * that does not answer.
 */
export const HTTP_TERMINATE_TIMEOUT = 1_000;

/**
 * The most HTTP sessions `connect --http` holds at once (`--sessions`). Each
 * is a data channel to the desktop and a server there, so the bridge holds no
 * more than a desktop serves one agent by default
 * ({@linkcode DEFAULT_MAX_SESSIONS_PER_AGENT}); one more `initialize` is
 * answered `503` without dialling, until a session is deleted or closed for
 * being idle (`--session-idle`).
 */
export const DEFAULT_MAX_HTTP_SESSIONS = DEFAULT_MAX_SESSIONS_PER_AGENT;

/**
 * The largest body of an `initialize` POST that opens an HTTP session,
 * read before anything is dialled. An SDK client's is under 1 KiB and a
 * client with icons in its `clientInfo` a few KiB; 1 MiB leaves room for
 * those and keeps a request that was never an MCP client from making the
 * bridge buffer up to the 64 MiB a session's messages may reach. A larger
 * one is answered `413`.
 */
export const MAX_HTTP_INITIALIZE_SIZE = 1024 * 1024;

/**
 * How long a refused agent's signalling (or its extra channel) is kept to
 * deliver the reason of the refusal: the agent hears why instead of timing
 * out, and an agent that never listens holds nothing for long.
 */
export const REFUSAL_TIMEOUT = 2_000;

/**
 * How long a guest waits for the host to be in its room (the CLI's `--wait`):
 * a desktop restarting or reconnecting is back within seconds; one that is
 * off should be reported while the user still waits for an answer.
 */
export const DEFAULT_HOST_TIMEOUT = 30_000;

/**
 * How long closing the room's WebSocket waits for the server's close frame:
 * it comes within a round trip from a live server (and without it workerd
 * keeps a half-closed connection); a dead one must not hold a close up.
 */
export const SOCKET_CLOSE_TIMEOUT = 1_000;

/**
 * How long `TcpSocketSignaling`'s connecting side retries while nobody listens
 * yet: the two sides of a pair are usually started by hand or by a script,
 * seconds apart.
 */
export const TCP_SIGNALING_CONNECT_TIMEOUT = 30_000;

/**
 * How often a connection's path is read while something listens for its
 * changes (`onpathchange`): neither libdatachannel nor node-datachannel tells
 * when ICE moves to another candidate pair (its `selectedcandidatepairchange`
 * never fires), and libjuice does move, e.g. from a TURN pair to a direct one
 * a few hundred ms after the channel opened. One read is one `getStats()`
 * call, microseconds on node-datachannel; a change is reported within this
 * interval. The reading stops with the connection.
 */
export const PATH_CHECK_INTERVAL = 500;

/**
 * How long `doctor` waits for the signalling service: its `/health` answer,
 * a room's welcome, the room's TURN credentials and a relayed frame each. A
 * service a few hundred milliseconds away answers well within it; one that
 * takes longer would make every connection slow to set up, and is reported
 * as unreachable.
 */
export const DOCTOR_SIGNALING_TIMEOUT = 3_000;

/**
 * How long `doctor` waits for the STUN servers' answers, all sent at once
 * from one socket: a round trip to a STUN server on another continent is
 * under 300 ms, and the request is sent again (see
 * {@linkcode DOCTOR_STUN_RETRANSMIT}) to ride out a lost packet.
 */
export const DOCTOR_STUN_TIMEOUT = 2_000;

/** How often `doctor` sends a STUN request again while it has no answer: a lost packet costs this much. */
export const DOCTOR_STUN_RETRANSMIT = 400;

/**
 * How long `doctor` waits for a TURN server to allocate a relay over UDP (a
 * relay candidate gathered): two round trips to the server, the first
 * refused for want of the nonce, as every TURN allocation goes.
 */
export const DOCTOR_TURN_TIMEOUT = 3_000;

/**
 * The longest `keyId` an MCP offer may name, in UTF-16 code units: a name by
 * which the desktop looks up the key of a room (a room id is 22 characters),
 * with room to spare; a longer one is refused, so that an offer from anyone
 * cannot make the desktop's lookup hash or log an arbitrarily long string.
 */
export const A2A_MAX_KEY_ID_LENGTH = 256;

/**
 * Signalling an `A2ASignalingRouter` holds open at once, over all tasks and
 * users: a dial's signalling stays open from the agent's offer until the
 * executor closes its transport or connection (done, or the connect timed
 * out because the desktop never answered) or the user's stream ends, so an
 * agent that authenticates nobody could otherwise be made to hold a peer
 * connection for each of any number of offers sent and abandoned. It also
 * bounds the desktops one router is connected to at once. One more is
 * refused by `openSignaling()` with an error naming this limit (the executor
 * fails that task); a signalling that closes frees its place.
 */
export const A2A_MAX_OPEN_SIGNALING = 128;

/**
 * Invites one signalling room holds at most, `guest` included: defined with
 * the room protocol, which the worker shares (see `room_protocol.ts`).
 */
export { MAX_INVITES } from "./signaling/room_protocol.ts";

/**
 * The most tool names one invite may list (`MAX_INVITE_TOOLS`): a server
 * with more tools than this is given whole, not listed tool by tool. One
 * more is refused when the invite is made.
 */
export const MAX_INVITE_TOOLS = 256;

/**
 * The largest request `serve`'s control port reads (`invite`, `revoke`,
 * `invites`), in bytes: an invite with `MAX_INVITE_TOOLS` tool names of 128
 * characters fits in 40 KiB. A larger one is answered with an error naming
 * this limit.
 */
export const CONTROL_MAX_REQUEST_BYTES = 65_536;

/**
 * How long `serve`'s control port waits for a request's line after the
 * connection opened: the commands send it at once; a connection that sends
 * nothing is answered with an error naming this limit and closed.
 */
export const CONTROL_REQUEST_TIMEOUT = 5_000;

/**
 * How long `invite`, `revoke` and `invites` wait for `serve`'s answer: the
 * room's acknowledgement and closing a revoked agent's connection take well
 * under a second; past this, the command fails saying serve did not answer.
 */
export const CONTROL_REPLY_TIMEOUT = 15_000;

/**
 * Requests `serve`'s control port answers at once; one more is answered with
 * an error naming this limit. The port is on 127.0.0.1 and needs the token
 * from the 0600 host ticket file, so only the desktop's owner gets this far.
 */
export const CONTROL_MAX_CONNECTIONS = 8;

/**
 * The most requests of one MCP session a `PolicyTransport` tracks
 * while they await their response (`maxTrackedRequests`): it must know which
 * answer belongs to a `tools/list` to filter it, and when each request
 * started to audit it. One more request is refused with a JSON-RPC error
 * naming this limit, rather than forwarded untracked (an untracked
 * `tools/list` answer would pass unfiltered). MCP clients wait for their
 * answers; a thousand in flight on one session is far past what they send,
 * and at about 200 bytes an entry it holds some 200 KiB.
 */
export const DEFAULT_MAX_TRACKED_REQUESTS = 1_024;

/**
 * The JSON-RPC error code of the answer to a `tools/call` of a tool the
 * agent is not allowed: `-32602` (invalid params), the code MCP gives a call
 * of an unknown tool, which is what such a tool is to this agent.
 */
export const TOOL_NOT_ALLOWED = -32_602;

/**
 * The most bytes of audit lines `serve --audit` holds while the file is
 * being written: a disk slower than the records arrive fills it, and the
 * records that do not fit are counted instead and the count written as a
 * line of its own once there is room. At a few hundred bytes a line, about
 * four thousand records.
 */
export const AUDIT_QUEUE_BYTES = 1_048_576;

/**
 * The longest method or tool name `serve --audit` writes, in UTF-16 code
 * units; a longer one (an agent chooses them) is cut there and marked with
 * `…`, so that one line stays small.
 */
export const AUDIT_MAX_NAME_LENGTH = 256;

/**
 * The longest offer or answer (its SDP, in characters) a peer accepts through
 * signalling: a data-channel-only description is about 1 KiB, and one that
 * holds its candidates (a peer that does not trickle) a few KiB more; a longer
 * one is refused, so that a peer cannot make the other parse and keep an
 * arbitrarily long text.
 */
export const MAX_SDP_LENGTH = 65_536;

/**
 * The longest ICE candidate line (in characters) a peer accepts through
 * signalling: a candidate line is under 200 characters; a longer one is
 * refused.
 */
export const MAX_CANDIDATE_LENGTH = 1_024;

/**
 * The most characters of the other peer's goodbye reason (or of a relay's end
 * reason) kept in a diagnosis: room for the other peer's own diagnosis, which
 * is at most a few hundred characters; the rest is cut.
 */
export const MAX_BYE_REASON_LENGTH = 600;

/**
 * The most remote ICE candidates kept while the remote description is
 * awaited: a peer gathers a few per interface and server; one that sends more
 * before its description has its extra candidates refused.
 */
export const MAX_QUEUED_CANDIDATES = 64;

/**
 * The most signalling messages kept for a direct attempt that has not
 * started yet (a retry's offer and its candidates, arriving before the
 * attempt): the same bound as queued candidates, and the rest is dropped.
 */
export const MAX_ATTEMPT_QUEUE = 64;

/**
 * Relay frames a room client keeps for a pipe nobody listens to yet (the
 * other peer's first frames, arriving before this side opened its link): the
 * link listens within a round trip, so more means nobody will, and the rest
 * is dropped.
 */
export const RELAY_MAX_WAITING_FRAMES = 256;

/**
 * The share of the room's relay `bytesPerSecond` one socket sends at: half,
 * so that both ends sending at full speed at once stay within the room's
 * budget and the room refuses only when several relayed agents send at once.
 */
export const RELAY_PACE_SHARE = 0.5;

/**
 * Relay frames received and waiting to be opened (decrypted) on one link:
 * opening runs side by side and keeps up with the room's rate by far, so more
 * means the link cannot keep up, and it ends with a `RelayError` that says so.
 */
export const RELAY_MAX_INBOX_FRAMES = 1_024;

/**
 * How long a signalling room connection waits for the room's welcome (each
 * attempt), and for its answer to a request for ICE servers: a room a few
 * hundred milliseconds away answers within a second; a room that takes ten
 * is as good as unreachable, and the user should hear so.
 */
export const ROOM_TIMEOUT = 10_000;

/**
 * How often a signalling room connection pings the room: a ping without a
 * pong by the next one means the connection is dead. Well under the 60 s
 * after which proxies and NATs commonly drop an idle TCP connection.
 */
export const ROOM_PING_INTERVAL = 20_000;

/**
 * The delay before the first reconnect to a signalling room after a drop;
 * each next one doubles (with jitter): a room restarting is back within a
 * second, and a crowd of clients must not come back all at once.
 */
export const ROOM_RECONNECT_MIN_DELAY = 500;

/**
 * The longest delay between two reconnects to a signalling room: a desktop
 * whose network came back reconnects within this, and a room that is down
 * for long is asked at most twice a minute by each client.
 */
export const ROOM_RECONNECT_MAX_DELAY = 30_000;

/**
 * How long `connect --http` waits for the whole body of a request once its
 * headers are in; past it the request is answered `408` naming this limit and
 * its connection closed. A client sends its body right behind its headers:
 * the largest one taken (64 MiB, `DEFAULT_MAX_RECEIVE_SIZE`) was read in
 * 43–72 ms over loopback, and needs 54 Mbit/s over a network to arrive in
 * 10 s, so only a client that stalled or trickles its body reaches it. It counts
 * total time, not progress: a body sent a byte at a time would otherwise keep
 * what it holds of {@linkcode MAX_HTTP_BODY_BYTES} for ever.
 */
export const HTTP_BODY_TIMEOUT = 10_000;

/**
 * Bytes of request bodies `connect --http` holds at once while it reads them,
 * across all its connections: two of the largest a session takes
 * (`DEFAULT_MAX_RECEIVE_SIZE`), as for the messages it holds for a reader
 * ({@linkcode DEFAULT_MAX_QUEUED_BYTES}). Without it, any local process could
 * start bodies and never finish them, making the bridge hold up to 1 MiB per
 * connection without a session and 64 MiB per connection with one. A body
 * whose bytes do not fit is answered `503` with `Retry-After`, naming this
 * limit; the bodies that fit are read on.
 */
export const MAX_HTTP_BODY_BYTES = 2 * DEFAULT_MAX_RECEIVE_SIZE;

/**
 * How long the HTTP bridge (`connect --http`) keeps an MCP session no request
 * used: an MCP client that went away without a DELETE frees its session (and
 * its WebRTC session) after ten minutes, while a user who pauses keeps it.
 */
export const HTTP_SESSION_IDLE = 600_000;

/**
 * How long the stdio bridge waits after SIGTERM before it kills the MCP
 * server child with SIGKILL: a server that flushes its output and exits does
 * so within a few hundred milliseconds; one that ignores SIGTERM is not
 * waited for.
 */
export const CHILD_KILL_GRACE = 400;

/**
 * How long a child process's exit waits for the rest of what it wrote on
 * stderr to be read: a process that exited wrote its last line already, and
 * the pipe is read within milliseconds; a process it started may keep the
 * pipe open, and is not waited for.
 */
export const CHILD_OUTPUT_DRAIN_TIMEOUT = 1_000;

/**
 * The shortest interval at which `connect --http` looks for idle sessions
 * (it looks four times per `--session-idle`): a very short idle time in a
 * test must not make it spin.
 */
export const HTTP_SWEEP_MIN_INTERVAL = 50;

/**
 * The longest interval at which `connect --http` looks for idle sessions: a
 * session is closed at most this long after its idle time ran out.
 */
export const HTTP_SWEEP_MAX_INTERVAL = 30_000;
