# The reference's README greeter server with a `large` tool: a text of about
# 40 KB, with every kind of JSON escape, that fits one of its messages.
import asyncio

from mcp_webrtc import webrtc_server_transport
from aiortc.contrib.signaling import TcpSocketSignaling
from mcp.server.lowlevel import Server
from mcp.types import TextContent, Tool

app = Server("mcp-greeter")
# The same text as LARGE_TEXT in tests/reference/_ours.ts.
LARGE_TEXT = ("x" * 999 + '"\\\n\t\u00e9\u20ac\U0001F600') * 40


@app.list_tools()
async def list_tools() -> list[Tool]:
    schema = {"type": "object", "required": [], "properties": {}}
    return [Tool(name="greet", description="Greets the caller", inputSchema=schema),
            Tool(name="large", description="Returns a large text", inputSchema=schema)]


@app.call_tool()
async def call_tool(name: str, arguments: dict) -> list[TextContent]:
    return [TextContent(type="text", text=LARGE_TEXT if name == "large" else "Hello from Python!")]


async def main() -> None:
    async with webrtc_server_transport(TcpSocketSignaling("localhost", 8000)) as (read, write):
        await app.run(read, write, app.create_initialization_options())


asyncio.run(main())
