import assert from "node:assert/strict";
import { type Message, type Part, Role, type Task, TaskState } from "@a2a-js/sdk";
import { RequestMalformedError, TaskNotFoundError } from "@a2a-js/sdk/errors";
import {
  type A2ARequestHandler,
  type AgentExecutionEvent,
  DefaultExecutionEventBus,
  InMemoryTaskStore,
  RequestContext,
  ServerCallContext,
} from "@a2a-js/sdk/server";
import type { SignalingMessage } from "../signaling/signaling.ts";
import { AuthenticatedSignaling } from "../signaling/authenticated_signaling.ts";
import { A2A_MAX_OPEN_SIGNALING } from "../constants.ts";
import { WebRTCTransportError } from "../errors.ts";
import {
  A2A_MAX_KEY_ID_LENGTH,
  A2A_MAX_PENDING_MESSAGES,
  A2A_MAX_SIGNALING_MESSAGE_SIZE,
  A2A_MAX_SIGNALING_PARTS,
  A2A_SIGNALING_EXTENSION_URI,
  A2A_SIGNALING_MEDIA_TYPE,
  a2aMcpOffer,
  a2aSignalingExtension,
  A2ASignalingRouter,
} from "./mod.ts";

const TASK = "task-1";
const CONTEXT = "context-1";

function user(name: string) {
  return { isAuthenticated: name !== "", userName: name };
}

function message(parts: Part[], extra: Partial<Message> = {}): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
    ...extra,
  };
}

function dataPart(data: unknown, mediaType = A2A_SIGNALING_MEDIA_TYPE): Part {
  return { content: { $case: "data", value: data }, mediaType, filename: "", metadata: undefined };
}

function textPart(text: string): Part {
  return {
    content: { $case: "text", value: text },
    mediaType: "text/plain",
    filename: "",
    metadata: undefined,
  };
}

/** The desktop's secret, as its streaming request and every reply carry it. */
const SECRET = "s".repeat(43);

/** The executor's side of a task whose user message carries `offer` (or none). */
function task(offer?: unknown, userName = "", wrapped = true, taskId = TASK) {
  const metadata = offer === undefined ? undefined : { [A2A_SIGNALING_EXTENSION_URI]: offer };
  const call = new ServerCallContext({ user: user(userName) });
  // What the wrapped request handler keeps for the call it streams.
  if (wrapped) {
    call.state.set(`${A2A_SIGNALING_EXTENSION_URI}#call`, {
      secret: SECRET,
      published: new Set(),
    });
  }
  const request = {
    tenant: "",
    message: message([textPart("hello")], { metadata }),
    configuration: undefined,
    metadata: undefined,
  };
  const context = new RequestContext(request, taskId, CONTEXT, call);
  const bus = new DefaultExecutionEventBus();
  const events: AgentExecutionEvent[] = [];
  bus.on("event", (event) => events.push(event));
  return { context, bus, events, call };
}

/** A request handler that records what reaches it. */
function innerHandler() {
  const reached: string[] = [];
  const handler = {
    sendMessage: (params: { message?: Message }) => {
      reached.push(`sendMessage ${params.message?.messageId}`);
      return Promise.resolve(params.message!);
    },
    async *sendMessageStream() {
      reached.push("sendMessageStream");
      yield { payload: undefined };
    },
  } as unknown as A2ARequestHandler;
  return { handler, reached };
}

function reply(signals: unknown[], extra: Partial<Message> = {}, secret: string = SECRET) {
  return {
    tenant: "",
    message: message(signals.map((signal) => dataPart(signal)), {
      contextId: CONTEXT,
      referenceTaskIds: [TASK],
      ...extra,
    }),
    configuration: undefined,
    metadata: { [A2A_SIGNALING_EXTENSION_URI]: { secret } } as Record<string, unknown>,
  };
}

function received(signaling: { onmessage?: (m: SignalingMessage) => void }, count: number) {
  const messages: SignalingMessage[] = [];
  return new Promise<SignalingMessage[]>((resolve) => {
    signaling.onmessage = (m) => {
      messages.push(m);
      if (messages.length === count) resolve(messages);
    };
  });
}

const OFFER = { version: 2, sealed: false };
const UNSEALED = { sealed: false } as const;

Deno.test("A2ASignalingRouter.openSignaling() refuses a message without an offer, and offers and keys that disagree", async () => {
  const router = new A2ASignalingRouter();
  const none = task();
  assert.throws(
    () => router.openSignaling(none.context, none.bus, UNSEALED),
    /does not offer an MCP server/,
  );
  const sealed = task({ version: 2, sealed: true, keyId: "room-7" });
  assert.throws(
    () => router.openSignaling(sealed.context, sealed.bus, UNSEALED),
    /desktop seals its signalling with key "room-7" and no key was given/,
  );
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
  const plain = task(OFFER);
  assert.throws(
    () => router.openSignaling(plain.context, plain.bus, { key }),
    /offer is not sealed/,
  );
  const ok = task({ version: 2, sealed: true });
  assert.ok(router.openSignaling(ok.context, ok.bus, { key }) instanceof AuthenticatedSignaling);
  assert.throws(
    () => a2aMcpOffer({ metadata: { [A2A_SIGNALING_EXTENSION_URI]: { v: 2 } } }),
    TypeError,
  );
  const longKeyId = { version: 2, sealed: true, keyId: "k".repeat(A2A_MAX_KEY_ID_LENGTH + 1) };
  assert.throws(
    () => a2aMcpOffer({ metadata: { [A2A_SIGNALING_EXTENSION_URI]: longKeyId } }),
    /keyId\?: string of at most A2A_MAX_KEY_ID_LENGTH \(256\) characters/,
  );
  const longest = { ...longKeyId, keyId: "k".repeat(A2A_MAX_KEY_ID_LENGTH) };
  assert.equal(
    a2aMcpOffer({ metadata: { [A2A_SIGNALING_EXTENSION_URI]: longest } })?.keyId,
    longest.keyId,
  );
});

Deno.test("A2ASignalingRouter.openSignaling() fails closed: a key that is not a key, or no word on sealing, is a TypeError", async () => {
  const router = new A2ASignalingRouter();
  const sealed = task({ version: 2, sealed: true, keyId: "room-7" });
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
  const short = await crypto.subtle.generateKey(
    { name: "HMAC", hash: "SHA-256", length: 128 },
    false,
    ["sign", "verify"],
  );
  for (
    const [options, pattern] of [
      [undefined, /no options were given/],
      [{}, /neither 'key' nor 'sealed: false'/],
      [{ key: undefined }, /'key' is undefined/],
      [{ key: null }, /'key' is null/],
      [{ key: Promise.resolve(key) }, /'key' is a promise/],
      [{ key: "secret" }, /'key' is a string/],
      [{ key: short }, /not an HMAC-SHA-256 key of 256 bits/],
      [{ key, sealed: false }, /both 'key' and 'sealed'/],
    ] as const
  ) {
    assert.throws(
      () => router.openSignaling(sealed.context, sealed.bus, options as never),
      (error: Error) => error instanceof TypeError && pattern.test(error.message),
      pattern.source,
    );
  }
  // A lookup by the offer's keyId.
  const asked: (string | undefined)[] = [];
  const lookup = (keyId: string | undefined) => {
    asked.push(keyId);
    return keyId === "room-7" ? key : undefined;
  };
  const opened = router.openSignaling(sealed.context, sealed.bus, { key: lookup });
  assert.ok(opened instanceof AuthenticatedSignaling);
  await opened.close();
  assert.deepEqual(asked, ["room-7"]);
  const stranger = task({ version: 2, sealed: true, keyId: "room-8" });
  assert.throws(
    () => router.openSignaling(stranger.context, stranger.bus, { key: lookup }),
    /no key was found for the desktop's key id "room-8"/,
  );
  const promised = task({ version: 2, sealed: true, keyId: "room-7" });
  assert.throws(
    () =>
      router.openSignaling(promised.context, promised.bus, {
        key: () => Promise.resolve(key) as never,
      }),
    /'key' is a promise/,
  );
});

Deno.test("A2ASignalingRouter.openSignaling() refuses a request that did not pass through the wrapped handler", () => {
  const router = new A2ASignalingRouter();
  const { context, bus } = task(OFFER, "", false);
  assert.throws(
    () => router.openSignaling(context, bus, UNSEALED),
    /did not pass through A2ASignalingRouter.wrapRequestHandler\(\)/,
  );
});

Deno.test("A2ASignalingRouter.openSignaling() allows one open signalling per task, and a new one once closed", async () => {
  const router = new A2ASignalingRouter();
  const { context, bus } = task(OFFER);
  const first = router.openSignaling(context, bus, UNSEALED);
  assert.throws(() => router.openSignaling(context, bus, UNSEALED), /already has open signalling/);
  await first.close();
  await router.openSignaling(context, bus, UNSEALED).close();
});

Deno.test("A2ASignalingRouter signalling sends each message as a WORKING status update with one signalling part", async () => {
  const router = new A2ASignalingRouter();
  const { context, bus, events, call } = task(OFFER);
  const signaling = router.openSignaling(context, bus, UNSEALED);
  await signaling.start?.();
  await signaling.send({ type: "offer", sdp: "v=0" });
  assert.equal(events.length, 1);
  const event = events[0]!;
  assert.equal(event.kind, "statusUpdate");
  if (event.kind !== "statusUpdate") return;
  assert.equal(event.data.taskId, TASK);
  assert.equal(event.data.contextId, CONTEXT);
  assert.equal(event.data.status?.state, TaskState.TASK_STATE_WORKING);
  const parts = event.data.status?.message?.parts ?? [];
  assert.equal(parts.length, 1);
  assert.equal(parts[0]!.mediaType, A2A_SIGNALING_MEDIA_TYPE);
  assert.deepEqual(parts[0]!.content, { $case: "data", value: { type: "offer", sdp: "v=0" } });
  assert.deepEqual(event.data.status?.message?.extensions, [A2A_SIGNALING_EXTENSION_URI]);
  assert.deepEqual(call.activatedExtensions, [A2A_SIGNALING_EXTENSION_URI]);
  await signaling.close();
});

Deno.test("A2ASignalingRouter routes replies to the task's signalling, in order, and never to the inner handler", async () => {
  const router = new A2ASignalingRouter();
  const { handler, reached } = innerHandler();
  const wrapped = router.wrapRequestHandler(handler);
  const { context, bus } = task(OFFER);
  const signaling = router.openSignaling(context, bus, UNSEALED);
  const got = received(signaling, 3);
  // Before start(): kept for it.
  const ack = await wrapped.sendMessage(
    reply([{ type: "answer", sdp: "v=0" }, { type: "candidate", candidate: { candidate: "a" } }]),
    new ServerCallContext({ user: user("") }),
  ) as Message;
  await signaling.start?.();
  // A reply naming the task in taskId (not referenceTaskIds) is routed the same way.
  await wrapped.sendMessage(
    reply([{ type: "candidate", candidate: { candidate: "b" } }], {
      taskId: TASK,
      referenceTaskIds: [],
    }),
    new ServerCallContext({ user: user("") }),
  );
  assert.deepEqual((await got).map((m) => m.type), ["answer", "candidate", "candidate"]);
  assert.equal(ack.role, Role.ROLE_AGENT);
  assert.deepEqual(ack.referenceTaskIds, [TASK]);
  assert.deepEqual(reached, []);
  // Anything else goes to the inner handler.
  const plain = reply([]);
  plain.message.parts = [textPart("hi")];
  await wrapped.sendMessage(plain, new ServerCallContext());
  assert.deepEqual(reached, [`sendMessage ${plain.message.messageId}`]);
  await signaling.close();
});

Deno.test("A2ASignalingRouter refuses malformed and misdirected replies with A2A errors that say why", async () => {
  const router = new A2ASignalingRouter();
  const wrapped = router.wrapRequestHandler(innerHandler().handler);
  const { context, bus } = task(OFFER, "ada");
  const signaling = router.openSignaling(context, bus, UNSEALED);
  const as = (name: string) => new ServerCallContext({ user: user(name) });
  const candidate = { type: "candidate", candidate: { candidate: "a" } };
  const mixed = reply([candidate]);
  mixed.message.parts.push(textPart("and a word"));
  const cases: [ReturnType<typeof reply>, string, unknown, RegExp][] = [
    [mixed, "ada", RequestMalformedError, /part 1 is not of media type/],
    [
      reply([candidate], { referenceTaskIds: [] }),
      "ada",
      RequestMalformedError,
      /exactly one task/,
    ],
    [
      reply([candidate], { referenceTaskIds: [TASK, "x"] }),
      "ada",
      RequestMalformedError,
      /exactly one task/,
    ],
    [
      reply([candidate], { referenceTaskIds: ["other"] }),
      "ada",
      TaskNotFoundError,
      /no open signalling/,
    ],
    [reply([candidate]), "mallory", TaskNotFoundError, /belongs to someone else/],
    [reply([candidate], {}, "t".repeat(43)), "ada", TaskNotFoundError, /secret opens/],
    [{ ...reply([candidate]), metadata: {} }, "ada", TaskNotFoundError, /secret opens/],
    [reply([candidate], { contextId: "other" }), "ada", RequestMalformedError, /contextId/],
    [reply(["not an object"]), "ada", RequestMalformedError, /JSON object with a string 'type'/],
    [reply([{ kind: "offer" }]), "ada", RequestMalformedError, /string 'type'/],
    [
      reply(Array.from({ length: A2A_MAX_SIGNALING_PARTS + 1 }, () => candidate)),
      "ada",
      RequestMalformedError,
      /the limit is 64/,
    ],
    [
      reply([{ type: "offer", sdp: "x".repeat(A2A_MAX_SIGNALING_MESSAGE_SIZE) }]),
      "ada",
      RequestMalformedError,
      /too large/,
    ],
  ];
  for (const [request, name, type, pattern] of cases) {
    await assert.rejects(
      wrapped.sendMessage(request, as(name)),
      (error: Error) => error instanceof (type as typeof Error) && pattern.test(error.message),
      pattern.source,
    );
  }
  await assert.rejects(
    async () => {
      for await (const _ of wrapped.sendMessageStream(reply([candidate]), as("ada"))) {
        // Nothing is streamed.
      }
    },
    /send it with SendMessage/,
  );
  await signaling.close();
});

Deno.test("A2ASignalingRouter signalling closes when the task's stream ends, and refuses to send after", async () => {
  const router = new A2ASignalingRouter();
  const wrapped = router.wrapRequestHandler(innerHandler().handler);
  for (
    const end of [
      (bus: DefaultExecutionEventBus) =>
        bus.publish({
          kind: "statusUpdate",
          data: {
            taskId: TASK,
            contextId: CONTEXT,
            status: {
              state: TaskState.TASK_STATE_INPUT_REQUIRED,
              message: undefined,
              timestamp: "",
            },
            metadata: undefined,
          },
        }),
      (bus: DefaultExecutionEventBus) => bus.finished(),
    ]
  ) {
    const { context, bus } = task(OFFER);
    const signaling = router.openSignaling(context, bus, UNSEALED);
    const closed = new Promise<void>((resolve) => (signaling.onclose = resolve));
    end(bus);
    await closed;
    await assert.rejects(signaling.send({ type: "bye" }), /stream to the desktop has ended/);
    await assert.rejects(
      wrapped.sendMessage(reply([{ type: "bye" }]), new ServerCallContext()),
      TaskNotFoundError,
    );
  }
});

Deno.test("A2ASignalingRouter.wrapTaskStore() keeps signalling out of the stored history and status", async () => {
  const router = new A2ASignalingRouter();
  const inner = new InMemoryTaskStore();
  const store = router.wrapTaskStore(inner);
  const signaling = message([dataPart({ type: "offer", sdp: "v=0" })]);
  const words = message([textPart("What does notes.txt say?")]);
  const saved: Task = {
    id: TASK,
    contextId: CONTEXT,
    status: { state: TaskState.TASK_STATE_WORKING, message: signaling, timestamp: "" },
    artifacts: [],
    history: [words, signaling],
    metadata: undefined,
  };
  const context = new ServerCallContext();
  await store.save(saved, context);
  const loaded = await store.load(TASK, context);
  assert.deepEqual(loaded?.history.map((m) => m.messageId), [words.messageId]);
  assert.equal(loaded?.status?.message, undefined);
  assert.equal(loaded?.status?.state, TaskState.TASK_STATE_WORKING);
  // A status message with words stays.
  await store.save({ ...saved, status: { ...saved.status!, message: words } }, context);
  assert.equal((await store.load(TASK, context))?.status?.message?.messageId, words.messageId);
  assert.equal((await store.list({} as never, context)).tasks.length, 1);
});

Deno.test("A2ASignalingRouter refuses replies beyond the pending limit while the signalling has not started", async () => {
  const router = new A2ASignalingRouter();
  const wrapped = router.wrapRequestHandler(innerHandler().handler);
  const { context, bus } = task(OFFER);
  const signaling = router.openSignaling(context, bus, UNSEALED);
  const candidates = Array.from(
    { length: A2A_MAX_SIGNALING_PARTS },
    () => ({ type: "candidate", candidate: { candidate: "a" } }),
  );
  const rounds = A2A_MAX_PENDING_MESSAGES / A2A_MAX_SIGNALING_PARTS;
  for (let i = 0; i < rounds; i++) {
    await wrapped.sendMessage(reply(candidates), new ServerCallContext());
  }
  await assert.rejects(
    wrapped.sendMessage(reply([{ type: "bye" }]), new ServerCallContext()),
    (error: Error) =>
      error instanceof RequestMalformedError &&
      /256 signalling messages already wait/.test(error.message),
  );
  await signaling.close();
});

/** A plain text message that names the task in `taskId`, with `secret` in the request's metadata (or none). */
function plainOnTask(secret?: string) {
  return {
    tenant: "",
    message: message([textPart("hi")], { taskId: TASK, contextId: CONTEXT }),
    configuration: undefined,
    metadata: secret === undefined
      ? undefined
      : { [A2A_SIGNALING_EXTENSION_URI]: { secret } } as Record<string, unknown>,
  };
}

/** Runs a streaming request through to its end. */
async function stream(handler: A2ARequestHandler, params: ReturnType<typeof plainOnTask>) {
  for await (const _ of handler.sendMessageStream(params, new ServerCallContext())) {
    // Drained.
  }
}

Deno.test("A2ASignalingRouter refuses a message that names a task with open signalling in taskId unless it carries the task's secret, and passes nothing on", async () => {
  const router = new A2ASignalingRouter();
  const { handler, reached } = innerHandler();
  const wrapped = router.wrapRequestHandler(handler);
  const { context, bus } = task(OFFER);
  const signaling = router.openSignaling(context, bus, UNSEALED);
  const refused = (error: Error) =>
    error instanceof TaskNotFoundError &&
    /task task-1 belongs to the desktop whose request opened its signalling, and this request does not carry its secret/
      .test(
        error.message,
      );
  // Plain text, with no secret or another one; and a streaming request (a second offer) likewise.
  await assert.rejects(wrapped.sendMessage(plainOnTask(), new ServerCallContext()), refused);
  await assert.rejects(
    wrapped.sendMessage(plainOnTask("t".repeat(43)), new ServerCallContext()),
    refused,
  );
  await assert.rejects(stream(wrapped, plainOnTask()), refused);
  await assert.rejects(stream(wrapped, plainOnTask("t".repeat(43))), refused);
  assert.deepEqual(reached, []);
  // The desktop's own message (its secret) goes through.
  const own = plainOnTask(SECRET);
  await wrapped.sendMessage(own, new ServerCallContext());
  await stream(wrapped, plainOnTask(SECRET));
  assert.deepEqual(reached, [`sendMessage ${own.message.messageId}`, "sendMessageStream"]);
  // Closing the signalling does not end the guard: a redial may open it again while the stream lasts.
  await signaling.close();
  await assert.rejects(wrapped.sendMessage(plainOnTask(), new ServerCallContext()), refused);
  // Once the task's stream ends (here: input required), anyone the SDK lets may follow up.
  bus.publish({
    kind: "statusUpdate",
    data: {
      taskId: TASK,
      contextId: CONTEXT,
      status: { state: TaskState.TASK_STATE_INPUT_REQUIRED, message: undefined, timestamp: "" },
      metadata: undefined,
    },
  });
  const after = plainOnTask();
  await wrapped.sendMessage(after, new ServerCallContext());
  assert.equal(reached.at(-1), `sendMessage ${after.message.messageId}`);
});

Deno.test("A2ASignalingRouter refuses a reply to a dial that has not happened, naming the dial it expects", async () => {
  const router = new A2ASignalingRouter();
  const wrapped = router.wrapRequestHandler(innerHandler().handler);
  const { context, bus } = task(OFFER);
  const signaling = router.openSignaling(context, bus, UNSEALED);
  const future = reply([{ type: "bye", reason: "x" }]);
  future.metadata = { [A2A_SIGNALING_EXTENSION_URI]: { secret: SECRET, dial: 7 } };
  await assert.rejects(
    wrapped.sendMessage(future, new ServerCallContext()),
    (error: Error) =>
      error instanceof RequestMalformedError &&
      /names dial 7 of task task-1, which is at dial 1/.test(error.message),
  );
  await signaling.close();
});

Deno.test("A2ASignalingRouter holds at most A2A_MAX_OPEN_SIGNALING signallings open at once, and refuses one more saying so", async () => {
  const router = new A2ASignalingRouter();
  const open = Array.from(
    { length: A2A_MAX_OPEN_SIGNALING },
    (_, i) => {
      const { context, bus } = task(OFFER, "", true, `task-${i}`);
      return router.openSignaling(context, bus, UNSEALED);
    },
  );
  const one = task(OFFER, "", true, "one-more");
  assert.throws(
    () => router.openSignaling(one.context, one.bus, UNSEALED),
    (error: Error) =>
      error instanceof WebRTCTransportError &&
      new RegExp(
        `holds ${A2A_MAX_OPEN_SIGNALING} signallings open at once, the limit \\(A2A_MAX_OPEN_SIGNALING\\)`,
      ).test(
        error.message,
      ),
  );
  await open[0]!.close();
  const again = router.openSignaling(one.context, one.bus, UNSEALED);
  await Promise.all([again, ...open].map((signaling) => signaling.close()));
});

Deno.test("a2aSignalingExtension() has the documented defaults", () => {
  assert.deepEqual(a2aSignalingExtension(), {
    uri: A2A_SIGNALING_EXTENSION_URI,
    description:
      "Reaches the MCP server of the user's desktop over WebRTC; signalling travels in this task's messages.",
    required: false,
    params: { version: 2 },
  });
  assert.equal(a2aSignalingExtension({ required: true, description: "x" }).required, true);
});
