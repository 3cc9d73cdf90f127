# The reference's README client.
import asyncio

from mcp import ClientSession
from mcp_webrtc import webrtc_client_transport
from aiortc.contrib.signaling import TcpSocketSignaling


async def main() -> None:
    async with (
        webrtc_client_transport(TcpSocketSignaling("localhost", 8000)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.list_tools()
        print(result.tools)


asyncio.run(main())
