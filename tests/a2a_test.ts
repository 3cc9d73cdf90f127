/**
 * The founding scenario end to end, in one process: a cloud agent (an A2A
 * server on 127.0.0.1) reaches the MCP server on the desktop (the A2A client)
 * over WebRTC, the signalling travelling inside the task.
 */
import assert from "node:assert/strict";
import { type Message, Role, type StreamResponse, TaskState } from "@a2a-js/sdk";
import {
  type Client as A2AClient,
  ClientFactory,
  ClientFactoryOptions,
  JsonRpcTransportFactory,
  ServiceParameters,
  withA2AExtensions,
} from "@a2a-js/sdk/client";
import { ServerCallContext } from "@a2a-js/sdk/server";
import {
  AuthenticationError,
  ConnectError,
  createGuestTicket,
  createTicket,
  formatTicket,
} from "../mod.ts";
import { A2A_SIGNALING_EXTENSION_URI, A2A_SIGNALING_MEDIA_TYPE } from "../src/a2a/mod.ts";
import { signalingMessage } from "../src/a2a/extension.ts";
import { startAgent } from "../examples/a2a/agent.ts";
import { askAgent } from "../examples/a2a/desktop.ts";
import { sharedFolder, startIntermediary } from "./_a2a_helpers.ts";

const QUESTION = "What does notes.txt say?";
const ANSWER = "notes.txt says: Buy milk. Call Ada.";

/** A host and a guest signalling-only ticket, paired. */
async function pairedTickets(): Promise<{ host: string; guest: string }> {
  const host = await createTicket();
  return { host: formatTicket(host), guest: formatTicket(await createGuestTicket(host)) };
}

/** The signalling parts in a task's stored history and status. */
async function storedSignaling(
  agent: { taskStore: { load(id: string, c: ServerCallContext): Promise<unknown> } },
  taskId: string,
): Promise<number> {
  const task = await agent.taskStore.load(taskId, new ServerCallContext()) as {
    history: { parts: { mediaType: string }[] }[];
    status?: { message?: { parts: { mediaType: string }[] } };
  };
  assert.ok(task, "the task is stored");
  const messages = [...task.history, ...(task.status?.message ? [task.status.message] : [])];
  return messages.flatMap((message) => message.parts)
    .filter((part) => part.mediaType === A2A_SIGNALING_MEDIA_TYPE).length;
}

Deno.test("An A2A agent reads a desktop file over WebRTC, the signalling inside the task", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent();
  try {
    const result = await askAgent(agent.url, QUESTION, { root: folder.root });
    assert.equal(result.answer, ANSWER);
    assert.equal(result.state, TaskState.TASK_STATE_COMPLETED);
    assert.equal(result.connected, true);
    assert.deepEqual(result.errors, []);
    assert.equal(await storedSignaling(agent, result.taskId!), 0, "no signalling in the store");
  } finally {
    await agent.close();
  }
});

Deno.test("Without the router's task store, the SDK keeps every signalling message in the history", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent({ keepSignalingInHistory: true });
  try {
    const result = await askAgent(agent.url, QUESTION, { root: folder.root });
    assert.equal(result.answer, ANSWER);
    // The offer at least, its candidates inside it (with the router's store:
    // none, above). Whether a candidate trickles after it, and whether the
    // agent's goodbye is stored before the task ends, depends on timing.
    const stored = await storedSignaling(agent, result.taskId!);
    assert.ok(stored >= 1, `${stored} signalling parts stored`);
  } finally {
    await agent.close();
  }
});

Deno.test("Sealed with a signalling-only ticket pair, the agent reads the file", async () => {
  await using folder = await sharedFolder();
  const tickets = await pairedTickets();
  const agent = await startAgent({ ticket: tickets.guest });
  try {
    const result = await askAgent(agent.url, QUESTION, { root: folder.root, ticket: tickets.host });
    assert.equal(result.answer, ANSWER);
    assert.equal(result.connected, true);
    assert.deepEqual(result.errors, []);
  } finally {
    await agent.close();
  }
});

Deno.test("An agent holding a key refuses a desktop that does not seal", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent({ ticket: (await pairedTickets()).guest });
  try {
    const result = await askAgent(agent.url, QUESTION, { root: folder.root });
    assert.equal(result.state, TaskState.TASK_STATE_FAILED);
    assert.match(result.answer, /desktop's offer is not sealed/);
    assert.equal(result.connected, false);
  } finally {
    await agent.close();
  }
});

Deno.test("An agent without a key tells a sealing desktop which key it lacks", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent();
  try {
    const tickets = await pairedTickets();
    const result = await askAgent(agent.url, QUESTION, { root: folder.root, ticket: tickets.host });
    assert.equal(result.state, TaskState.TASK_STATE_FAILED);
    assert.match(
      result.answer,
      /desktop seals its signalling with key "[\w-]+" and no key was given/,
    );
    assert.equal(result.connected, false);
  } finally {
    await agent.close();
  }
});

Deno.test("An intermediary on the A2A hop that alters the DTLS fingerprint is refused as an AuthenticationError when sealed", async () => {
  await using folder = await sharedFolder();
  const tickets = await pairedTickets();
  const agent = await startAgent({ ticket: tickets.guest, connectTimeout: 3_000 });
  const intermediary = await startIntermediary(agent.url);
  try {
    const result = await askAgent(intermediary.url, QUESTION, {
      root: folder.root,
      ticket: tickets.host,
    });
    assert.ok(intermediary.altered >= 1, "the offer's fingerprint was altered");
    assert.equal(result.connected, false);
    assert.ok(
      result.errors.some((error) =>
        error instanceof AuthenticationError &&
        /authentication code does not match/.test(error.message)
      ),
      `the desktop refused the altered offer: ${result.errors.map(String).join("; ")}`,
    );
    assert.equal(result.state, TaskState.TASK_STATE_FAILED);
    assert.match(result.answer, /^ConnectError: /);
  } finally {
    await intermediary.close();
    await agent.close();
  }
});

Deno.test("An intermediary on the A2A hop that alters the DTLS fingerprint makes the connect fail when not sealed", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent({ connectTimeout: 5_000 });
  const intermediary = await startIntermediary(agent.url);
  try {
    const result = await askAgent(intermediary.url, QUESTION, { root: folder.root });
    assert.ok(intermediary.altered >= 1, "the offer's fingerprint was altered");
    assert.equal(result.connected, false, "no channel opens with a substituted fingerprint");
    assert.equal(result.state, TaskState.TASK_STATE_FAILED);
    // The agent's ConnectError says what happened (the certificate did not
    // match the signalled fingerprint) and what to do, not a network diagnosis.
    assert.match(result.answer, /^ConnectError: Cannot connect/);
    const desktop = `the desktop's errors: ${result.errors.map(String).join("; ")}`;
    assert.match(result.answer, /does not match the fingerprint/, `${result.answer}; ${desktop}`);
    assert.match(result.answer, /AuthenticatedSignaling/);
    assert.doesNotMatch(result.answer, /TURN/);
    // The desktop hears of it as a failed connect (or the agent's goodbye), never as a session.
    assert.ok(
      result.errors.every((error) => error instanceof ConnectError),
      `the desktop's errors: ${result.errors.map(String).join("; ")}`,
    );
  } finally {
    await intermediary.close();
    await agent.close();
  }
});

/** Sends the desktop's replies naming the task in `taskId`, as a naive client would. */
function repliesWithTaskId(client: A2AClient): Pick<A2AClient, "sendMessage"> {
  return {
    sendMessage: (params, options) =>
      client.sendMessage({
        ...params,
        message: {
          ...params.message!,
          taskId: params.message!.referenceTaskIds[0]!,
          referenceTaskIds: [],
        },
      }, options),
  };
}

Deno.test("A reply that names the task in taskId reaches the signalling and the user's stream survives", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent();
  try {
    const client = await new ClientFactory().createFromUrl(agent.url);
    const result = await askAgent(agent.url, QUESTION, {
      root: folder.root,
      client,
      replies: repliesWithTaskId(client),
    });
    assert.equal(result.answer, ANSWER);
    assert.equal(result.connected, true);
  } finally {
    await agent.close();
  }
});

Deno.test("Two messages offering the MCP server at once each get their own server and channel", async () => {
  await using folder = await sharedFolder();
  const agent = await startAgent();
  try {
    const client = await new ClientFactory().createFromUrl(agent.url);
    const results = await Promise.all(
      [1, 2].map(() => askAgent(agent.url, QUESTION, { root: folder.root, client })),
    );
    for (const result of results) {
      assert.equal(result.answer, ANSWER);
      assert.equal(result.connected, true);
      assert.deepEqual(result.errors, []);
    }
    assert.equal(new Set(results.map((result) => result.taskId)).size, 2);
  } finally {
    await agent.close();
  }
});

Deno.test("The desktop's first reply carries its answer, sealed or not: a connect needs 2 A2A requests before the agent can open the channel, and at most two more (late candidates, the goodbye)", async () => {
  await using folder = await sharedFolder();
  const tickets = await pairedTickets();
  const counts: Record<string, { answerIn: number[]; atOpen: number[]; total: number[] }> = {};
  // The answer's type, as a signalling part holds it or, escaped, as a sealed envelope's body does.
  const carriesAnswer = /\\*"type\\*":\\*"answer\\*"/;
  for (const sealed of [false, true]) {
    const bodies: string[] = [];
    let atOpen = 0;
    const agent = await startAgent({
      ticket: sealed ? tickets.guest : undefined,
      log: (step) => {
        if (step === "webrtc channel") atOpen = bodies.length;
      },
    });
    try {
      const client = await new ClientFactory(
        ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
          transports: [
            new JsonRpcTransportFactory({
              fetchImpl: (input, init) => {
                bodies.push(String(init?.body ?? ""));
                return fetch(input, init);
              },
            }),
          ],
        }),
      ).createFromUrl(agent.url);
      const seen = { answerIn: [] as number[], atOpen: [] as number[], total: [] as number[] };
      counts[sealed ? "sealed" : "unsealed"] = seen;
      for (let i = 0; i < 9; i++) {
        const before = bodies.length;
        const result = await askAgent(agent.url, QUESTION, {
          root: folder.root,
          client,
          ticket: sealed ? tickets.host : undefined,
        });
        // A connect lost to libdatachannel's DTLS race (see docs/DESIGN.md) is not counted.
        if (result.answer !== ANSWER) continue;
        seen.answerIn.push(bodies.slice(before).findIndex((body) => carriesAnswer.test(body)) + 1);
        seen.atOpen.push(atOpen - before);
        seen.total.push(bodies.length - before);
      }
    } finally {
      await agent.close();
    }
  }
  const report = JSON.stringify(counts);
  assert.ok(counts.unsealed!.total.length >= 5 && counts.sealed!.total.length >= 5, report);
  for (const seen of [counts.unsealed!, counts.sealed!]) {
    // The streaming request, then the reply with the answer. Sealed, the desktop's hello went
    // inside its offer: no request goes to the hellos (one did before, so the answer was in the
    // third or later). The desktop's candidates share that reply or take the next, which may
    // leave before the channel opens or after it, as the machine's load has it.
    assert.deepEqual(seen.answerIn, seen.answerIn.map(() => 2), report);
    // After the open, the desktop's candidates when they missed the answer's reply (sealed
    // just after it, they may), and its goodbye unless the agent said it first.
    for (const [i, total] of seen.total.entries()) assert.ok(total - seen.atOpen[i]! <= 2, report);
  }
});

/** The signalling parts among stream events. */
function signalingIn(events: StreamResponse[]): number {
  return events.flatMap((event) =>
    event.payload?.$case === "statusUpdate" ? event.payload.value.status?.message?.parts ?? [] : []
  ).filter((part) => part.mediaType === A2A_SIGNALING_MEDIA_TYPE).length;
}

/**
 * A desktop's task held open on an agent that authenticates nobody (its
 * connection made, its answer held until `release`), and another client of
 * that agent that listed it; the agent is closed after `fn`.
 */
async function withHeldTask(
  fn: (held: {
    asking: ReturnType<typeof askAgent>;
    other: Awaited<ReturnType<ClientFactory["createFromUrl"]>>;
    task: Awaited<ReturnType<Awaited<ReturnType<ClientFactory["createFromUrl"]>>["listTasks"]>>[
      "tasks"
    ][number];
    release: () => void;
  }) => Promise<void>,
): Promise<void> {
  await using folder = await sharedFolder();
  const connected = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const agent = await startAgent({
    afterConnect: () => {
      connected.resolve();
      return release.promise;
    },
  });
  try {
    const asking = askAgent(agent.url, QUESTION, { root: folder.root });
    await connected.promise;
    const other = await new ClientFactory().createFromUrl(agent.url);
    const { tasks } = await other.listTasks({
      tenant: "",
      contextId: "",
      status: TaskState.TASK_STATE_UNSPECIFIED,
      pageToken: "",
      statusTimestampAfter: undefined,
    });
    const task = tasks.find((task) => task.status?.state === TaskState.TASK_STATE_WORKING);
    assert.ok(task, "the other client lists the desktop's working task");
    await fn({ asking, other, task, release: () => release.resolve() });
  } finally {
    release.resolve();
    await agent.close();
  }
}

Deno.test("Another client of an agent that authenticates nobody cannot read, resubscribe to or inject into a desktop's signalling", async () => {
  await withHeldTask(async ({ asking, other, task, release }) => {
    const seen: StreamResponse[] = [];
    const subscribed = Promise.withResolvers<void>();
    const subscription = (async () => {
      for await (const event of other.resubscribeTask({ tenant: "", id: task.id })) {
        seen.push(event);
        subscribed.resolve();
      }
    })();
    await subscribed.promise;
    const injected = await other.sendMessage({
      tenant: "",
      message: signalingMessage("user", [{ type: "bye", reason: "injected" }], {
        contextId: task.contextId,
        referenceTaskIds: [task.id],
      }),
      configuration: undefined,
      metadata: undefined,
    }, {
      serviceParameters: ServiceParameters.createFrom(
        undefined,
        withA2AExtensions(A2A_SIGNALING_EXTENSION_URI),
      ),
    }).then(
      () => undefined,
      (error: Error) => error,
    );
    release();
    const result = await asking;
    await subscription;
    assert.ok(injected instanceof Error, "the injected goodbye is refused");
    assert.match(injected.message, /no open signalling|secret/);
    assert.equal(result.answer, ANSWER, "the desktop's connection survived");
    assert.equal(signalingIn(seen), 0, "the subscription saw none of the task's signalling");
  });
});

Deno.test("Another client of an agent that authenticates nobody cannot end a desktop's task by naming it in taskId, in plain text or with an offer of its own", async () => {
  await withHeldTask(async ({ asking, other, task, release }) => {
    const onTask = (metadata: Record<string, unknown> | undefined) => ({
      messageId: crypto.randomUUID(),
      contextId: task.contextId,
      taskId: task.id,
      role: Role.ROLE_USER,
      parts: [{
        content: { $case: "text" as const, value: "hi" },
        mediaType: "text/plain",
        filename: "",
        metadata: undefined,
      }],
      metadata,
      extensions: [],
      referenceTaskIds: [],
    });
    const plain = await other.sendMessage({
      tenant: "",
      message: onTask(undefined),
      configuration: undefined,
      metadata: undefined,
    }).then(() => undefined, (error: Error) => error);
    const offering = await (async () => {
      const events = other.sendMessageStream({
        tenant: "",
        message: onTask({ [A2A_SIGNALING_EXTENSION_URI]: { version: 2, sealed: false } }),
        configuration: undefined,
        metadata: { [A2A_SIGNALING_EXTENSION_URI]: { secret: "m".repeat(43) } },
      }, {
        serviceParameters: ServiceParameters.createFrom(
          undefined,
          withA2AExtensions(A2A_SIGNALING_EXTENSION_URI),
        ),
      });
      for await (const _ of events) {
        // Nothing is expected before the refusal.
      }
    })().then(() => undefined, (error: Error) => error);
    release();
    const result = await asking;
    for (const refusal of [plain, offering]) {
      assert.ok(refusal instanceof Error, "the message naming the task is refused");
      assert.match(
        refusal.message,
        /belongs to the desktop whose request opened its signalling, and this request does not carry its secret/,
      );
    }
    assert.equal(result.answer, ANSWER, "the desktop gets its answer");
  });
});

Deno.test("An agent that announces the extension but did not wrap its request handler fails the desktop at once, and its executor never sees signalling", async () => {
  await using folder = await sharedFolder();
  const given: Message[] = [];
  const agent = await startAgent({
    withoutRouter: true,
    connectTimeout: 10_000,
    onUserMessage: (message) => given.push(message),
  });
  try {
    const started = performance.now();
    const result = await askAgent(agent.url, QUESTION, { root: folder.root });
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 2_000, `the desktop learned within 2 s (took ${elapsed.toFixed(0)} ms)`);
    assert.equal(result.connected, false);
    assert.match(result.answer, /wrapRequestHandler/);
    assert.equal(
      given.flatMap((message) => message.parts).filter((part) =>
        part.mediaType === A2A_SIGNALING_MEDIA_TYPE
      ).length,
      0,
      "no signalling reached the executor",
    );
  } finally {
    await agent.close();
  }
});

/** The TypeScript blocks of the A2A section (`docs/A2A.md`, linked from the README), in order. */
async function readmeA2ABlocks(): Promise<string[]> {
  const page = await Deno.readTextFile(new URL("../docs/A2A.md", import.meta.url));
  const start = page.indexOf("# Over A2A: the conversation is the signalling channel");
  assert.ok(start >= 0, "docs/A2A.md has its A2A section");
  // The section runs to the next heading, or to the end of the page.
  const next = page.slice(start + 1).search(/\n#{1,3} /);
  const end = next < 0 ? page.length : start + 1 + next;
  return [...page.slice(start, end).matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

Deno.test("The A2A section's blocks (docs/A2A.md) run as written: an agent, a desktop, and the same sealed; once paired, an offer with the seal stripped is refused", async () => {
  const blocks = await readmeA2ABlocks();
  assert.equal(blocks.length, 3);
  // The desktop's last question again, its offer unsealed on the way, after the agent holds a key.
  const closing = "http.closeAllConnections();";
  assert.ok(blocks[2]!.includes(closing), "the third block closes the server");
  blocks[2] = blocks[2]!.replace(
    closing,
    `await ask("Stripped of its seal", { sealed: false });\n${closing}`,
  );
  const root = new URL("..", import.meta.url);
  const file = await Deno.makeTempFile({
    dir: root.pathname,
    prefix: ".readme-a2a-",
    suffix: ".ts",
  });
  try {
    await Deno.writeTextFile(file, blocks.join("\n"));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--check", "-A", file],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(timer);
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 0, output);
    assert.equal(output.match(/^MCP channel open$/gm)?.length, 2, output);
    assert.equal(output.match(/^Agent: Your desktop serves "desktop"$/gm)?.length, 2, output);
    assert.match(
      output,
      /^Agent: .*the desktop's offer is not sealed.*refusing unsealed signalling/m,
    );
  } finally {
    await Deno.remove(file);
  }
});
