# The reference's README client, made the offerer (`initiator=True`): the shape of a client of
# another stack that dials a server of this module, which answers.
import asyncio

from mcp import ClientSession
from mcp_webrtc import webrtc_client_transport
from mcp_webrtc.webrtc import WebRTCClientParameters
from aiortc.contrib.signaling import TcpSocketSignaling


async def main() -> None:
    async with (
        webrtc_client_transport(
            TcpSocketSignaling("localhost", 8000), WebRTCClientParameters(initiator=True)
        ) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.list_tools()
        print(result.tools)


asyncio.run(main())
