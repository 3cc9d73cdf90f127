# The reference's README client, calling the `blob` tool of this module's test
# server: a result that fits one of the reference's messages (at most 64 KiB),
# and one that does not. Prints one JSON line.
import asyncio
import json

from mcp import ClientSession
from mcp_webrtc import webrtc_client_transport
from aiortc.contrib.signaling import TcpSocketSignaling


async def call(session: ClientSession, size: int) -> dict:
    try:
        result = await asyncio.wait_for(session.call_tool("blob", {"size": size}), 10)
        return {"isError": result.isError, "text": result.content[0].text}
    except Exception as error:  # noqa: BLE001 - reported to the test, which judges it
        return {"error": type(error).__name__, "message": str(error)}


async def main() -> None:
    async with (
        webrtc_client_transport(TcpSocketSignaling("localhost", 8000)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        fits = await call(session, 40_000)
        too_large = await call(session, 100_000)
        after = await call(session, 10)
        print(json.dumps({"fits": fits, "tooLarge": too_large, "after": after}))


asyncio.run(main())
