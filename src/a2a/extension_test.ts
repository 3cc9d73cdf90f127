import assert from "node:assert/strict";
import {
  type AgentCard,
  type Message,
  Role,
  type SendMessageRequest,
  TaskState,
} from "@a2a-js/sdk";
import {
  A2A_SIGNALING_EXTENSION_URI,
  a2aMcpOffer,
  a2aSignalingExtension,
  type McpChannelEvent,
  sendMessageOfferingMcp,
} from "./mod.ts";

/** The extension's URI as version 1 spelt it (before the desktop's secret and the agent's routing mark). */
const VERSION_1_URI = "https://jsr.io/@mcp/webrtc/a2a/signaling/v1";

function userMessage(metadata: Record<string, unknown>, extensions: string[]): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts: [],
    metadata,
    extensions,
    referenceTaskIds: [],
  };
}

Deno.test("the extension's URI and its card entry say version 2: its wire changed from version 1's", () => {
  assert.equal(A2A_SIGNALING_EXTENSION_URI, "https://jsr.io/@mcp/webrtc/a2a/signaling/v2");
  assert.deepEqual(a2aSignalingExtension().params, { version: 2 });
  const offer = { version: 2, sealed: false };
  assert.deepEqual(
    a2aMcpOffer(
      userMessage({ [A2A_SIGNALING_EXTENSION_URI]: offer }, [A2A_SIGNALING_EXTENSION_URI]),
    ),
    offer,
  );
});

Deno.test("an agent reading a version 1 desktop's offer fails naming both versions and what to update", () => {
  const message = userMessage(
    { [VERSION_1_URI]: { version: 1, sealed: false } },
    [VERSION_1_URI],
  );
  assert.throws(() => a2aMcpOffer(message), (error: Error) => {
    assert.ok(error instanceof TypeError);
    assert.match(
      error.message,
      /version 1 of the extension \(https:\/\/jsr\.io\/@mcp\/webrtc\/a2a\/signaling\/v1\)/,
    );
    assert.match(
      error.message,
      /version 2 \(https:\/\/jsr\.io\/@mcp\/webrtc\/a2a\/signaling\/v2\)/,
    );
    assert.match(error.message, /update @mcp\/webrtc on the desktop/);
    return true;
  });
  // An offer under this version's URI that says another version is refused the same way.
  assert.throws(
    () =>
      a2aMcpOffer(
        userMessage({ [A2A_SIGNALING_EXTENSION_URI]: { version: 3, sealed: false } }, []),
      ),
    /version 3 of the extension .*version 2 .*update @mcp\/webrtc on this agent/,
  );
});

Deno.test("a desktop offering to an agent whose card announces version 1 of the extension reports the channel failed at once, naming both versions, and still yields the agent's answer", async () => {
  const card = {
    name: "older agent",
    capabilities: {
      streaming: true,
      extensions: [{ ...a2aSignalingExtension(), uri: VERSION_1_URI }],
    },
  } as unknown as AgentCard;
  const sent: SendMessageRequest[] = [];
  const answer = {
    payload: {
      $case: "statusUpdate" as const,
      value: {
        taskId: "task-1",
        contextId: "context-1",
        status: { state: TaskState.TASK_STATE_COMPLETED, message: undefined, timestamp: "" },
        metadata: undefined,
      },
    },
  };
  const client = {
    sendMessage: () => Promise.reject(new Error("no reply expected")),
    async *sendMessageStream(params: SendMessageRequest) {
      sent.push(params);
      yield answer;
    },
    getAgentCard: () => Promise.resolve(card),
  };
  const yielded: unknown[] = [];
  let created = 0;
  for await (
    const event of sendMessageOfferingMcp(
      client,
      { tenant: "", message: userMessage({}, []), configuration: undefined, metadata: undefined },
      {
        sealed: false,
        createServer: () => {
          created++;
          return { connect: () => Promise.resolve(), close: () => Promise.resolve() };
        },
      },
    )
  ) yielded.push(event);
  const first = yielded[0] as McpChannelEvent;
  assert.equal(first.payload.$case, "mcpChannel");
  assert.ok(first.payload.value.state === "failed");
  assert.match(
    first.payload.value.error.message,
    /the agent speaks version 1 of the extension \(https:\/\/jsr\.io\/@mcp\/webrtc\/a2a\/signaling\/v1\) and this desktop version 2 \(https:\/\/jsr\.io\/@mcp\/webrtc\/a2a\/signaling\/v2\): update @mcp\/webrtc on the agent/,
  );
  assert.deepEqual(yielded.slice(1), [answer], "the agent's answer reaches the user");
  assert.equal(sent.length, 1, "the user's message is sent");
  assert.equal(created, 0);
});

Deno.test("a sealed offer may carry the desktop's sealed hello; one that is not an object, or in an unsealed offer, is refused", () => {
  const hello = { type: "sealed", v: 1, role: "host", nonce: "n".repeat(22), seq: 0, mac: "m" };
  const read = (offer: unknown) =>
    a2aMcpOffer(userMessage({ [A2A_SIGNALING_EXTENSION_URI]: offer }, []));
  assert.deepEqual(read({ version: 2, sealed: true, hello }), { version: 2, sealed: true, hello });
  for (const bad of ["hello", ["sealed"], null, 3]) {
    assert.throws(
      () => read({ version: 2, sealed: true, hello: bad }),
      /hello\?: the desktop's sealed hello/,
    );
  }
  assert.throws(
    () => read({ version: 2, sealed: false, hello }),
    /hello\?: the desktop's sealed hello/,
  );
});
