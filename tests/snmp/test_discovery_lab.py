"""Discovery against snmpsim serving every recording: printers found, others excluded."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agent.discovery import DiscoveryLimits, discover, expand_targets
from agent.snmp import oids
from agent.snmp.community_udp import CommunityRequester
from agent.snmp.transport import SnmpClient, SnmpTarget
from agent.snmp.values import SnmpValue
from lab import snmprec
from lab.catalog import LAB_DEVICES
from lab.snmp import SnmpLab
from printgate.domain import DiscoveryStatus, SnmpCredential
from tests.snmp.conftest import DEAD

PUBLIC = [SnmpCredential.v2c("public")]


async def test_every_lab_printer_is_found_and_every_other_device_excluded(snmp_lab: SnmpLab) -> None:
    targets = [d.ip for d in LAB_DEVICES] + list(DEAD)
    results = await discover(
        targets, port=snmp_lab.port, credentials=PUBLIC,
        limits=DiscoveryLimits(timeout=0.5, retries=0, max_in_flight=64),
    )
    by_ip = {r.ip: r for r in results}
    assert [r.ip for r in results] == targets
    for d in LAB_DEVICES:
        r = by_ip[d.ip]
        # ground truth from the recording: a printer answers Printer-MIB objects
        truth = any(oids.is_under(o, oids.PRINTER_MIB) for o in snmprec.load(d.recording))
        assert truth == d.printer
        if d.printer:
            assert r.status is DiscoveryStatus.PRINTER, (d.name, r)
            assert r.identity is not None
        else:
            assert r.status is DiscoveryStatus.EXCLUDED, (d.name, r)
            assert r.reason.startswith("not a printer")
    for ip in DEAD:
        assert by_ip[ip].status is DiscoveryStatus.UNREACHABLE
        assert "no SNMP answer" in by_ip[ip].reason


async def test_windows_print_queues_are_not_mistaken_for_printers(snmp_lab: SnmpLab) -> None:
    ip = snmp_lab.address_of("windows_svr_2019_1809")
    [r] = await discover([ip], port=snmp_lab.port, credentials=PUBLIC)
    assert r.status is DiscoveryStatus.EXCLUDED
    assert "hrDevicePrinter" in r.reason and "Printer-MIB" in r.reason


async def test_exclusions_are_not_probed(snmp_lab: SnmpLab) -> None:
    results = await discover(
        ["127.0.20.8/29"], port=snmp_lab.port, credentials=PUBLIC,
        exclude=["127.0.20.12", "127.0.20.13/32"], limits=DiscoveryLimits(timeout=0.3, retries=0),
    )
    ips = [r.ip for r in results]
    assert "127.0.20.12" not in ips and "127.0.20.13" not in ips
    assert "127.0.20.11" in ips and "127.0.20.14" in ips


async def test_credentials_are_tried_in_order_until_one_answers(snmp_lab: SnmpLab) -> None:
    ip = snmp_lab.address_of("epson")
    creds = [SnmpCredential.v2c("wrong-community"), SnmpCredential.v1("public")]
    [r] = await discover([ip], port=snmp_lab.port, credentials=creds,
                         limits=DiscoveryLimits(timeout=0.3, retries=0))
    assert r.status is DiscoveryStatus.PRINTER
    assert r.credential == creds[1].label


class CountingRequester(CommunityRequester):
    """The real v1/v2c requester, counting the datagrams it sends per address (resends too)."""

    def __init__(self) -> None:
        super().__init__()
        self.packets: Counter[str] = Counter()

    def _send(self, message: bytes, address: tuple[str, int]) -> None:
        self.packets[address[0]] += 1
        super()._send(message, address)


class WatchedClient(SnmpClient):
    """The real client (real packets, real timers) that also counts the datagrams sent per address
    and how many of the ``watched`` addresses had a request out at the same time."""

    def __init__(self, watched: set[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._community = self.requester = CountingRequester()
        self.watched = watched
        self.out: set[str] = set()
        self.most_out = 0

    async def _send(self, t: SnmpTarget, op: str, oids: Sequence[str], max_rep: int,
                    non_rep: int) -> tuple[int, int, list[tuple[str, SnmpValue]]]:
        if t.ip in self.watched:
            self.out.add(t.ip)
            self.most_out = max(self.most_out, len(self.out))
        try:
            return await super()._send(t, op, oids, max_rep, non_rep)
        finally:
            self.out.discard(t.ip)


async def test_sweep_of_a_24_takes_about_one_timeout_round_and_misses_nobody(snmp_lab: SnmpLab) -> None:
    # 230+ dead addresses answer ICMP port-unreachable while the live ones are probed: every lab
    # device must still be classified right (a queued ICMP error once made the kernel drop the next
    # request to a live host), and the sweep must cost at most one timeout round: every dead address
    # asked once and all of them out at the same time, so even if none of them answered at all (not
    # even ICMP) their timeouts would run together. Counted, not timed: a loaded CI machine stretches
    # any wall clock (3.26 s for this 1 s round once), and the sweep's speed is for benchmarks
    timeout = 1.0
    dead = set(expand_targets(["127.0.20.0/24"])) - set(snmp_lab.devices)
    client = WatchedClient(dead, timeout=timeout, retries=0, max_in_flight=256, packets_per_second=None)
    try:  # the socket open first: then the sweep's first requests all leave in one turn of the loop
        await client.get(SnmpTarget(LAB_DEVICES[0].ip, snmp_lab.port, PUBLIC[0]), [oids.SYS_DESCR])
        client.requester.packets.clear()
        started = time.monotonic()
        results = await discover(
            ["127.0.20.0/24"], port=snmp_lab.port, credentials=PUBLIC, client=client,
            limits=DiscoveryLimits(timeout=timeout, retries=0, max_in_flight=256, packets_per_second=None),
        )
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    by_ip = {r.ip: r for r in results}
    assert len(results) == 254
    for d in LAB_DEVICES:
        want = DiscoveryStatus.PRINTER if d.printer else DiscoveryStatus.EXCLUDED
        assert by_ip[d.ip].status is want, (d.name, by_ip[d.ip].reason)
    assert {r.ip for r in results if r.status is DiscoveryStatus.UNREACHABLE} == dead
    assert len(dead) == 254 - len(snmp_lab.devices)
    # one round: each dead address got exactly one datagram, and all of them were out at once (a
    # pool narrower than the sweep, or resends, would make a second round wait for the first)
    assert {ip: client.requester.packets[ip] for ip in dead} == dict.fromkeys(dead, 1)
    assert client.most_out == len(dead), f"{client.most_out} of {len(dead)} dead addresses waited together ({elapsed:.2f}s)"
