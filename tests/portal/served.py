"""Helpers for portal tests that need their own portal (other settings, a real
audit log, another database): a fresh database per backend and uvicorn on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from printgate.store.db import Database, migrate
from tests.conftest import psql


@asynccontextmanager
async def fresh_database(kind: str, tmp: Path) -> AsyncIterator[Database]:
    """A migrated, empty database on ``kind`` ("sqlite" or "postgresql" at 127.0.0.1:5432)."""
    name = f"pgtest_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'portal.db'}"
    else:
        await asyncio.to_thread(psql, f"CREATE DATABASE {name}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await migrate(url)
    db = Database(url)
    try:
        yield db
    finally:
        await db.aclose()
        if kind != "sqlite":
            await asyncio.to_thread(psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@asynccontextmanager
async def served(app: FastAPI, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1:``port``; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    assert server.started, "portal did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
