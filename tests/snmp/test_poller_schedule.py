"""The Poller's schedule for real: snmpsim printers -> Poller -> SQLite ReadingsQueue -> uploader."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from agent.polling import PolledDevice, Poller, PollSchedule
from agent.readings_queue import ReadingsQueue, grpc_uploader
from agent.snmp import oids
from agent.snmp.transport import SnmpClient, SnmpTarget
from fleet.ingest import ingest_batch
from lab import snmprec
from lab.catalog import by_name
from lab.snmp import SnmpLab
from printgate.domain import Reading, ReadingKind, SnmpCredential
from printgate.store.db import Database
from printgate.store.readings import count_readings, readings_for
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert
from tests.snmp.conftest import DEAD

PUBLIC = SnmpCredential.v2c("public")
SCHEDULE = PollSchedule(counters_seconds=1.6, supplies_seconds=0.4, alerts_seconds=0.7)
RUN_FOR = 2.5


class CollectingCloud:
    """A real local receiver of ``upload_readings(batch_id, readings)``: the wire batch, decoded and kept."""

    def __init__(self) -> None:
        self.batches: dict[str, list[Reading]] = {}

    async def upload_readings(self, batch_id: str, sent: Sequence[Reading]) -> None:
        wire = pb.ReadingsBatch.FromString(convert.readings_batch("s", batch_id, sent).SerializeToString())
        self.batches[batch_id] = [convert.reading_from_wire(m) for m in wire.readings]

    @property
    def readings(self) -> list[Reading]:
        return [r for b in self.batches.values() for r in b]


@pytest.fixture
async def fast_client() -> AsyncIterator[SnmpClient]:
    async with SnmpClient(timeout=0.2, retries=0) as client:
        yield client


def _device(lab: SnmpLab, ip: str) -> PolledDevice:
    data = snmprec.load(by_name(lab.name_at(ip)).recording) if ip in lab.devices else {}
    sys_oid = data.get(oids.SYS_OBJECT_ID)
    return PolledDevice(ip, SnmpTarget(ip, lab.port, PUBLIC), serial=f"serial-{ip}",
                        sys_object_id=sys_oid.value if sys_oid and isinstance(sys_oid.value, str) else None)


async def test_each_kind_is_polled_at_its_own_cadence_into_the_queue(
    snmp_lab: SnmpLab, fast_client: SnmpClient, tmp_path: Path
) -> None:
    printers = [snmp_lab.address_of("epson"), snmp_lab.address_of("jetdirect_m130nw")]
    devices = [_device(snmp_lab, ip) for ip in printers] + [_device(snmp_lab, DEAD[0])]
    cloud = CollectingCloud()
    async with ReadingsQueue(tmp_path / "queue.sqlite", batch_size=25) as queue:
        async with Poller(fast_client, devices, queue, SCHEDULE):
            await asyncio.sleep(RUN_FOR)
        queued = await queue.pending()
        sent = await queue.flush(grpc_uploader(cloud.upload_readings))
        assert sent == queued and await queue.pending() == 0
    readings = cloud.readings

    times: dict[tuple[str, ReadingKind], list[float]] = defaultdict(list)
    for r in readings:
        assert len(r.kinds) == 1, "each schedule polls only its own kind"
        times[(r.ip, r.kinds[0])].append(r.taken_at.timestamp())
    for ip in [*printers, DEAD[0]]:
        for kind in ReadingKind:
            interval = SCHEDULE.interval(kind)
            stamps = sorted(times[(ip, kind)])
            expected = int(RUN_FOR / interval) + 1  # one at start, then one per interval
            assert expected - 1 <= len(stamps) <= expected, (ip, kind, len(stamps))
            if len(stamps) > 1:
                gap = statistics.median(b - a for a, b in itertools.pairwise(stamps))
                assert interval * 0.8 <= gap <= interval * 1.35, (ip, kind, gap)

    epson = snmprec.load(by_name("epson").recording)
    life = {o: v.value for o, v in epson.items() if oids.is_under(o, oids.PRT_MARKER_LIFE_COUNT)}
    for r in readings:
        if r.ip == printers[0] and ReadingKind.COUNTERS in r.kinds:
            assert r.errors == ()
            got = {c.name: c.value for c in r.counters if c.name.startswith("marker.")}
            assert got == {f"marker.{oids.suffix(o, oids.PRT_MARKER_LIFE_COUNT)}.life": v for o, v in life.items()}
        if r.ip == printers[0] and ReadingKind.SUPPLIES in r.kinds:
            assert len(r.supplies) > 0
        if r.ip == DEAD[0]:  # a dead device is recorded as an error each round, the loop goes on
            assert r.errors and r.errors[0].startswith("snmp: no SNMP"), r.errors


async def test_grpc_uploader_sends_the_typed_readings_and_a_failed_call_keeps_the_batch(
    db: Database, tmp_path: Path
) -> None:
    from tests.snmp.test_store_and_forward import _reading

    calls: list[tuple[str, list[Reading]]] = []
    fail_next = True

    async def upload_readings(batch_id: str, sent: Sequence[Reading]) -> None:
        """A real local cloud: the fleet's idempotent ingest of the wire batch, after one lost call."""
        nonlocal fail_next
        calls.append((batch_id, list(sent)))
        if fail_next:
            fail_next = False
            raise ConnectionError("gateway unreachable")
        wire = pb.ReadingsBatch.FromString(convert.readings_batch("s", batch_id, sent).SerializeToString())
        assert wire.version == 2 and not wire.payload_json
        await ingest_batch(db, "agent-grpc", batch_id, [convert.reading_from_wire(m) for m in wire.readings])

    readings = [_reading(n) for n in range(7)]
    async with ReadingsQueue(tmp_path / "q.sqlite", batch_size=5) as queue:
        await queue.put_many(readings)
        uploader = grpc_uploader(upload_readings)
        assert await queue.flush(uploader) == 0  # the call failed: batch kept, sealed
        assert await queue.flush(uploader) == 7
    assert [c[0] for c in calls][:2] == [calls[0][0]] * 2, "the retry re-sends the same batch id"
    assert len(calls) == 3
    assert calls[1][1] == readings[:5]
    assert await count_readings(db, "agent-grpc") == 7
    stored = await readings_for(db, agent_ids=["agent-grpc"], limit=100)
    assert sorted(r.id for r in stored) == sorted(r.id for r in readings)
