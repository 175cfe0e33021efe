"""The hand-rolled v1/v2c requester on real loopback sockets: timers, ICMP, spoofing."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.snmp import ber, oids
from agent.snmp.community_udp import CommunityRequester, Unreachable
from agent.snmp.values import Kind
from lab.ports import free_udp_port
from lab.snmp import SnmpLab


@pytest.fixture
async def requester() -> AsyncIterator[CommunityRequester]:
    r = CommunityRequester()
    await r.open()
    yield r
    r.close()


def as_response(request: bytes) -> bytes:
    """The same message with the PDU tag turned into GetResponse (values stay NULL)."""
    _, start, stop = ber._read(request, 0, len(request))
    _, pos = ber._int_at(request, start, stop)
    _, c_stop = ber._expect(request, pos, stop, 0x04)
    return request[:c_stop] + bytes((ber.RESPONSE,)) + request[c_stop + 1 :]


class Device(asyncio.DatagramProtocol):
    """A fake agent that answers from ``reply_from`` (another socket) or itself."""

    def __init__(self, reply_from: socket.socket | None = None) -> None:
        self.reply_from = reply_from
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        if self.reply_from is not None:
            self.reply_from.sendto(as_response(data), addr)
        elif self.transport is not None:
            self.transport.sendto(as_response(data), addr)


async def test_a_closed_port_fails_at_once_instead_of_after_the_timeout(requester: CommunityRequester) -> None:
    started = time.monotonic()
    with pytest.raises(Unreachable):
        await requester.request("127.0.0.1", free_udp_port(), version=1, community="public", op="get",
                                oids=[oids.SYS_DESCR], timeout=5.0, retries=0)
    assert time.monotonic() - started < 1.0


async def test_a_silent_host_times_out_after_timeout_times_tries(requester: CommunityRequester) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await requester.request("127.0.0.1", hole.getsockname()[1], version=1, community="public",
                                    op="get", oids=[oids.SYS_DESCR], timeout=0.3, retries=1)
        elapsed = time.monotonic() - started
        assert 0.55 < elapsed < 1.2  # exact timers: 2 x 0.3 s, no 100 ms tick quantum
        hole.setblocking(False)
        sent = 0
        while True:
            try:
                hole.recv(2048)
                sent += 1
            except BlockingIOError:
                break
        assert sent == 2  # the request and its one retry


async def test_a_request_sent_right_after_an_icmp_error_still_goes_out(
    requester: CommunityRequester, snmp_lab: SnmpLab
) -> None:
    # the kernel reports a queued ICMP error on the *next* send and drops that
    # datagram; the requester must drain the error and send again
    dead = asyncio.create_task(requester.request(
        "127.0.0.1", free_udp_port(), version=1, community="public", op="get",
        oids=[oids.SYS_DESCR], timeout=2.0, retries=0))
    await asyncio.sleep(0)  # the dead request is on the wire
    time.sleep(0.05)  # block the loop: the ICMP error is queued, not yet read
    live = await requester.request(snmp_lab.address_of("epson"), snmp_lab.port, version=1,
                                   community="public", op="get", oids=[oids.SYS_DESCR],
                                   timeout=0.5, retries=0)
    assert live.varbinds[0][1].kind is Kind.OCTETS
    with pytest.raises(Unreachable):
        await dead


async def test_an_answer_from_another_address_is_ignored(requester: CommunityRequester) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoofer:
        spoofer.bind(("127.0.0.2", 0))
        transport, device = await loop.create_datagram_endpoint(
            lambda: Device(reply_from=spoofer), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            with pytest.raises(TimeoutError):
                await requester.request("127.0.0.1", port, version=1, community="public", op="get",
                                        oids=[oids.SYS_DESCR], timeout=0.4, retries=0)
            assert device.requests == 1
            device.reply_from = None  # now the right address answers: accepted
            answer = await requester.request("127.0.0.1", port, version=1, community="public", op="get",
                                             oids=[oids.SYS_DESCR], timeout=0.4, retries=0)
            assert [o for o, _ in answer.varbinds] == [oids.SYS_DESCR]
        finally:
            transport.close()


async def test_many_first_requests_share_one_socket() -> None:
    r = CommunityRequester()
    try:
        port = free_udp_port()
        await asyncio.gather(*(
            r.request(f"127.0.21.{i}", port, version=1, community="public", op="get",
                      oids=[oids.SYS_DESCR], timeout=0.3, retries=0)
            for i in range(1, 40)), return_exceptions=True)
        assert r._sock is not None and r._transport is not None
        assert r._transport.get_extra_info("socket").fileno() == r._sock.fileno()
    finally:
        r.close()


@given(st.binary(max_size=600))
@settings(max_examples=400, deadline=None)
def test_decoder_rejects_garbage_only_with_malformed_message(data: bytes) -> None:
    try:
        ber.decode_response(data)
    except ber.MalformedMessage:
        pass


oid_text = st.tuples(st.integers(0, 2), st.integers(0, 39), st.lists(st.integers(0, 2**32), max_size=12)).map(
    lambda t: ".".join(str(x) for x in (t[0], t[1], *t[2])))


@given(st.lists(oid_text, min_size=1, max_size=20), st.integers(0, 2**31 - 1),
       st.binary(max_size=40), st.integers(0, 1))
@settings(max_examples=200, deadline=None)
def test_request_encoding_round_trips_through_the_decoder(
    names: list[str], rid: int, community: bytes, version: int
) -> None:
    msg = ber.encode_request(version=version, community=community, op="get", request_id=rid, oids=names)
    got = ber.decode_response(as_response(msg))
    assert (got.version, got.community, got.request_id) == (version, community, rid)
    assert [o for o, _ in got.varbinds] == names
    assert all(v.kind is Kind.NULL for _, v in got.varbinds)


@given(st.binary(min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_truncated_or_corrupted_answers_never_escape_as_other_errors(tail: bytes) -> None:
    msg = as_response(ber.encode_request(version=1, community=b"public", op="get", request_id=7,
                                         oids=[oids.SYS_DESCR, oids.SYS_NAME]))
    for cut in (msg[: len(tail) % len(msg)], msg[:-1] + tail, tail + msg[1:]):
        try:
            ber.decode_response(cut)
        except ber.MalformedMessage:
            pass


class JunkDevice(asyncio.DatagramProtocol):
    """Printer firmware gone wrong: answers every request with undecodable bytes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"\x30\x82\xff\xff" + data[:10], addr)  # type: ignore[attr-defined]


async def test_a_device_sending_garbage_is_reported_as_malformed_and_polling_goes_on() -> None:
    from agent.polling import PolledDevice, poll_device
    from agent.snmp.transport import SnmpClient, SnmpTarget
    from printgate.domain import ReadingKind, SnmpCredential

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(JunkDevice, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        async with SnmpClient(timeout=0.3, retries=0) as client:
            target = SnmpTarget("127.0.0.1", port, SnmpCredential.v2c("public"))
            reading = await poll_device(client, PolledDevice("127.0.0.1", target), [ReadingKind.SUPPLIES])
            assert len(reading.errors) == 1 and "undecodable answer" in reading.errors[0]
            assert "broken packets" in reading.errors[0]
            assert client._community.malformed >= 1
    finally:
        transport.close()
