"""Migration 0016: the channel's processed_batches fold into the batch ledger (reading_batches),
keeping every batch either knew, so a batch delivered before the upgrade stays a duplicate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command

from fleet.ingest import ingest_payload
from printgate.store.db import Database, alembic_config
from tests.fleet.conftest import T0, payload_of, reading_of, seed_fleet

WHEN = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def test_migration_0016_keeps_every_known_batch_in_one_ledger(database_url: str) -> None:
    cfg = alembic_config(database_url)
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    await asyncio.to_thread(command.downgrade, cfg, "0010_device_identity")  # the two tables of before
    async with Database(database_url) as db:
        async with db.transaction() as s:
            await s.execute(sa.text(
                "INSERT INTO reading_batches (agent_id, batch_id, received_at, count) VALUES "
                "('a-c1', 'both', :t, 4)"), {"t": WHEN})
            await s.execute(sa.text(
                "INSERT INTO processed_batches (agent_id, batch_id, processed_at) VALUES "
                "('a-c1', 'both', :t), ('a-c1', 'channel-only', :t), ('a-c2', 'channel-only', :t)"), {"t": WHEN})
    await asyncio.to_thread(command.upgrade, cfg, "heads")
    async with Database(database_url) as db:
        async with db.session() as s:
            ledger = sorted((await s.execute(sa.text(
                "SELECT agent_id, batch_id, count FROM reading_batches ORDER BY agent_id, batch_id"))).tuples().all())
            tables = await s.run_sync(lambda sync: sa.inspect(sync.connection()).get_table_names())
        assert ledger == [("a-c1", "both", 4), ("a-c1", "channel-only", 0), ("a-c2", "channel-only", 0)]
        assert "processed_batches" not in tables
        await seed_fleet(db)
        again = payload_of([reading_of("jetdirect_m130nw", ip="127.0.20.15", at=T0)])
        assert await ingest_payload(db, "a-c1", "channel-only", again) is False  # delivered before the upgrade
        assert await ingest_payload(db, "a-c1", "new", again) is True
