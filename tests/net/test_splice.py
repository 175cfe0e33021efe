"""The splice between a TCP socket and an SSH channel never lets a dead socket kill the tunnel."""

from __future__ import annotations

import asyncio
import socket
import struct

from printgate.net.splice import Splice


async def test_eof_towards_a_reset_socket_closes_the_splice_instead_of_raising() -> None:
    loop = asyncio.get_running_loop()
    splices: list[Splice] = []

    def accept() -> asyncio.Protocol:
        splice = Splice(on_connected=lambda sp: sp.socket_end.transport.pause_reading())  # type: ignore[union-attr]
        splices.append(splice)
        return splice.socket_end

    server = await loop.create_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = socket.create_connection(("127.0.0.1", port))
    await asyncio.sleep(0.05)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST: the kernel forgets the connection; asyncio has not noticed (reading paused)
    await asyncio.sleep(0.05)
    (splice,) = splices
    transport = splice.socket_end.transport
    assert transport is not None and not transport.is_closing()
    raw = transport.get_extra_info("socket")
    try:
        raw.shutdown(socket.SHUT_WR)
        reset_detected = False
    except OSError:  # the failure the splice must absorb (ENOTCONN)
        reset_detected = True
    assert reset_detected, "the kernel did not report the reset; the test would prove nothing"

    splice.channel_end.eof_received()  # the device finished sending: must not raise
    assert splice.closed.done()
    server.close()
    await server.wait_closed()
