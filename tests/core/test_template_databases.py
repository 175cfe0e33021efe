"""The tests' migrated databases are copies of one template migrated per process
(``printgate.testing.database``): a copy must be the very schema that Alembic builds from
scratch, on SQLite and on PostgreSQL, and each copy must be a database of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from printgate.store.db import Database, migrate
from printgate.testing.database import create_pg_database, drop_pg_database, migrated, sqlite_url

SCHEMA = {
    "sqlite": "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master"
              " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    "postgresql": "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' '"
                  " || coalesce(column_default, '') FROM information_schema.columns"
                  " WHERE table_schema = 'public' ORDER BY table_name, column_name",
}
INDEXES = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"


async def schema_of(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        rows = await _rows(conn, SCHEMA[db.dialect])
        if db.dialect == "postgresql":
            rows += await _rows(conn, INDEXES)
        rows += await _rows(conn, "SELECT version_num FROM alembic_version ORDER BY version_num")
    return rows


async def _rows(conn: AsyncConnection, sql: str) -> list[str]:
    return [str(r[0]) for r in (await conn.execute(text(sql))).all()]


async def scratch_schema(url: str) -> list[str]:
    await migrate(url)
    db = Database(url)
    try:
        return await schema_of(db)
    finally:
        await db.aclose()


async def test_a_sqlite_copy_is_the_schema_alembic_builds(tmp_path: Path) -> None:
    expected = await scratch_schema(sqlite_url(tmp_path / "scratch.db"))
    assert len(expected) > 20
    async with migrated(sqlite_url(tmp_path / "one.db")) as one, migrated(sqlite_url(tmp_path / "two.db")) as two:
        assert await schema_of(one) == expected
        assert await schema_of(two) == expected
        async with one.transaction() as s:  # each copy is a file of its own
            await s.execute(text("CREATE TABLE only_in_one (x INTEGER)"))
        assert "only_in_one" not in " ".join(await schema_of(two))


@pytest.mark.postgres
async def test_a_postgresql_copy_is_the_schema_alembic_builds() -> None:
    scratch = await asyncio.to_thread(create_pg_database)
    copies = [await asyncio.to_thread(create_pg_database, migrated=True) for _ in range(2)]
    empty = await asyncio.to_thread(create_pg_database)
    try:
        expected = await scratch_schema(scratch)
        assert len(expected) > 100
        async with migrated(copies[0]) as one, migrated(copies[1]) as two, migrated(empty) as three:
            for db in (one, two, three):
                assert await schema_of(db) == expected
            async with one.transaction() as s:
                await s.execute(text("CREATE TABLE only_in_one (x INTEGER)"))
            assert "only_in_one" not in " ".join(await schema_of(two))
    finally:
        for url in (scratch, *copies, empty):
            await asyncio.to_thread(drop_pg_database, url)
