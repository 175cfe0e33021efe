"""The tests' migrated databases are copies of one template migrated per process
(``printgate.testing.database``): a copy must be the very schema that Alembic builds from
scratch, on SQLite and on PostgreSQL, and each copy must be a database of its own. PostgreSQL
copies are made ahead and dropped on a background thread: a copy handed out is still untouched
and a discarded one is gone; a killed run's databases are dropped by the next."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from printgate.store.db import Database, migrate
from printgate.testing.database import (
    PG_TEST_PREFIX,
    create_pg_database,
    discard_pg_database,
    drop_pg_database,
    migrated,
    psql,
    sqlite_url,
    sweep_dead_test_databases,
)

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


def pg_databases() -> set[str]:
    listed = subprocess.run(
        ["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
         "SELECT datname FROM pg_database"], check=True, capture_output=True, text=True, timeout=30)
    return set(listed.stdout.split())


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


@pytest.mark.postgres
async def test_postgresql_copies_are_made_ahead_untouched_and_discarded_copies_are_dropped() -> None:
    mine = f"{PG_TEST_PREFIX}{os.getpid()}_"
    first = await asyncio.to_thread(create_pg_database, migrated=True)
    first_name = first.rsplit("/", 1)[1]
    assert first_name.startswith(mine)
    # the next copies are being made ahead, before anyone asks
    await eventually(lambda: len({n for n in pg_databases() if n.startswith(mine)} - {first_name}) >= 1)
    async with migrated(first) as db, db.transaction() as s:
        await s.execute(text("CREATE TABLE written_by_the_first_test (x INTEGER)"))
        await s.execute(text("INSERT INTO dealers (id, name) VALUES ('d-first', 'written by the first test')"))
    second = await asyncio.to_thread(create_pg_database, migrated=True)
    assert second != first
    try:
        async with migrated(second) as db:
            schema = await schema_of(db)
            assert len(schema) > 100 and "written_by_the_first_test" not in " ".join(schema)
            async with db.session() as s:
                assert (await s.execute(text("SELECT count(*) FROM dealers"))).scalar_one() == 0
        assert await asyncio.to_thread(discard_pg_database(first).wait, 60)
        assert first_name not in await asyncio.to_thread(pg_databases)
    finally:
        await asyncio.to_thread(drop_pg_database, first)
        await asyncio.to_thread(drop_pg_database, second)


@pytest.mark.postgres
def test_the_test_databases_of_a_killed_run_are_dropped_by_the_next() -> None:
    """A process that dies before its session ends leaves its copies; the sweep a new process
    makes before its template drops them (names carry the process id), and leaves those of live
    processes alone."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    left = f"{PG_TEST_PREFIX}{dead}_{'0' * 12}"
    live = f"{PG_TEST_PREFIX}{os.getpid()}_{'1' * 12}"
    for name in (left, live):
        psql(f"CREATE DATABASE {name}")
    try:
        sweep_dead_test_databases()
        names = pg_databases()
        assert left not in names and live in names
    finally:
        for name in (left, live):
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
