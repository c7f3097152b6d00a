"""A static HTTP/1.1 endpoint on loopback for load-generator benchmarks.

    python benchmarks/static_endpoint.py PORT

Answers every request with the same small 200 response, keeps connections alive, and does
nothing else, so what a benchmark measures is the load generator (up to what one Python
process can serve: about what one core of asyncio can parse).
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"status": "healthy"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + BODY
)
LOOPBACK = "127.0.0.1"


class StaticResponder(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:  # requests carry no body
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(StaticResponder, LOOPBACK, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
