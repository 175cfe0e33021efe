"""SNMPv1/v2c requests over one asyncio UDP socket.

Why not pysnmp here: a /24 sweep sends hundreds of GETs at once, and
pysnmp's per-request MIB resolution and pyasn1 encoding cost ~2 ms of CPU
each on a small box, which pushed a sweep to twice its timeout floor. This
requester hand-encodes requests (``agent.snmp.ber``), keeps an exact timer
per request (no 100 ms tick), matches answers by request id *and* source
address, and listens to ICMP errors (``IP_RECVERR``): a host that answers
"port unreachable" has no SNMP agent and fails at once instead of after the
timeout. v3 stays on pysnmp (USM).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import struct
from dataclasses import dataclass, field

from agent.snmp.ber import MalformedMessage, Response, decode_response, encode_request
from printgate.logs import get_logger

log = get_logger("agent.snmp.udp")

_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_UNREACHABLE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}
MAX_DATAGRAM = 65535


class Unreachable(OSError):
    """The network said so (ICMP port/host unreachable) before any answer came."""


class MalformedAnswer(TimeoutError):
    """No valid answer in time, but the host did send bytes we could not decode."""


MAX_REMEMBERED = 1024  # addresses whose last undecodable datagram we keep (bounded)


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Response]
    address: tuple[str, int]
    message: bytes
    retries_left: int
    timeout: float
    timer: asyncio.TimerHandle | None = field(default=None)


class CommunityRequester(asyncio.DatagramProtocol):
    """Owner of one UDP socket; ``await open()`` then ``request()`` many times, ``close()``."""

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}
        self._by_address: dict[tuple[str, int], set[int]] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._garbage: dict[tuple[str, int], str] = {}  # address -> why its last datagram was bad
        self.malformed = 0

    async def open(self) -> None:
        async with self._opening:  # many first requests race here: one socket only
            if self._transport is None:
                await self._open()

    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        except OSError:  # not Linux: ICMP errors just are not seen (timeouts still work)
            pass
        sock.setblocking(False)
        sock.bind(("0.0.0.0", 0))
        self._sock = sock
        transport, _ = await self._loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._transport = transport

    def close(self) -> None:
        for rid in list(self._pending):
            self._finish(rid, exc=ConnectionAbortedError("SNMP requester closed"))
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def request(
        self,
        ip: str,
        port: int,
        *,
        version: int,
        community: str,
        op: str,
        oids: list[str],
        max_repetitions: int = 0,
        non_repeaters: int = 0,
        timeout: float,
        retries: int,
    ) -> Response:
        """Send one request, resend on timeout; raises ``TimeoutError`` or ``Unreachable``."""
        if self._transport is None:
            await self.open()
        assert self._transport is not None and self._loop is not None
        rid = secrets.randbits(31)
        while rid in self._pending:
            rid = secrets.randbits(31)
        message = encode_request(
            version=version, community=community.encode(), op=op, request_id=rid,
            oids=oids, max_repetitions=max_repetitions, non_repeaters=non_repeaters,
        )
        address = (ip, port)
        pending = _Pending(self._loop.create_future(), address, message, retries, timeout)
        self._pending[rid] = pending
        self._by_address.setdefault(address, set()).add(rid)
        self._send(message, address)
        pending.timer = self._loop.call_later(timeout, self._expired, rid)
        try:
            return await pending.future
        finally:
            self._forget(rid)

    def _send(self, message: bytes, address: tuple[str, int]) -> None:
        """sendto that survives a pending ICMP error.

        With ``IP_RECVERR`` the kernel reports a queued error (from *another*
        destination) on the next send and drops that datagram; asyncio's
        ``sendto`` would swallow it. Drain the errors and send again.
        """
        assert self._sock is not None and self._transport is not None
        for _ in range(16):
            try:
                self._sock.sendto(message, address)
                return
            except (BlockingIOError, InterruptedError):
                self._transport.sendto(message, address)  # buffered until writable
                return
            except OSError as exc:
                if exc.errno not in _UNREACHABLE:
                    raise
                self._drain_icmp_errors()
        self._transport.sendto(message, address)

    def _expired(self, rid: int) -> None:
        p = self._pending.get(rid)
        if p is None or p.future.done():
            return
        if p.retries_left > 0 and self._transport is not None and self._loop is not None:
            p.retries_left -= 1
            self._send(p.message, p.address)
            p.timer = self._loop.call_later(p.timeout, self._expired, rid)
            return
        why = self._garbage.pop(p.address, None)
        if why is not None:  # never trusted to end a request early (anyone can send junk)
            self._finish(rid, exc=MalformedAnswer(f"undecodable answer from {p.address[0]}:{p.address[1]}: {why}"))
            return
        self._finish(rid, exc=TimeoutError(f"no answer from {p.address[0]}:{p.address[1]}"))

    def _finish(self, rid: int, *, result: Response | None = None, exc: BaseException | None = None) -> None:
        p = self._pending.get(rid)
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
        if not p.future.done():
            if exc is not None:
                p.future.set_exception(exc)
            else:
                p.future.set_result(result)  # type: ignore[arg-type]
        self._forget(rid)

    def _forget(self, rid: int) -> None:
        p = self._pending.pop(rid, None)
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
        ids = self._by_address.get(p.address)
        if ids is not None:
            ids.discard(rid)
            if not ids:
                del self._by_address[p.address]

    # --- asyncio.DatagramProtocol ----------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            response = decode_response(data)
        except MalformedMessage as exc:
            self.malformed += 1
            address = (str(addr[0]), int(addr[1]))
            if address in self._by_address:
                if len(self._garbage) >= MAX_REMEMBERED:
                    self._garbage.pop(next(iter(self._garbage)))
                self._garbage[address] = str(exc)
            log.debug("snmp.malformed_datagram", source=address[0], error=str(exc))
            return
        p = self._pending.get(response.request_id)
        # only the host we asked may answer (a spoofed or stray reply is dropped)
        if p is None or (addr[0], addr[1]) != p.address:
            return
        self._garbage.pop(p.address, None)
        self._finish(response.request_id, result=response)

    def error_received(self, exc: Exception) -> None:
        self._drain_icmp_errors()

    def _drain_icmp_errors(self) -> None:
        """Read queued ICMP errors; fail requests to the address each one names."""
        if self._sock is None:
            return
        for _ in range(4096):  # bounded: the queue is finite, but be explicit
            try:
                _, ancillary, _, addr = self._sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            code = 0
            for level, kind, data in ancillary:
                if level == socket.IPPROTO_IP and kind == _IP_RECVERR and len(data) >= 4:
                    (code,) = struct.unpack_from("=I", data)
            if code not in _UNREACHABLE or not isinstance(addr, tuple):
                continue
            address = (str(addr[0]), int(addr[1]))
            for rid in list(self._by_address.get(address, ())):
                self._finish(rid, exc=Unreachable(code, f"{address[0]}:{address[1]}: {errno.errorcode.get(code, code)}"))
