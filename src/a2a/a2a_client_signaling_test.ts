import assert from "node:assert/strict";
import {
  type Message,
  type Part,
  Role,
  type SendMessageRequest,
  type StreamResponse,
  type Task,
  TaskState,
} from "@a2a-js/sdk";
import type { RequestOptions } from "@a2a-js/sdk/client";
import type { Signaling, SignalingMessage } from "../signaling/signaling.ts";
import { AuthenticatedSignaling } from "../signaling/authenticated_signaling.ts";
import { yieldToEventLoop } from "../_async.ts";
import nodeDataChannel from "node-datachannel";
import {
  A2A_MAX_PENDING_MESSAGES,
  A2A_SIGNALING_EXTENSION_URI,
  A2A_SIGNALING_MEDIA_TYPE,
  A2AClientSignaling,
  type McpChannelEvent,
  sendMessageOfferingMcp,
} from "./mod.ts";

const TASK = "task-1";
const CONTEXT = "context-1";

function part(data: unknown, mediaType = A2A_SIGNALING_MEDIA_TYPE): Part {
  return { content: { $case: "data", value: data }, mediaType, filename: "", metadata: undefined };
}

/** An agent's message, with the routing mark the router's signalling carries (or without). */
function agentMessage(parts: Part[], routed = true): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: CONTEXT,
    taskId: TASK,
    role: Role.ROLE_AGENT,
    parts,
    metadata: routed ? { [A2A_SIGNALING_EXTENSION_URI]: { routed: true } } : undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/** The router's acknowledgement of a reply. */
function acknowledgement(): Message {
  return {
    ...agentMessage([]),
    taskId: "",
    extensions: [A2A_SIGNALING_EXTENSION_URI],
    referenceTaskIds: [TASK],
  };
}

function taskEvent(): StreamResponse {
  return {
    payload: {
      $case: "task",
      value: {
        id: TASK,
        contextId: CONTEXT,
        status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: "" },
        artifacts: [],
        history: [],
        metadata: undefined,
      },
    },
  };
}

function statusEvent(
  parts: Part[],
  state = TaskState.TASK_STATE_WORKING,
  routed = true,
): StreamResponse {
  return {
    payload: {
      $case: "statusUpdate",
      value: {
        taskId: TASK,
        contextId: CONTEXT,
        status: { state, message: agentMessage(parts, routed), timestamp: "" },
        metadata: undefined,
      },
    },
  };
}

/** The agent's last word: the task completed, with a text that is not signalling. */
function doneEvent(): StreamResponse {
  return statusEvent([{
    ...part(""),
    content: { $case: "text", value: "done" },
    mediaType: "text/plain",
  }], TaskState.TASK_STATE_COMPLETED);
}

/** A client whose `sendMessage` calls wait until released, one by one. */
function fakeClient(refuse = false, answer: () => Message | Task = acknowledgement) {
  const requests: { params: SendMessageRequest; options?: RequestOptions }[] = [];
  const waiting: (() => void)[] = [];
  const client = {
    sendMessage(params: SendMessageRequest, options?: RequestOptions) {
      requests.push({ params, options });
      return new Promise<Message | Task>((resolve, reject) =>
        waiting.push(() => refuse ? reject(new Error("Task not found")) : resolve(answer()))
      );
    },
  };
  return {
    client,
    requests,
    /** Resolves once `count` requests were made (requests leave a turn after `send()`). */
    async requested(count: number) {
      for (let i = 0; i < 100 && requests.length < count; i++) await yieldToEventLoop();
      assert.equal(requests.length, count);
    },
    /** Answers the oldest request, once one is there. */
    async release() {
      for (let i = 0; i < 100 && waiting.length === 0; i++) await yieldToEventLoop();
      waiting.shift()?.();
    },
  };
}

function collect(signaling: Signaling): SignalingMessage[] {
  const got: SignalingMessage[] = [];
  signaling.onmessage = (message) => got.push(message);
  return got;
}

Deno.test("A2AClientSignaling.receive() consumes the agent's signalling and leaves every other event", async () => {
  const { client } = fakeClient();
  const signaling = new A2AClientSignaling(client);
  const got = collect(signaling);
  const errors: Error[] = [];
  signaling.onerror = (error) => errors.push(error);
  assert.equal(signaling.receive(taskEvent()), false);
  assert.equal(signaling.taskId, TASK);
  assert.equal(signaling.receive(statusEvent([part({ type: "offer", sdp: "v=0" })])), true);
  assert.equal(
    signaling.receive(statusEvent([{ ...part("x"), content: { $case: "text", value: "Hi" } }])),
    true,
    "a malformed signalling part is consumed (and reported)",
  );
  assert.equal(signaling.receive(statusEvent([part({ text: "hi" }, "application/json")])), false);
  assert.equal(signaling.receive({ payload: undefined }), false);
  assert.equal(got.length, 0, "nothing before start()");
  await signaling.start();
  assert.equal(signaling.receive(statusEvent([part({ type: "candidate", candidate: {} })])), true);
  await Promise.resolve();
  assert.deepEqual(got.map((m) => m.type), ["offer", "candidate"]);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /not a data part/);
  await signaling.close();
});

Deno.test("A2AClientSignaling.send() sends one request at a time, batching what queued meanwhile, naming the task in referenceTaskIds", async () => {
  const fake = fakeClient();
  const signaling = new A2AClientSignaling(fake.client, {
    requestOptions: {
      serviceParameters: { "a2a-extensions": "urn:other", Authorization: "Bearer t" },
    },
  });
  await signaling.start();
  const first = signaling.send({ type: "answer", sdp: "v=0" });
  await Promise.resolve();
  assert.equal(fake.requests.length, 0, "waits until the stream named its task");
  signaling.receive(taskEvent());
  const second = signaling.send({ type: "candidate", candidate: { candidate: "a" } });
  const third = signaling.send({ type: "candidate", candidate: { candidate: "b" } });
  assert.equal(fake.requests.length, 1, "one request in flight");
  await fake.release();
  await first;
  await fake.release();
  await Promise.all([second, third]);
  assert.equal(fake.requests.length, 2);
  const [one, two] = fake.requests.map(({ params }) => params.message!);
  assert.equal(one!.parts.length, 1);
  assert.deepEqual(
    two!.parts.map((p) => p.content?.$case === "data" ? p.content.value.candidate.candidate : ""),
    ["a", "b"],
  );
  for (const message of [one!, two!]) {
    assert.equal(message.taskId, "", "never taskId: it would end the user's stream");
    assert.deepEqual(message.referenceTaskIds, [TASK]);
    assert.equal(message.contextId, CONTEXT);
    assert.equal(message.role, Role.ROLE_USER);
    assert.deepEqual(message.extensions, [A2A_SIGNALING_EXTENSION_URI]);
  }
  assert.deepEqual(fake.requests[0]!.options?.serviceParameters, {
    Authorization: "Bearer t",
    "A2A-Extensions": `urn:other,${A2A_SIGNALING_EXTENSION_URI}`,
  });
  await signaling.close();
});

Deno.test("A2AClientSignaling sends what is handed over in one turn in one request: an answer and its candidates", async () => {
  const fake = fakeClient();
  const signaling = new A2AClientSignaling(fake.client);
  await signaling.start();
  signaling.receive(taskEvent());
  const answer = signaling.send({ type: "answer", sdp: "v=0" });
  // As a peer hands them over: each a microtask after the one before.
  await Promise.resolve();
  const candidate = signaling.send({ type: "candidate", candidate: {} });
  await fake.requested(1);
  assert.equal(fake.requests[0].params.message?.parts.length, 2);
  await fake.release();
  await Promise.all([answer, candidate]);
  await signaling.close();
});

Deno.test("A2AClientSignaling.send() rejects when the agent refuses, and close() rejects what still waits", async () => {
  const fake = fakeClient(true);
  const signaling = new A2AClientSignaling(fake.client);
  await signaling.start();
  signaling.receive(taskEvent());
  const refused = signaling.send({ type: "answer", sdp: "v=0" });
  await fake.requested(1);
  // Behind the request in flight: it waits for the next one.
  const waiting = signaling.send({ type: "candidate", candidate: {} });
  await fake.release();
  await assert.rejects(
    refused,
    /Cannot send signalling to the agent as it refused the request: Task not found/,
  );
  let closes = 0;
  signaling.onclose = () => closes++;
  await signaling.close();
  await signaling.close();
  await assert.rejects(waiting, /closed/);
  await assert.rejects(signaling.send({ type: "bye" }), /closed/);
  await Promise.resolve();
  assert.equal(closes, 1);
  assert.throws(() => new A2AClientSignaling({} as never), /not an A2A Client/);
});

function userParams(): SendMessageRequest {
  return {
    tenant: "",
    message: { ...agentMessage([]), role: Role.ROLE_USER, metadata: { mine: 1 } },
    configuration: undefined,
    metadata: undefined,
  };
}

Deno.test("sendMessageOfferingMcp() offers the MCP server with a secret in the request; an agent's offer it cannot apply gets a goodbye that says why, and no server; the rest is yielded", async () => {
  const fake = fakeClient();
  const sent: { params: SendMessageRequest; options?: RequestOptions }[] = [];
  const hold = Promise.withResolvers<void>();
  const words = doneEvent();
  const events = [taskEvent(), statusEvent([part({ type: "offer", sdp: "v=0" })]), words];
  const client = {
    ...fake.client,
    async *sendMessageStream(params: SendMessageRequest, options?: RequestOptions) {
      sent.push({ params, options });
      yield* events.slice(0, 2);
      await hold.promise;
      yield events[2]!;
    },
  };
  let created = 0;
  const yielded: (StreamResponse | McpChannelEvent)[] = [];
  const reading = (async () => {
    for await (
      const event of sendMessageOfferingMcp(client, userParams(), {
        keyId: "room",
        sealed: false,
        createServer: () => {
          created++;
          return { connect: () => Promise.resolve(), close: () => Promise.resolve() };
        },
      })
    ) yielded.push(event);
  })();
  // An offer the desktop cannot take: the agent is told why, with the secret and the dial it answers.
  await fake.requested(1);
  const request = sent[0]!.params;
  const secret = (request.metadata?.[A2A_SIGNALING_EXTENSION_URI] as { secret: string }).secret;
  assert.deepEqual(fake.requests[0]!.params.metadata, {
    [A2A_SIGNALING_EXTENSION_URI]: { secret, dial: 1 },
  });
  const bye = fake.requests[0]!.params.message?.parts?.[0]?.content;
  assert.ok(bye?.$case === "data");
  const said = bye.value as { type: string; reason?: string };
  assert.equal(said.type, "bye");
  assert.match(said.reason ?? "", /offer from the other peer was refused/);
  await fake.release();
  hold.resolve();
  await reading;
  assert.equal(created, 0, "no server for a connection that did not come about");
  assert.deepEqual(yielded.slice(0, 1), [events[0]]);
  const channel = yielded.find((event) => event.payload?.$case === "mcpChannel");
  assert.ok(channel?.payload?.$case === "mcpChannel");
  assert.equal(channel.payload.value.state, "failed");
  assert.ok(yielded.includes(words));
  assert.deepEqual(request.message!.extensions, [A2A_SIGNALING_EXTENSION_URI]);
  assert.deepEqual(request.message!.metadata, {
    mine: 1,
    [A2A_SIGNALING_EXTENSION_URI]: { version: 2, sealed: false, keyId: "room", resume: true },
  });
  assert.match(secret, /^[\w-]{43}$/, "a secret in the request's metadata, not the message's");
  assert.equal(
    sent[0]!.options?.serviceParameters?.["A2A-Extensions"],
    A2A_SIGNALING_EXTENSION_URI,
  );
});

/**
 * A real offer, with its candidates in it (another stack's, as this module's
 * answerer reads it: answered at once), from a native connection on 127.0.0.1.
 */
async function nativeOffer(): Promise<{ sdp: string; close(): void }> {
  const pc = new nodeDataChannel.PeerConnection("offerer", {
    iceServers: [],
    bindAddress: "127.0.0.1",
  });
  const gathered = new Promise<void>((resolve) =>
    pc.onGatheringStateChange((state) => state === "complete" && resolve())
  );
  pc.createDataChannel("mcp");
  await gathered;
  return { sdp: pc.localDescription()!.sdp, close: () => pc.close() };
}

Deno.test("sendMessageOfferingMcp() answers the agent before it makes the MCP server, and one that cannot be made ends the connection with the agent told why", async () => {
  const offer = await nativeOffer();
  const fake = fakeClient();
  const hold = Promise.withResolvers<void>();
  const words = doneEvent();
  const client = {
    ...fake.client,
    async *sendMessageStream() {
      yield taskEvent();
      yield statusEvent([part({ type: "offer", sdp: offer.sdp })]);
      await hold.promise;
      yield words;
    },
  };
  /** The signalling types of each reply the desktop sent, in order. */
  const replies = () =>
    fake.requests.map(({ params }) =>
      (params.message?.parts ?? []).map((p) =>
        p.content?.$case === "data" ? (p.content.value as { type: string }).type : ""
      )
    );
  let answersBeforeServer: string[][] | undefined;
  const yielded: (StreamResponse | McpChannelEvent)[] = [];
  const reading = (async () => {
    for await (
      const event of sendMessageOfferingMcp(client, userParams(), {
        sealed: false,
        transportOptions: { iceServers: [], rtcConfiguration: { bindAddress: "127.0.0.1" } },
        createServer: () => {
          answersBeforeServer ??= replies();
          throw new Error("no server today");
        },
      })
    ) yielded.push(event);
  })();
  try {
    await fake.requested(1);
    assert.equal(replies()[0]![0], "answer", "the answer leaves first");
    assert.equal(
      answersBeforeServer,
      undefined,
      "no server is made before the answer is out",
    );
    await fake.release();
    // The answer acknowledged, the server is made; it cannot be: the agent is told why.
    await fake.requested(2);
    assert.deepEqual(answersBeforeServer?.[0]?.[0], "answer");
    assert.deepEqual(
      (fake.requests[1]!.params.metadata?.[A2A_SIGNALING_EXTENSION_URI] as { dial?: number }).dial,
      1,
    );
    const bye = fake.requests[1]!.params.message!.parts!.map((p) =>
      p.content?.$case === "data" ? p.content.value as { type: string; reason?: string } : undefined
    ).find((signal) => signal?.type === "bye");
    assert.match(bye?.reason ?? "", /createServer\(\) failed: no server today/);
    for (let i = 0; i < 4; i++) await fake.release();
  } finally {
    hold.resolve();
    await reading;
    offer.close();
  }
  const channel = yielded.find((event) => event.payload?.$case === "mcpChannel");
  assert.ok(channel?.payload?.$case === "mcpChannel" && channel.payload.value.state === "failed");
  assert.match(
    channel.payload.value.state === "failed" ? channel.payload.value.error.message : "",
    /createServer\(\) failed: no server today/,
  );
  assert.ok(yielded.includes(words));
});

Deno.test("sendMessageOfferingMcp() fails closed at the call: a key that is not a key, or no word on sealing, is a TypeError", async () => {
  const client = {
    ...fakeClient().client,
    async *sendMessageStream() {
      yield taskEvent();
    },
  };
  const createServer = () => ({ connect: () => Promise.resolve(), close: () => Promise.resolve() });
  const short = await crypto.subtle.generateKey(
    { name: "HMAC", hash: "SHA-256", length: 128 },
    false,
    ["sign", "verify"],
  );
  for (
    const [options, pattern] of [
      [{}, /'options.createServer' is not a function/],
      [{ createServer }, /neither 'key' nor 'sealed: false'/],
      [{ createServer, key: undefined }, /'key' is undefined/],
      [{ createServer, key: null }, /'key' is null/],
      [{ createServer, key: Promise.resolve() }, /'key' is a promise/],
      [{ createServer, key: short }, /not an HMAC-SHA-256 key of 256 bits/],
      [{ createServer, sealed: true }, /neither 'key' nor 'sealed: false'/],
      [{ createServer, sealed: false, keyId: 7 }, /'keyId' is not a string/],
      [
        { createServer, sealed: false, keyId: "k".repeat(257) },
        /'keyId' is not a string of at most A2A_MAX_KEY_ID_LENGTH \(256\) characters: name the key with a shorter string/,
      ],
    ] as const
  ) {
    assert.throws(
      () => sendMessageOfferingMcp(client, userParams(), options as never),
      (error: Error) => error instanceof TypeError && pattern.test(error.message),
      pattern.source,
    );
  }
  // Said unsealed, and no agent signal: no server, no channel event.
  let created = 0;
  const yielded: (StreamResponse | McpChannelEvent)[] = [];
  for await (
    const event of sendMessageOfferingMcp(client, userParams(), {
      createServer: () => (created++, createServer()),
      sealed: false,
    })
  ) yielded.push(event);
  assert.equal(created, 0);
  assert.deepEqual(yielded.map((event) => event.payload?.$case), ["task"]);
});

Deno.test("sendMessageOfferingMcp() refuses an agent whose signalling lacks the routing mark, before any reply and without a server", async () => {
  const fake = fakeClient();
  const client = {
    ...fake.client,
    async *sendMessageStream() {
      yield taskEvent();
      yield statusEvent([part({ type: "offer", sdp: "v=0" })], TaskState.TASK_STATE_WORKING, false);
    },
  };
  let created = 0;
  const yielded: (StreamResponse | McpChannelEvent)[] = [];
  for await (
    const event of sendMessageOfferingMcp(client, userParams(), {
      createServer: () => {
        created++;
        return { connect: () => Promise.resolve(), close: () => Promise.resolve() };
      },
      sealed: false,
    })
  ) yielded.push(event);
  assert.equal(created, 0);
  assert.equal(fake.requests.length, 0, "no reply reached the agent");
  const last = yielded.at(-1);
  assert.ok(last?.payload?.$case === "mcpChannel" && last.payload.value.state === "failed");
  assert.match(
    last.payload.value.state === "failed" ? last.payload.value.error.message : "",
    /not wrapped with A2ASignalingRouter.wrapRequestHandler\(\)/,
  );
});

Deno.test("A2AClientSignaling refuses an agent that answers a reply with anything but an acknowledgement", async () => {
  const newTask = () => (taskEvent().payload as { value: Task }).value;
  const fake = fakeClient(false, newTask);
  const signaling = new A2AClientSignaling(fake.client);
  const errors: Error[] = [];
  signaling.onerror = (error) => errors.push(error);
  await signaling.start();
  signaling.receive(taskEvent());
  const sent = signaling.send({ type: "answer", sdp: "v=0" });
  await fake.release();
  await assert.rejects(sent, /not an acknowledgement/);
  assert.match(signaling.failure?.message ?? "", /wrapRequestHandler/);
  await assert.rejects(signaling.send({ type: "bye" }), /not an acknowledgement/);
  assert.equal(errors.length, 1);
});

Deno.test("A2AClientSignaling.close() still delivers what the agent sent before, then fires onclose", async () => {
  const signaling = new A2AClientSignaling(fakeClient().client);
  const order: string[] = [];
  signaling.onmessage = (message) => order.push(message.type);
  const closed = new Promise<void>((resolve) =>
    signaling.onclose = () => {
      order.push("close");
      resolve();
    }
  );
  await signaling.start();
  signaling.receive(taskEvent());
  signaling.receive(statusEvent([part({ type: "bye", reason: "refused" })]));
  await signaling.close();
  await closed;
  assert.deepEqual(order, ["bye", "close"]);
});

Deno.test("A2AClientSignaling.receive() drops the agent's signalling beyond the pending limit, with an error", () => {
  const signaling = new A2AClientSignaling(fakeClient().client);
  const errors: Error[] = [];
  signaling.onerror = (error) => errors.push(error);
  for (let i = 0; i <= A2A_MAX_PENDING_MESSAGES; i++) {
    assert.equal(
      signaling.receive(statusEvent([part({ type: "candidate", candidate: {} })])),
      true,
    );
  }
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /256 signalling messages already wait/);
});

Deno.test("A sealed goodbye that arrives just before the stream ends is verified and delivered before the signalling closes", async () => {
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
  // The agent's end: a guest whose sealed messages are recorded, as the stream would carry them.
  const agentOut: SignalingMessage[] = [];
  const agentInner: Signaling = {
    send: (message) => (agentOut.push(message), Promise.resolve()),
    close: () => Promise.resolve(),
  };
  const guest = new AuthenticatedSignaling(agentInner, { key, role: "guest" });
  // The desktop's end: a host over A2AClientSignaling, whose replies reach the guest.
  const client = {
    sendMessage(params: SendMessageRequest) {
      for (const part of params.message!.parts) {
        if (part.content?.$case === "data") agentInner.onmessage?.(part.content.value);
      }
      return Promise.resolve(acknowledgement());
    },
  };
  const desktop = new A2AClientSignaling(client);
  const host = new AuthenticatedSignaling(desktop, { key, role: "host" });
  const order: string[] = [];
  host.onmessage = (message) => order.push(`${message.type} ${message.reason}`);
  host.onerror = (error) => order.push(`error ${error.message}`);
  const closed = new Promise<void>((resolve) =>
    host.onclose = () => {
      order.push("close");
      resolve();
    }
  );
  desktop.receive(taskEvent());
  await guest.start();
  await host.start();
  // The stream carries the guest's hello, then its goodbye; the stream ends right after.
  desktop.receive(statusEvent([part(agentOut.shift())]));
  await guest.send({ type: "bye", reason: "refused by the agent" });
  // Its second hello (naming the host's nonce) and the goodbye, in one turn with the stream's end.
  for (const message of agentOut.splice(0)) desktop.receive(statusEvent([part(message)]));
  await desktop.close();
  await closed;
  assert.deepEqual(order, ["bye refused by the agent", "close"]);
  await guest.close();
});
