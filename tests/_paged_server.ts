/**
 * A stdio MCP server for the tool-limit tests: the tools `t1` to `t7`, `add`
 * and `calls`, listed three a page with a cursor. `add` adds the tool `t8`
 * and tells the client the list changed; `calls` answers with the names of
 * the tools called before it, so a test can see which calls reached it.
 */
// @ts-types="@modelcontextprotocol/sdk/server/index"
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
// @ts-types="@modelcontextprotocol/sdk/server/stdio"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
// @ts-types="@modelcontextprotocol/sdk/types"
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const PAGE = 3;
const tools = ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "add", "calls"];
const called: string[] = [];

const server = new Server({ name: "paged-server", version: "1.0.0" }, {
  capabilities: { tools: { listChanged: true } },
});
server.setRequestHandler(ListToolsRequestSchema, (request) => {
  const at = Number(request.params?.cursor ?? 0);
  const next = at + PAGE;
  return {
    tools: tools.slice(at, next).map((name) => ({
      name,
      inputSchema: { type: "object" as const },
    })),
    ...(next < tools.length && { nextCursor: String(next) }),
  };
});
server.setRequestHandler(CallToolRequestSchema, async (request) => {
  const name = request.params.name;
  const before = called.join(",");
  called.push(name);
  if (name === "add" && !tools.includes("t8")) {
    tools.push("t8");
    await server.sendToolListChanged();
  }
  return { content: [{ type: "text", text: name === "calls" ? before : name }] };
});

await server.connect(new StdioServerTransport());
