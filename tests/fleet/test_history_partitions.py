"""The readings history: monthly partitions on PostgreSQL (migration 0017, ``readings-history``
task) and retention per dealer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from fleet.errors import RetentionInvalid
from fleet.ingest import ingest_batch
from fleet.retention import HistoryUpkeep, set_dealer_retention
from printgate.domain import event_types
from printgate.store import readings_history as history
from printgate.store.audit import iter_records
from printgate.store.db import Database, alembic_config
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.database import migrated, sqlite_url
from tests.fleet.conftest import reading_of, seed_fleet

NOW = datetime.now(UTC)


async def _where(db: Database) -> dict[str, str]:
    """Each reading id -> the table it is stored in (PostgreSQL: its partition)."""
    async with db.session() as s:
        if db.dialect == "postgresql":
            rows = (await s.execute(sa.text("SELECT id, tableoid::regclass::text FROM readings"))).tuples().all()
        else:
            rows = [(i, "readings") for i in (await s.execute(sa.text("SELECT id FROM readings"))).scalars().all()]
    return dict(rows)


async def _store(db: Database, agent: str, ip: str, *at: datetime) -> list[str]:
    readings = [reading_of("jetdirect_m130nw", ip=ip, at=t) for t in at]
    await ingest_batch(db, agent, f"b-{readings[0].id}", readings)
    return [r.id for r in readings]


async def test_migration_partitions_the_history_by_month_on_postgresql(db: Database) -> None:
    async with db.session() as s:
        parts = await history.partitions(s)
        if db.dialect != "postgresql":
            assert parts == []  # SQLite: the plain table
            return
        kind = (await s.execute(sa.text("SELECT relkind::text FROM pg_class WHERE relname = 'readings'"))).scalar_one()
        default = (await s.execute(sa.text("SELECT to_regclass('readings_default')"))).scalar_one()
    assert kind == "p" and default == "readings_default"
    this_month = history.month_start(NOW)
    assert [p.start for p in parts][:3] == [this_month, history.next_month(this_month),
                                            history.next_month(history.next_month(this_month))]


async def test_readings_land_in_their_month_and_a_month_without_partition_is_kept(db: Database) -> None:
    await seed_fleet(db)
    now_ids = await _store(db, "a-c1", "127.0.20.15", NOW - timedelta(minutes=1))
    old = history.month_start(NOW - timedelta(days=400)) + timedelta(days=3)  # no partition for that month yet
    old_ids = await _store(db, "a-c1", "127.0.20.15", old)
    where = await _where(db)
    if db.dialect == "postgresql":
        assert where[now_ids[0]] == history.partition_name(history.month_start(NOW))
        assert where[old_ids[0]] == "readings_default"  # stored all the same
    else:
        assert set(where) == {*now_ids, *old_ids}
    report = await HistoryUpkeep(db, RecordingAuditSink()).ensure_partitions(NOW)
    where = await _where(db)
    if db.dialect == "postgresql":  # the month got its partition and its row moved in
        assert report.partitions_created == [history.partition_name(history.month_start(old))]
        assert report.rows_adopted == 1
        assert where[old_ids[0]] == history.partition_name(history.month_start(old))
        again = await _store(db, "a-c1", "127.0.20.15", old + timedelta(hours=1))
        assert (await _where(db))[again[0]] == history.partition_name(history.month_start(old))
    else:
        assert report.partitions_created == [] and set(where) == {*now_ids, *old_ids}


async def test_retention_deletes_only_that_dealers_old_readings_in_batches(db: Database) -> None:
    await seed_fleet(db)  # d1: agents a-c1, a-c2; d2: a-c3
    old = NOW - timedelta(days=45)
    d1_old = await _store(db, "a-c1", "127.0.20.15", *(old + timedelta(minutes=i) for i in range(5)))
    d1_old += await _store(db, "a-c2", "127.0.20.11", old)
    d1_new = await _store(db, "a-c1", "127.0.20.15", NOW - timedelta(days=2))
    d2_old = await _store(db, "a-c3", "127.0.20.15", old)
    audit = RecordingAuditSink()
    with pytest.raises(RetentionInvalid):
        await set_dealer_retention(db, audit, "d1", 2, by="ops")
    with pytest.raises(RetentionInvalid):
        await set_dealer_retention(db, audit, "no-such-dealer", 30, by="ops")
    assert await set_dealer_retention(db, audit, "d1", 30, by="ops") is None
    async with db.session() as s:
        assert await history.retention_of(s, "d1") == (30, True)
        assert await history.retention_of(s, "d2") == (history.DEFAULT_RETENTION_DAYS, False)
    report = await HistoryUpkeep(db, audit, batch=2).prune(NOW)
    assert report.pruned == {"d1": 6}
    left = set(await _where(db))
    assert left == {*d1_new, *d2_old}  # d2 keeps 400 days; d1's recent reading stays
    assert not left & set(d1_old)
    [pruned] = audit.of(event_types.FLEET_HISTORY_PRUNED)
    assert pruned.dealer_id == "d1" and pruned.details["deleted"] == 6
    assert audit.of(event_types.FLEET_HISTORY_RETENTION_SET)[0].details == {"days": 30, "before": None}
    assert (await HistoryUpkeep(db, audit, batch=2).prune(NOW)).pruned == {}  # nothing left to do


async def test_whole_months_are_dropped_once_every_dealers_retention_is_past_them(db: Database) -> None:
    await seed_fleet(db)
    audit = RecordingAuditSink()
    for dealer in ("d1", "d2"):
        await set_dealer_retention(db, audit, dealer, 30, by="ops")
    far = history.month_start(NOW - timedelta(days=200)) + timedelta(days=1)
    recent = NOW - timedelta(days=5)
    far_ids = await _store(db, "a-c1", "127.0.20.15", far)
    far_ids += await _store(db, "a-c3", "127.0.20.15", far + timedelta(hours=1))
    keep = await _store(db, "a-c1", "127.0.20.15", recent)
    upkeep = HistoryUpkeep(db, audit)
    await upkeep.ensure_partitions(NOW)
    dropped = await upkeep.drop_partitions(NOW)
    left = set(await _where(db))
    if db.dialect == "postgresql":
        assert dropped.partitions_dropped == [history.partition_name(history.month_start(far))]
        assert dropped.rows_dropped == 2
        [event] = audit.of(event_types.FLEET_HISTORY_PARTITION_DROPPED)
        assert event.details["rows"] == 2
        async with db.session() as s:
            assert history.month_start(far) not in {p.start for p in await history.partitions(s)}
            assert history.month_start(NOW) in {p.start for p in await history.partitions(s)}
        assert left == set(keep)
    else:  # SQLite: row deletes only
        assert dropped.partitions_dropped == [] and left == {*far_ids, *keep}
        assert (await upkeep.prune(NOW)).pruned == {"d1": 1, "d2": 1}
        assert set(await _where(db)) == set(keep)
    # one dealer keeping 400 days keeps every month younger than that
    await set_dealer_retention(db, audit, "d2", 400, by="ops")
    assert (await upkeep.drop_partitions(NOW + timedelta(days=60))).partitions_dropped == []


async def test_downgrade_to_0010_unpartitions_and_keeps_the_history(database_url: str) -> None:
    cfg = alembic_config(database_url)
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    async with Database(database_url) as db:
        await seed_fleet(db)
        ids = await _store(db, "a-c1", "127.0.20.15", NOW - timedelta(minutes=3), NOW - timedelta(days=100))
    await asyncio.to_thread(command.downgrade, cfg, "0010_device_identity")
    async with Database(database_url) as db:
        assert set(await _where(db)) == set(ids)
        if db.dialect == "postgresql":
            async with db.session() as s:
                assert (await s.execute(sa.text(
                    "SELECT relkind::text FROM pg_class WHERE relname = 'readings'"))).scalar_one() == "r"
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    async with Database(database_url) as db:
        assert set(await _where(db)) == set(ids)


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    exe = str(Path(sys.executable).parent / "printgate")
    proc = await asyncio.create_subprocess_exec(exe, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def test_cli_sets_and_shows_a_dealers_retention_audited(tmp_path: Path) -> None:
    async with migrated(sqlite_url(tmp_path / "cli.db")) as db:
        await seed_fleet(db)
        env = {**os.environ, "PRINTGATE_DATABASE_URL": db.url}
        code, out = await _cli(env, "fleet", "retention", "--dealer", "d1", "--days", "90", "--by", "ops@dealer.test")
        assert code == 0 and "dealer d1 now keeps 90 days of readings history (was the default, 400 days)" in out
        code, out = await _cli(env, "fleet", "retention", "--dealer", "d1")
        assert code == 0 and "keeps 90 days of readings history (set)" in out
        code, out = await _cli(env, "fleet", "retention", "--dealer", "d1", "--days", "1")
        assert code == 2 and "retention must be 7..3650 days, not 1" in out
        async with db.session() as s:
            assert await history.retention_of(s, "d1") == (90, True)
        records = [r async for rows in iter_records(db) for r in rows if r.type == event_types.FLEET_HISTORY_RETENTION_SET]
        assert len(records) == 1 and '"days":90' in (records[0].entry or "")  # the actor is a salted commitment
