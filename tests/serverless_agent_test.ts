/**
 * The serverless agent example: an MCP client in the Workers runtime
 * (Miniflare), with a desktop's ticket as its secret, lists and calls the
 * desktop's tools over the relay and answers HTTP requests with them.
 */
import assert from "node:assert/strict";
import { startLocalAgent } from "../examples/serverless_agent/local.ts";
import { createDesktopServer } from "../examples/browser/desktop.ts";
import { withDesktop } from "./_helpers.ts";

Deno.test("The serverless agent in the Workers runtime lists and calls a Deno desktop's tools over the relay", async () => {
  await withDesktop({ createServer: () => createDesktopServer() }, async ({ ticket, listener }) => {
    const agent = await startLocalAgent(ticket);
    try {
      const tools = await (await fetch(`${agent.url}/tools`)).json() as {
        tools?: { name: string }[];
      };
      assert.deepEqual(
        tools.tools?.map((tool) => tool.name),
        ["greet", "add", "convert_temperature"],
        JSON.stringify(tools),
      );
      const response = await fetch(`${agent.url}/call/greet?name=Workers`);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), {
        content: [{ type: "text", text: "Hello, Workers, from the desktop." }],
      });
      const sum = await fetch(`${agent.url}/call/add?json=${encodeURIComponent('{"a":2,"b":40}')}`);
      const added = await sum.json() as { content: { text: string }[] };
      assert.equal(added.content[0].text, "42");
      assert.ok(listener.agents.length <= 1);
    } finally {
      await agent.close();
    }
  });
});

Deno.test("The serverless agent without its MCP_TICKET secret says which secret to set", async () => {
  const agent = await startLocalAgent("");
  try {
    const response = await fetch(`${agent.url}/tools`);
    assert.equal(response.status, 500);
    const body = await response.json() as { error: string };
    assert.match(body.error, /wrangler secret put MCP_TICKET/);
  } finally {
    await agent.close();
  }
});
