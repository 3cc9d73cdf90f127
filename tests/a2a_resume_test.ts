/**
 * What becomes of a session over A2A signalling when its peer connection is
 * lost: an agent (an A2A server on 127.0.0.1) and a desktop (its A2A client)
 * as `tests/a2a_test.ts` pairs them, a slow tool call in flight, and the
 * agent's path lost (its clock moved past the idle timeout).
 */
import assert from "node:assert/strict";
import { type AgentCard, type Message, Role, TaskState } from "@a2a-js/sdk";
import { ClientFactory } from "@a2a-js/sdk/client";
import { DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server";
import { Client } from "@modelcontextprotocol/sdk/client";
import {
  a2aMcpOffer,
  a2aSignalingExtension,
  A2ASignalingRouter,
  sendMessageOfferingMcp,
} from "../src/a2a/mod.ts";
import { createGuestTicket, createTicket, deriveTicketKeys } from "../mod.ts";
import { useClock } from "../src/_clock.ts";
import { deadline } from "../src/_async.ts";
import { ManualClock } from "../src/_test_clock.ts";
import { RESUME_BACKOFF_FIRST } from "../src/constants.ts";
import { LOCAL, text } from "./_helpers.ts";
import { gatedServers } from "./_resume_pair.ts";
import { serveAgent } from "../examples/a2a/agent.ts";

const STEP = 10_000;

/** A message of `role` with one text part. */
function message(role: Role, value: string, taskId = "", contextId = ""): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId,
    taskId,
    role,
    parts: [{
      content: { $case: "text", value },
      mediaType: "text/plain",
      filename: "",
      metadata: undefined,
    }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/** What the agent's executor saw of its calls. */
interface Outcome {
  first: string;
  slow: string | Error;
  next: string;
  dials: number;
}

/**
 * An agent whose executor connects to the desktop through
 * `router.openConnection()` (which opens the task's signalling for each
 * dial), with `clock` on it; counts once, calls the slow tool,
 * counts again and reports what became of the calls.
 */
async function startAgent(clock: ManualClock, key?: CryptoKey) {
  const router = new A2ASignalingRouter();
  const outcome = Promise.withResolvers<Outcome>();
  const lost = Promise.withResolvers<void>();
  const card: AgentCard = {
    name: "agent",
    description: "",
    supportedInterfaces: [],
    provider: undefined,
    version: "1.0.0",
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extensions: [a2aSignalingExtension()],
    },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [],
    signatures: [],
  };
  const handler = new DefaultRequestHandler(
    card,
    router.wrapTaskStore(new InMemoryTaskStore()),
    {
      async execute(context, bus) {
        const { taskId, contextId } = context;
        const status = (state: TaskState, value?: string) => ({
          state,
          message: value === undefined
            ? undefined
            : message(Role.ROLE_AGENT, value, taskId, contextId),
          timestamp: new Date().toISOString(),
        });
        bus.publish({
          kind: "task",
          data: {
            id: taskId,
            contextId,
            status: status(TaskState.TASK_STATE_WORKING),
            artifacts: [],
            history: [context.userMessage],
            metadata: undefined,
          },
        });
        assert.ok(a2aMcpOffer(context.userMessage));
        const mcp = new Client({ name: "agent", version: "1.0.0" });
        mcp.onerror = () => {};
        const connection = router.openConnection(context, bus, key ? { key } : { sealed: false }, {
          ...LOCAL,
          connectTimeout: STEP,
        });
        useClock(connection, clock);
        connection.ondisconnect = () => lost.resolve();
        try {
          await mcp.connect(connection.openTransport());
          const first = text(await mcp.callTool({ name: "count" }));
          const slow = await mcp.callTool({ name: "slow" }, undefined, { timeout: 60_000 }).then(
            (result) => text(result),
            (error: Error) => error,
          );
          const next = text(await mcp.callTool({ name: "count" }));
          outcome.resolve({ first, slow, next, dials: connection.dials });
        } catch (error) {
          outcome.reject(error);
        } finally {
          await mcp.close();
          await connection.close();
          bus.publish({
            kind: "statusUpdate",
            data: {
              taskId,
              contextId,
              status: status(TaskState.TASK_STATE_COMPLETED, "done"),
              metadata: undefined,
            },
          });
        }
      },
      cancelTask: () => Promise.resolve(),
    },
  );
  const requestHandler = router.wrapRequestHandler(handler);
  const { url, close } = await serveAgent(card, requestHandler);
  return {
    url,
    outcome: outcome.promise,
    lost: lost.promise,
    close,
  };
}

/** The signalling keys of a host ticket and its guest ticket. */
async function pairedKeys(): Promise<{ host: CryptoKey; guest: CryptoKey }> {
  const host = await createTicket();
  return {
    host: (await deriveTicketKeys(host)).signalingKey,
    guest: (await deriveTicketKeys(await createGuestTicket(host))).signalingKey,
  };
}

for (const sealed of [false, true]) {
  Deno.test(`Over A2A signalling${sealed ? ", sealed," : ","} a session outlives a lost peer connection while the user's stream stays open: the agent dials again through the same task and the call in flight completes on the same server`, async () => {
    const clock = new ManualClock();
    const tickets = sealed ? await pairedKeys() : undefined;
    const agent = await startAgent(clock, tickets?.guest);
    const desktop = gatedServers();
    try {
      const client = await new ClientFactory().createFromUrl(agent.url);
      const states: string[] = [];
      const asking = (async () => {
        for await (
          const event of sendMessageOfferingMcp(client, {
            tenant: "",
            message: message(Role.ROLE_USER, "count, then something slow"),
            configuration: undefined,
            metadata: undefined,
          }, {
            createServer: desktop.createServer,
            ...(tickets ? { key: tickets.host } : { sealed: false }),
            transportOptions: LOCAL,
          })
        ) {
          if (event.payload?.$case === "mcpChannel") states.push(event.payload.value.state);
        }
      })();
      await deadline(desktop.slowStarted, STEP);
      // The agent's path goes silent past the idle timeout (3 s with resume on).
      await clock.advance(9_000);
      await deadline(agent.lost, STEP);
      desktop.open();
      // The first redial waits its backoff.
      await clock.advance(RESUME_BACKOFF_FIRST);
      const { first, slow, next, dials } = await deadline(agent.outcome, STEP);
      await deadline(asking, STEP);
      assert.equal(first, "1");
      assert.equal(slow, "done", "the call in flight completed with its result");
      assert.equal(next, "2", "the next call saw the same server's state");
      assert.equal(dials, 2);
      assert.deepEqual(states, ["open"]);
      // One server, initialized once, closed once when the agent ended the session.
      await deadline(desktop.closed, STEP);
      assert.deepEqual(desktop.counts, {
        servers: 1,
        slowCalls: 1,
        initializations: 1,
        closed: 1,
      });
    } finally {
      desktop.open();
      await agent.close();
    }
  });
}
