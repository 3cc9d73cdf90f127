# The reference's README greeter server, with the call_tool handler its README says `greet` needs.
import asyncio

from mcp_webrtc import webrtc_server_transport
from aiortc.contrib.signaling import TcpSocketSignaling
from mcp.server.lowlevel import Server
from mcp.types import TextContent, Tool

app = Server("mcp-greeter")


@app.list_tools()
async def list_tools() -> list[Tool]:
    return [Tool(name="greet", description="Greets the caller",
                 inputSchema={"type": "object", "required": [], "properties": {}})]


@app.call_tool()
async def call_tool(name: str, arguments: dict) -> list[TextContent]:
    return [TextContent(type="text", text="Hello from Python!")]


async def main() -> None:
    async with webrtc_server_transport(TcpSocketSignaling("localhost", 8000)) as (read, write):
        await app.run(read, write, app.create_initialization_options())


asyncio.run(main())
