"""The running agent's own polling path: sweep -> ``Monitoring.follow_discovered`` -> poller -> upload.

What ``printgate agent run`` does after each sweep (``AgentRuntime`` hands the
sweep's printers to ``Monitoring``), with snmpsim serving the real recordings:
the vendor profile's page counters must be in the uploaded readings, equal
to the recording, not only when a test builds the polled device itself.
"""

from __future__ import annotations

from pathlib import Path

from agent.snmp.parsing import alerts_from, status_from, supplies_from
from agent.snmp.profiles import profile_for
from lab import snmprec
from lab.catalog import by_name
from lab.snmp import SnmpLab
from printgate.domain import ReadingKind
from tests.snmp.conftest import poll_like_the_agent

WITH_VENDOR_COUNTERS = ("konica_c250i", "jetdirect_m130nw", "sharp")  # sharp: 6 counters; HP: a mono printer


async def test_the_agents_polling_reads_each_vendor_profiles_page_counters(
    snmp_lab: SnmpLab, tmp_path: Path
) -> None:
    ips = [by_name(n).ip for n in WITH_VENDOR_COUNTERS]
    printers, uploaded = await poll_like_the_agent(ips, snmp_lab.port, tmp_path / "queue.sqlite")

    for name, result in zip(WITH_VENDOR_COUNTERS, printers, strict=True):
        recording = snmprec.load(by_name(name).recording)
        assert result.identity is not None
        profile = profile_for(result.identity.sys_object_id)
        expected = {f"vendor.{n}": recording[o].value for n, o in profile.counters if o in recording}
        assert expected, f"{name}: the recording has none of its profile's counters"
        [reading] = [r for r in uploaded if r.ip == result.ip and ReadingKind.COUNTERS in r.kinds]
        got = {c.name: c.value for c in reading.counters if c.name.startswith("vendor.")}
        assert got == expected, name
        # supplies and status/alerts come through the same path, equal to what the recording holds
        [supplies] = [r for r in uploaded if r.ip == result.ip and ReadingKind.SUPPLIES in r.kinds]
        assert supplies.supplies == tuple(supplies_from(recording)[0]), name
        [alerts] = [r for r in uploaded if r.ip == result.ip and ReadingKind.ALERTS in r.kinds]
        assert (alerts.status, alerts.alerts) == (status_from(recording)[0], tuple(alerts_from(recording)[0])), name
