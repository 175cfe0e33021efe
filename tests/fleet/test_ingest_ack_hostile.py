"""Issue 17 findings 2 and 3 over the real gRPC channel (SQLite and PostgreSQL): a version 1
reading whose id is a lone surrogate is refused alone before anything is stored and the
acknowledgement still builds; a payload nested 100,000 deep is INVALID_ARGUMENT; a duplicate
acknowledgement repeats the refusals of the first, so a lost acknowledgement loses no dead letter."""

from __future__ import annotations

import json
from dataclasses import replace

import grpc
import pytest
from grpc import aio

from printgate.errors import AgentUnavailable
from printgate.store.readings import readings_for
from tests.fleet.conftest import T0, reading_of
from tests.fleet.test_ingest_channel import Channel, agent_channel, channel

__all__ = ["channel"]


async def test_a_lone_surrogate_id_is_refused_alone_and_the_ack_and_its_resend_carry_the_refusal(
    channel: Channel,
) -> None:
    good = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    body = json.dumps(good.to_dict())
    bad = body.replace(good.id, "\\ud800bad")
    assert bad != body
    payload = f'{{"readings":[{body},{bad}]}}'.encode()
    async with agent_channel(channel) as ch:
        ack = await ch.upload_readings("b-surrogate", payload, deadline_s=20)
        again = await ch.upload_readings("b-surrogate", payload, deadline_s=20)
    assert ack.stored == 1 and not ack.duplicate
    assert [(r.position, r.reading_id) for r in ack.rejected] == [(1, "\\ud800bad")]
    assert "lone surrogate" in ack.rejected[0].reason
    assert again.duplicate and [(r.position, r.reading_id, r.reason) for r in again.rejected] == [
        (r.position, r.reading_id, r.reason) for r in ack.rejected]
    assert [r.id for r in await readings_for(channel.db, device_id="dev-m130")] == [good.id]


async def test_a_duplicate_typed_batch_is_answered_with_the_same_refusals(channel: Channel) -> None:
    good = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    negative = replace(good, id="r-negative", taken_at=T0.replace(hour=9),
                       counters=(replace(good.counters[0], value=-5),))
    async with agent_channel(channel) as ch:
        ack = await ch.upload_readings("b-dup", [negative, good], deadline_s=20)
        again = await ch.upload_readings("b-dup", [negative, good], deadline_s=20)
    assert [(r.position, r.reading_id) for r in ack.rejected] == [(0, "r-negative")]
    assert again.duplicate and again.stored == 0
    assert [(r.position, r.reading_id, r.reason) for r in again.rejected] == [
        (r.position, r.reading_id, r.reason) for r in ack.rejected]


async def test_a_v1_payload_nested_100000_deep_is_invalid_argument(channel: Channel) -> None:
    payload = b'{"readings":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    async with agent_channel(channel) as ch:
        with pytest.raises(AgentUnavailable) as caught:
            await ch.upload_readings("b-deep", payload, deadline_s=20)
    cause = caught.value.__cause__
    assert isinstance(cause, aio.AioRpcError) and cause.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nested too deep" in (cause.details() or "")
