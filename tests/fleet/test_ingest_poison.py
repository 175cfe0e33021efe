"""What an outside tester sent through the real agent channel (issue 17 attack report): values
the database would refuse (NUL, over-long or repeated kinds, 2^40 indexes, a reading dated in
year 9999, a level above its capacity) are refused per reading at the edge with a reason while
the good readings of the batch are stored; an upload that is no valid protobuf message is
INVALID_ARGUMENT with a clear text; an internal failure never sends SQL or parameters to the
agent (INTERNAL, a generic text and an error id)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc import aio

import fleet.decode
import fleet.ingest
from agent.channel.grpc_client import GrpcChannel
from agent.errors import BatchNotAccepted, CloudBusy
from agent.readings_queue import ReadingsQueue, grpc_uploader
from fleet.decode import DecodedBatch
from printgate.domain import CounterValue, PrinterAlert, Reading, ReadingKind, SupplyLevel
from printgate.store.db import Database
from printgate.store.readings import count_readings, readings_for
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert
from tests.fleet.conftest import T0, reading_of
from tests.fleet.test_ingest_channel import Channel, agent_channel, channel

__all__ = ["channel"]
UPLOAD = "/printgate.agent.v1.AgentChannel/UploadReadings"


def _raw_upload(ch: object, raw: bytes) -> aio.UnaryUnaryMultiCallable:
    return ch._channel.unary_unary(UPLOAD, request_serializer=lambda b: b,  # type: ignore[attr-defined]
                                   response_deserializer=pb.Ack.FromString)


async def test_values_the_database_refuses_are_rejected_per_reading_and_the_rest_is_stored(channel: Channel) -> None:
    good = reading_of("lab-jetdirect_m130nw-alerts", ip="127.0.20.15", at=T0)
    alert = good.alerts[0] if good.alerts else PrinterAlert(1, "warning", "cover", "coverOpen", "Door", None)
    bad = [
        replace(good, id="r-nul\x00"),
        replace(good, id="r-kinds", kinds=(ReadingKind.COUNTERS,) * 20),
        replace(good, id="r-index", alerts=(replace(alert, index=-7),)),
        replace(good, id="r-code", alerts=(replace(alert, code="x\x00y"),)),
        replace(good, id="r-future", taken_at=datetime(9999, 1, 1, tzinfo=UTC)),
        replace(good, id="r-level", supplies=(SupplyLevel(1, "Black", "toner", "black", "percent", 100, 5000),)),
        replace(good, id="r-type", supplies=(SupplyLevel(1, "Black", "t" * 65, "black", "percent", 100, 5),)),
    ]
    now = datetime.now(UTC)
    fresh = replace(good, taken_at=now - timedelta(minutes=1))
    async with agent_channel(channel) as ch:
        ack = await ch.upload_readings("b-poison", [*bad, fresh], deadline_s=20)
    assert ack.stored == 1 and not ack.duplicate
    reasons = {r.reading_id: r.reason for r in ack.rejected}
    assert set(reasons) == {r.id[:64] for r in bad}
    assert "NUL" in reasons["r-nul\x00"]
    assert "more than once" in reasons["r-kinds"]
    assert "alert index -7" in reasons["r-index"]
    assert "NUL" in reasons["r-code"]
    assert "ahead of the cloud's clock" in reasons["r-future"]
    assert "level 5000 above its capacity 100" in reasons["r-level"]
    assert "65 characters (at most 64)" in reasons["r-type"]
    assert [r.id for r in await readings_for(channel.db, device_id="dev-m130")] == [fresh.id]


async def test_an_upload_that_is_no_valid_message_is_invalid_argument_with_a_clear_text(channel: Channel) -> None:
    raw = convert.readings_batch("s1", "b-\x01\x02utf", [reading_of("jetdirect_m130nw", ip="127.0.20.15",
                                                                    at=T0)]).SerializeToString()
    raw = raw.replace(b"b-\x01\x02utf", b"b-\xff\xfeutf")  # invalid UTF-8 in a string field
    async with agent_channel(channel) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await _raw_upload(ch, raw)(raw, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ReadingsBatch message" in (err.value.details() or "")
    assert await count_readings(channel.db) == 0


async def test_an_internal_failure_sends_no_sql_to_the_agent(channel: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_: object, **__: object) -> None:
        raise RuntimeError("INSERT INTO readings (id, body) VALUES ($1, $2) parameters: ('secret-serial',)")

    monkeypatch.setattr(fleet.ingest, "store_group", boom)
    async with agent_channel(channel) as ch:
        request = convert.readings_batch("s1", "b-boom", [reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)])
        with pytest.raises(aio.AioRpcError) as err:
            await _raw_upload(ch, b"")(request.SerializeToString(), timeout=10)
    details = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "error id" in details and "INSERT" not in details and "secret" not in details


async def _held(channel: Channel, ch: GrpcChannel, batch_id: str) -> asyncio.Task[pb.Ack]:
    """A batch held in flight (the store is gated), once the cloud is working on it."""
    held = asyncio.create_task(ch.upload_readings(batch_id, [reading_of("jetdirect_m130nw", ip="127.0.20.15",
                                                                        at=T0)], deadline_s=30))
    for _ in range(200):
        if channel.db.waiting:
            break
        await asyncio.sleep(0.05)
    assert channel.ingest.in_flight == 1 and channel.ingest.bytes_in_flight > 0
    return held


@pytest.mark.parametrize("bound", ["max_agent_bytes_in_flight", "max_bytes_in_flight"])
async def test_ingest_is_bounded_by_bytes_in_flight_and_the_agent_is_told_when_to_retry(
    channel: Channel, bound: str,
) -> None:
    channel.ingest.max_in_flight = 50  # the batch count is not what stops it
    setattr(channel.ingest, bound, 100)  # below one batch: the first is admitted alone
    later = reading_of("jetdirect_m130nw", ip="127.0.20.16", at=T0.replace(hour=9))
    channel.db.gate.clear()
    async with agent_channel(channel) as ch:
        held = await _held(channel, ch, "b-held")
        with pytest.raises(CloudBusy) as busy:
            await ch.upload_readings("b-more", [later], deadline_s=10)
        assert busy.value.retry_after_s == 7 and "bytes" in busy.value.message
        channel.db.gate.set()
        assert (await asyncio.wait_for(held, 20)).stored == 1
        assert (await ch.upload_readings("b-more", [later], deadline_s=10)).stored == 1
    assert channel.ingest.bytes_in_flight == 0 and channel.ingest.in_flight == 0


async def test_a_batch_with_too_many_values_is_refused_whole_with_a_hint_to_split(
    channel: Channel, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fleet.decode, "MAX_VALUES", 10)
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    many = replace(r, counters=tuple(CounterValue(f"c.{i}", i) for i in range(11)))
    async with agent_channel(channel) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await _raw_upload(ch, b"")(convert.readings_batch("s1", "b-many", [many]).SerializeToString(),
                                       timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exceed the limit of 10 per batch: split it" in (err.value.details() or "")


async def test_a_batch_the_cloud_cannot_store_is_set_aside_after_a_few_attempts_and_later_batches_flow(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    real = fleet.ingest.store_group

    async def poisoned(db: object, batches: Sequence[tuple[str, DecodedBatch]], **kw: object) -> object:
        if any(r.id == "poison" for _, b in batches for r in b.readings):
            raise RuntimeError("a cloud bug this reading triggers")
        return await real(db, batches, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet.ingest, "store_group", poisoned)
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    async with agent_channel(channel) as ch, \
            ReadingsQueue(tmp_path / "q.sqlite", batch_size=1, max_attempts=3) as queue:
        await queue.put(replace(r, id="poison"))
        await queue.put(replace(r, id="good", taken_at=T0.replace(hour=9)))
        uploader = grpc_uploader(ch.upload_readings)
        assert [await asyncio.wait_for(queue.flush(uploader), 20) for _ in range(2)] == [0, 0]  # not retried for ever
        assert await queue.pending() == 2 and await queue.dead_letters() == (0, 0)
        assert await asyncio.wait_for(queue.flush(uploader), 20) == 1  # 3rd failure: set aside, the next one flows
        assert await queue.pending() == 0 and await queue.dead_letters() == (1, 1)
        assert queue.last_quarantine is not None and "INTERNAL" in queue.last_quarantine
        assert "error id" in queue.last_quarantine
    assert [x.id for x in await readings_for(channel.db, agent_ids=[channel.identity.agent_id])] == ["good"]


async def test_a_batch_refused_as_invalid_is_set_aside_at_once(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setattr(fleet.decode, "MAX_VALUES", 10)
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    async with agent_channel(channel) as ch, ReadingsQueue(tmp_path / "q.sqlite", batch_size=1) as queue:
        await queue.put(replace(r, id="huge", counters=tuple(CounterValue(f"c.{i}", i) for i in range(11))))
        await queue.put(replace(r, id="fine", taken_at=T0.replace(hour=9)))
        assert await asyncio.wait_for(queue.flush(grpc_uploader(ch.upload_readings)), 20) == 1
        assert await queue.dead_letters() == (1, 1) and "INVALID_ARGUMENT" in (queue.last_quarantine or "")


async def test_the_queue_names_what_keeps_readings_from_the_cloud(tmp_path: Path) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    async with ReadingsQueue(tmp_path / "q.sqlite", batch_size=1, max_attempts=1) as queue:
        assert await queue.delivery_problem(last_delivery=None, now=T0) is None
        await queue.put(r)
        assert await queue.delivery_problem(last_delivery=None, now=T0 + timedelta(minutes=29)) is None
        stale = await queue.delivery_problem(last_delivery=None, now=T0 + timedelta(minutes=31))
        assert stale is not None and "nothing delivered since start" in stale

        async def refuse(batch_id: str, readings: Sequence[object]) -> pb.Ack:
            raise BatchNotAccepted("readings batch not accepted: INTERNAL", permanent=False)

        assert await queue.flush(grpc_uploader(refuse)) == 0
        problem = await queue.delivery_problem(last_delivery=None, now=T0)
        assert problem is not None and "1 readings batch(es) (1 readings)" in problem and "INTERNAL" in problem


async def test_the_agent_seals_batches_under_the_message_limit_and_never_sends_one_over_it(
    channel: Channel, tmp_path: Path,
) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    one = len(json.dumps(r.to_dict()))
    sizes: list[int] = []
    async with agent_channel(channel) as ch, \
            ReadingsQueue(tmp_path / "q.sqlite", batch_size=100, max_batch_bytes=int(one * 2.5)) as queue:
        async def upload(batch_id: str, readings: Sequence[Reading]) -> pb.Ack:
            sizes.append(len(readings))
            return await ch.upload_readings(batch_id, readings, deadline_s=20)

        await queue.put_many([replace(r, id=f"r{i}", taken_at=T0 + timedelta(minutes=i)) for i in range(5)])
        assert await queue.flush(grpc_uploader(upload)) == 5
        assert sizes == [2, 2, 1]
        wide = tuple(CounterValue(f"{'x' * 120}.{i}", i, "u" * 150) for i in range(512))
        huge = [replace(r, id=f"h{i}", counters=wide) for i in range(60)]
        with pytest.raises(BatchNotAccepted) as refused:  # refused before sending: retrying cannot help
            await ch.upload_readings("b-huge", huge, deadline_s=20)
    assert refused.value.permanent and "must be split" in refused.value.message
    assert await count_readings(channel.db) == 5


async def test_a_batch_id_resent_with_different_content_is_refused_not_acknowledged_as_a_duplicate(
    channel: Channel,
) -> None:
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    other = replace(r, id="other", taken_at=T0.replace(hour=9))
    async with agent_channel(channel) as ch:
        assert (await ch.upload_readings("b-same", [r], deadline_s=20)).stored == 1
        assert (await ch.upload_readings("b-same", [r], deadline_s=20)).duplicate  # a true retry
        with pytest.raises(BatchNotAccepted) as refused:
            await ch.upload_readings("b-same", [other], deadline_s=20)
    assert refused.value.permanent and "INVALID_ARGUMENT" in refused.value.message
    assert "delivered before with different content" in refused.value.message
    assert [x.id for x in await readings_for(channel.db, agent_ids=[channel.identity.agent_id])] == [r.id]


async def test_a_reading_id_stored_by_a_concurrent_batch_meanwhile_is_retried_not_an_error(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race of two batches with the same reading id: the other transaction commits it between
    our check and our insert (``COPY`` on PostgreSQL raises asyncpg's own UniqueViolationError)."""
    r = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    assert await fleet.ingest.ingest_batch(db, "agt-1", "b-first", [r])
    real = fleet.ingest.rows.known_reading_ids
    calls = 0

    async def raced(s: object, ids: Sequence[str]) -> set[str]:
        nonlocal calls
        calls += 1
        return set() if calls == 1 else await real(s, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet.ingest.rows, "known_reading_ids", raced)
    result = await fleet.ingest.store_decoded(db, "agt-1", DecodedBatch("b-second", 2, [r]))
    assert not result.duplicate and result.stored == 0 and calls == 2
    assert await count_readings(db) == 1
