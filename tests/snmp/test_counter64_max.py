"""Issue 17 finding 1: a Counter64 at its maximum (2^64-1, above the wire's int64) recorded in a
real snmpsim device. The agent's poller leaves that one value out of the reading (with an
error naming it and a log), the rest of the poll is kept, and the reading encodes."""

from __future__ import annotations

from pathlib import Path

from agent.polling import PolledDevice, poll_device
from agent.snmp.transport import SnmpClient, SnmpTarget
from lab.snmp import SnmpLab, recording_path
from printgate.domain import ReadingKind, SnmpCredential
from printgate.wire.convert import reading_to_wire

IP = "127.0.20.43"  # the lab's swappable address
MAX64 = (1 << 64) - 1
LIFE = "1.3.6.1.2.1.43.10.2.1.4.1.1"  # prtMarkerLifeCount.1.1 of the M130


def _with_max_counter(tmp_path: Path) -> Path:
    src = recording_path("jetdirect_m130nw").read_text()
    lines = src.splitlines()
    changed = [f"{LIFE}|70|{MAX64}" if ln.startswith(f"{LIFE}|") else ln for ln in lines]
    assert changed != lines
    out = tmp_path / "m130-counter64-max.snmprec"
    out.write_text("\n".join(changed) + "\n")
    return out


async def test_a_counter64_at_its_maximum_is_left_out_of_the_reading_and_the_rest_is_sent(
    snmp_lab: SnmpLab, snmp_client: SnmpClient, tmp_path: Path,
) -> None:
    await snmp_lab.swap(IP, str(_with_max_counter(tmp_path)))
    try:
        device = PolledDevice(IP, SnmpTarget(IP, snmp_lab.port, SnmpCredential.v2c("public")), serial="s-max")
        reading = await poll_device(snmp_client, device, tuple(ReadingKind))
    finally:
        await snmp_lab.swap(IP, "epson")
    assert [c.name for c in reading.counters if c.name == "marker.1.1.life"] == []
    assert any("prtMarkerLifeCount.1.1" in e and str(MAX64) in e and "out of range" in e for e in reading.errors)
    assert reading.supplies, "the printer's other values of the same poll are kept"
    assert all(0 <= c.value < 1 << 63 for c in reading.counters)
    assert reading_to_wire(reading).SerializeToString()  # the agent's encoder takes it
