"""Discovery against snmpsim serving every recording: printers found, others excluded."""

from __future__ import annotations

import time

from agent.discovery import DiscoveryLimits, discover
from agent.snmp import oids
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


async def test_sweep_of_a_24_takes_about_one_timeout_round_and_misses_nobody(snmp_lab: SnmpLab) -> None:
    # 230+ dead addresses answer ICMP port-unreachable while the live ones are probed:
    # every lab device must still be classified right (a queued ICMP error once made
    # the kernel drop the next request to a live host), and fast
    timeout = 1.0
    started = time.monotonic()
    results = await discover(
        ["127.0.20.0/24"], port=snmp_lab.port, credentials=PUBLIC,
        limits=DiscoveryLimits(timeout=timeout, retries=0, max_in_flight=256, packets_per_second=None),
    )
    elapsed = time.monotonic() - started
    by_ip = {r.ip: r for r in results}
    assert len(results) == 254
    for d in LAB_DEVICES:
        want = DiscoveryStatus.PRINTER if d.printer else DiscoveryStatus.EXCLUDED
        assert by_ip[d.ip].status is want, (d.name, by_ip[d.ip].reason)
    assert sum(r.status is DiscoveryStatus.UNREACHABLE for r in results) == 254 - len(snmp_lab.devices)
    assert elapsed < 2 * timeout, f"sweep took {elapsed:.2f}s for a {timeout}s timeout"
