"""`printgate agent dead-letters list | show | replay | drop` over a real agent queue file and a
real cloud (the agent channel over gRPC with mutual TLS, fleet ingest, a database): a batch
the cloud refuses whole and a reading it refuses alone are kept with their reasons, replayed
once the cloud takes them, or dropped after a confirmation."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fleet.decode
from agent.dead_letters import DeadLetters
from agent.readings_queue import ReadingsQueue, grpc_uploader
from printgate.cli import build_app
from printgate.domain import CounterValue, SupplyLevel
from printgate.store.readings import readings_for
from tests.fleet.conftest import T0, reading_of
from tests.fleet.test_ingest_channel import Channel, agent_channel, channel

__all__ = ["channel"]


def cli(data_dir: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(build_app("agent"), ["agent", "dead-letters", *args, "--data-dir", str(data_dir)],
                                input=input)
    return result.exit_code, result.output


async def test_dead_letters_are_listed_with_reasons_replayed_into_the_cloud_and_dropped(
    channel: Channel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "agent-data"
    good = reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)
    huge = replace(good, id="r-huge", counters=tuple(CounterValue(f"c.{i}", i) for i in range(11)))
    over = replace(good, id="r-level", taken_at=T0.replace(hour=9),
                   supplies=(SupplyLevel(1, "Black", "toner", "black", "percent", 100, 5000),))
    fine = replace(good, id="r-fine", taken_at=T0.replace(hour=10))
    monkeypatch.setattr(fleet.decode, "MAX_VALUES", 10)  # a cloud that refuses this batch whole
    async with agent_channel(channel) as ch, ReadingsQueue(data_dir / "readings.sqlite", batch_size=2) as queue:
        uploader = grpc_uploader(ch.upload_readings)
        await queue.put(huge)
        assert await asyncio.wait_for(queue.flush(uploader), 20) == 0  # INVALID_ARGUMENT: set aside at once
        monkeypatch.setattr(fleet.decode, "MAX_VALUES", 200_000)
        await queue.put_many([over, fine])
        assert await asyncio.wait_for(queue.flush(uploader), 20) == 2  # acknowledged; r-level refused alone
        assert await queue.pending() == 0
        assert await queue.dead_letters() == (1, 1)  # only the whole batch is a delivery problem

        code, out = cli(data_dir, "list", "--json")
        assert code == 0
        listed = {b["kind"]: b for b in json.loads(out)}
        assert listed["batch"]["readings"] == 1 and "INVALID_ARGUMENT" in listed["batch"]["reasons"][0]
        assert listed["reading"]["readings"] == 1
        assert "level 5000 above its capacity 100" in listed["reading"]["reasons"][0]
        code, out = cli(data_dir, "list")
        assert code == 0 and "batch not accepted" in out and "readings refused" in out
        assert "2 readings in 2 batch(es)" in out

        refused_batch = listed["reading"]["batch_id"]
        code, out = cli(data_dir, "show", refused_batch[:10])  # a unique prefix is enough
        assert code == 0 and "r-level  127.0.20.15" in out and "reason: " in out and "capacity 100" in out
        code, out = cli(data_dir, "show", "nonexistent")
        assert code == 2 and "no dead-letter batch 'nonexistent'" in out

        # the cloud was fixed (it takes big batches again): replay; the agent's next flush delivers it
        code, out = cli(data_dir, "replay", listed["batch"]["batch_id"])
        assert code == 0 and "queued 1 reading(s) again as batch" in out
        assert await queue.pending() == 1
        assert await asyncio.wait_for(queue.flush(uploader), 20) == 1
        assert await queue.pending() == 0 and await queue.dead_letters() == (0, 0)

        code, out = cli(data_dir, "drop", refused_batch, input="n\n")  # asks; no: kept
        assert code == 1 and "nothing deleted" in out
        assert len(DeadLetters.of_data_dir(data_dir).batches()) == 1
        code, out = cli(data_dir, "drop", refused_batch, input="y\n")
        assert code == 0 and f"deleted 1 reading(s) of batch {refused_batch}" in out
        code, out = cli(data_dir, "list")
        assert code == 0 and "no dead letters" in out
    stored = {r.id for r in await readings_for(channel.db, agent_ids=[channel.identity.agent_id])}
    assert stored == {"r-huge", "r-fine"}


def test_dead_letters_name_a_missing_queue_file(tmp_path: Path) -> None:
    code, out = cli(tmp_path / "nowhere", "list")
    assert code == 2 and "no readings queue at" in out and "--data-dir" in out
