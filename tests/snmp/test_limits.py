"""The agent never floods a network: packets/s and requests in flight hold on the wire."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from agent.discovery import DiscoveryLimits, discover
from lab.ports import free_udp_port
from printgate.domain import DiscoveryStatus, SnmpCredential

NET = "127.0.24"
HOSTS = 40


class Listener(asyncio.DatagramProtocol):
    """Silent hosts: record when each request arrives, never answer."""

    def __init__(self, arrivals: list[float]) -> None:
        self.arrivals = arrivals

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.append(time.monotonic())


@pytest.fixture
def port() -> Iterator[int]:
    yield free_udp_port()


async def _silent_hosts(port: int, stack: ExitStack, arrivals: list[float]) -> None:
    loop = asyncio.get_running_loop()
    for i in range(1, HOSTS + 1):
        transport, _ = await loop.create_datagram_endpoint(
            lambda: Listener(arrivals), local_addr=(f"{NET}.{i}", port))
        stack.callback(transport.close)


async def test_packets_per_second_is_a_ceiling_on_the_wire(port: int) -> None:
    arrivals: list[float] = []
    with ExitStack() as stack:
        await _silent_hosts(port, stack, arrivals)
        results = await discover(
            [f"{NET}.{i}" for i in range(1, HOSTS + 1)],
            port=port, credentials=[SnmpCredential.v2c("public")],
            limits=DiscoveryLimits(max_in_flight=256, packets_per_second=100, timeout=0.3, retries=0),
        )
    assert all(r.status is DiscoveryStatus.UNREACHABLE for r in results)
    assert len(arrivals) == HOSTS
    arrivals.sort()
    # bucket of 100/s with bursts of 10: 40 packets need >= 0.3 s, and no 0.2 s
    # window holds more than burst + 0.2 s worth (10 + 20), with a little slack
    assert arrivals[-1] - arrivals[0] >= 0.27
    worst = max(sum(1 for t in arrivals if a <= t < a + 0.2) for a in arrivals)
    assert worst <= 32, worst


async def test_max_in_flight_bounds_outstanding_requests(port: int) -> None:
    arrivals: list[float] = []
    with ExitStack() as stack:
        await _silent_hosts(port, stack, arrivals)
        started = time.monotonic()
        await discover(
            [f"{NET}.{i}" for i in range(1, 21)], port=port, credentials=[SnmpCredential.v2c("public")],
            limits=DiscoveryLimits(max_in_flight=5, packets_per_second=None, timeout=0.25, retries=0),
        )
        elapsed = time.monotonic() - started
    # 20 silent hosts, 5 at a time, 0.25 s each: 4 waves, never more than 5 waiting
    assert elapsed >= 4 * 0.25 * 0.95
    arrivals.sort()
    waves = [arrivals[i : i + 5] for i in range(0, 20, 5)]
    for wave in waves:
        assert wave[-1] - wave[0] < 0.15
    for a, b in itertools.pairwise(waves):
        assert b[0] - a[0] >= 0.2
