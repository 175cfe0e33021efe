"""Byte pipe between a TCP socket and an SSH channel, with flow control and TCP_NODELAY.

Each direction pauses its source when the sink's buffer is full, so a slow
browser or device never makes the relay buffer unbounded data. Every byte is
reported to an optional ``meter`` (idle and max-bytes limits).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

import asyncssh

Meter = Callable[[int], None]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Splice:
    """One forwarded connection: ``socket_end`` <-> ``channel_end``."""

    def __init__(
        self, meter: Meter | None = None, on_connected: Callable[[Splice], None] | None = None
    ) -> None:
        self._meter = meter
        self.on_connected = on_connected
        self.socket_end = SocketEnd(self)
        self.channel_end = ChannelEnd(self)
        self.closed = asyncio.get_running_loop().create_future()
        self._pending: list[bytes] = []
        self._pending_eof = False

    def count(self, n: int) -> None:
        if self._meter is not None:
            self._meter(n)

    def close(self) -> None:
        chan = self.channel_end.chan
        if chan is not None:
            chan.close()
        transport = self.socket_end.transport
        if transport is not None:
            transport.close()
        self._finish()

    def _finish(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    # socket -> channel, buffered until the channel is open
    def to_channel(self, data: bytes) -> None:
        chan = self.channel_end.chan
        if chan is None:
            self._pending.append(data)
        else:
            chan.write(data)

    def eof_to_channel(self) -> None:
        chan = self.channel_end.chan
        if chan is None:
            self._pending_eof = True
            return
        try:
            chan.write_eof()
        except (OSError, asyncssh.Error):  # channel already closing: nothing left to tell it
            self.close()

    def channel_opened(self) -> None:
        chan = self.channel_end.chan
        assert chan is not None
        for data in self._pending:
            chan.write(data)
        self._pending.clear()
        if self._pending_eof:
            chan.write_eof()


class SocketEnd(asyncio.Protocol):
    def __init__(self, splice: Splice) -> None:
        self._splice = splice
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        set_nodelay(self.transport)
        if self._splice.on_connected is not None:
            self._splice.on_connected(self._splice)

    def data_received(self, data: bytes) -> None:
        self._splice.count(len(data))
        self._splice.to_channel(data)

    def eof_received(self) -> bool:
        self._splice.eof_to_channel()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        chan = self._splice.channel_end.chan
        if chan is not None:
            chan.close()
        self._splice._finish()

    def pause_writing(self) -> None:
        chan = self._splice.channel_end.chan
        if chan is not None:
            chan.pause_reading()

    def resume_writing(self) -> None:
        chan = self._splice.channel_end.chan
        if chan is not None:
            chan.resume_reading()


class ChannelEnd(asyncssh.SSHTCPSession[bytes]):
    def __init__(self, splice: Splice) -> None:
        self._splice = splice
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        self._splice.channel_opened()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._splice.count(len(data))
        transport = self._splice.socket_end.transport
        if transport is not None:
            transport.write(data)

    def eof_received(self) -> bool:
        transport = self._splice.socket_end.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:
                # The socket's peer is already gone (ENOTCONN on shutdown). Raising here would
                # abort the whole SSH connection, i.e. every connection of the tunnel.
                self._splice.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        transport = self._splice.socket_end.transport
        if transport is not None:
            transport.close()
        self._splice._finish()

    def pause_writing(self) -> None:
        transport = self._splice.socket_end.transport
        if transport is not None:
            transport.pause_reading()

    def resume_writing(self) -> None:
        transport = self._splice.socket_end.transport
        if transport is not None:
            transport.resume_reading()
