"""Migrated databases for tests and benchmarks: a SQLite file or the local PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from printgate.store.db import Database, migrate

PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def psql(sql: str) -> None:
    """Run one statement as ``postgres`` on the PostgreSQL server at 127.0.0.1:5432 (trust auth)."""
    subprocess.run(
        ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql],
        check=True, capture_output=True, timeout=30,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def create_pg_database() -> str:
    """A new, empty PostgreSQL database; its URL (drop it with ``drop_pg_database``)."""
    name = f"pgtest_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE DATABASE {name}")
    return f"{PG_SERVER}/{name}"


def drop_pg_database(url: str) -> None:
    psql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    """The database at ``url`` upgraded to the newest schema, closed on exit."""
    await migrate(url)
    db = Database(url)
    try:
        yield db
    finally:
        await db.aclose()


@asynccontextmanager
async def fresh_database(kind: str, tmp: Path) -> AsyncIterator[Database]:
    """A migrated, empty database on ``kind`` ("sqlite" in ``tmp``, or "postgresql"); dropped after."""
    if kind == "sqlite":
        async with migrated(sqlite_url(tmp / "printgate.db")) as db:
            yield db
        return
    url = await asyncio.to_thread(create_pg_database)
    try:
        async with migrated(url) as db:
            yield db
    finally:
        await asyncio.to_thread(drop_pg_database, url)
