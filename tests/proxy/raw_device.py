"""A device that logs what reaches it byte for byte (request heads and body sizes) for raw-socket tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Seen:
    head: bytes
    body_bytes: int


@dataclass
class RawDevice:
    """Answers every request ``200 ok``; ``requests`` holds each request head and body size."""

    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def request_lines(self) -> list[bytes]:
        return [s.head.split(b"\r\n", 1)[0] for s in self.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    if b":" in line:
                        k, _, v = line.partition(b":")
                        headers[k.strip().lower()] = v.strip()
                size = 0
                if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                    while True:
                        n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        await reader.readexactly(n + 2)
                        size += n
                        if n == 0:
                            break
                elif b"content-length" in headers:
                    size = int(headers[b"content-length"])
                    await reader.readexactly(size)
                self.requests.append(Seen(head, size))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 22\r\n\r\n"
                             b"<p>Device home ok</p>\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
