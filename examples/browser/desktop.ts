/**
 * The desktop of the browser example: an MCP server with a few tools whose
 * arguments cover what the page's generated form can enter (text, numbers, a
 * choice, a yes/no).
 *
 * @module
 */
// @ts-types="@modelcontextprotocol/sdk/server/mcp"
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

/**
 * A fresh MCP server for one agent, with the tools `greet`, `add` and
 * `convert_temperature`.
 *
 * @returns The server, not yet connected.
 *
 * @example List the desktop's tools in memory
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client";
 * import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
 * import { createDesktopServer } from "./desktop.ts";
 * import assert from "node:assert/strict";
 *
 * const [a, b] = InMemoryTransport.createLinkedPair();
 * const server = createDesktopServer();
 * await server.connect(b);
 * const client = new Client({ name: "example", version: "1.0.0" });
 * await client.connect(a);
 * const { tools } = await client.listTools();
 * assert.deepEqual(tools.map((tool) => tool.name), ["greet", "add", "convert_temperature"]);
 * await client.close();
 * ```
 */
export function createDesktopServer(): McpServer {
  const server = new McpServer({ name: "desktop", version: "1.0.0" });
  server.registerTool(
    "greet",
    {
      description: "Greets someone by name",
      inputSchema: {
        name: z.string().describe("Who to greet"),
        excited: z.boolean().optional().describe("End with an exclamation mark"),
      },
    },
    ({ name, excited }) => ({
      content: [{ type: "text", text: `Hello, ${name}, from the desktop${excited ? "!" : "."}` }],
    }),
  );
  server.registerTool(
    "add",
    {
      description: "Adds two numbers",
      inputSchema: { a: z.number(), b: z.number() },
    },
    ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }),
  );
  server.registerTool(
    "convert_temperature",
    {
      description: "Converts a temperature between Celsius and Fahrenheit",
      inputSchema: {
        value: z.number().describe("The temperature to convert"),
        to: z.enum(["celsius", "fahrenheit"]).describe("The scale to convert to"),
      },
    },
    ({ value, to }) => {
      const result = to === "fahrenheit" ? value * 9 / 5 + 32 : (value - 32) * 5 / 9;
      const unit = to === "fahrenheit" ? "°F" : "°C";
      return { content: [{ type: "text", text: `${Math.round(result * 10) / 10} ${unit}` }] };
    },
  );
  return server;
}
