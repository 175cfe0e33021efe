"""``Database.writable`` and the portal's ``/readyz``: a write lock nobody can take is reported
(issue 12 follow-up: a wedged SQLite write lock left /readyz at 200 while every writer failed)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
from pathlib import Path

import httpx

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, served


class _WriteLockHolder:
    """Another process's view: a plain sqlite3 connection holding the write lock until released."""

    def __init__(self, path: str) -> None:
        self._path = path
        self.held, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        self.held.set()
        self._release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    async def __aenter__(self) -> _WriteLockHolder:
        self._thread.start()
        assert await asyncio.to_thread(self.held.wait, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await asyncio.to_thread(self._thread.join, 10)


async def test_writable_on_both_backends(db: Database) -> None:
    assert await db.writable(timeout=1.0) is None


async def test_readyz_is_503_while_the_sqlite_write_lock_is_held(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    async with migrated(sqlite_url(path)) as db:
        clock = Clock()
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                         broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
        async with served(app, port), httpx.AsyncClient(base_url=base, timeout=20) as client:
            assert (await client.get("/readyz")).status_code == 200
            async with _WriteLockHolder(str(path)):
                problem = await db.writable(timeout=0.5)
                assert problem is not None and "write lock" in problem
                wedged = await client.get("/readyz")
            assert wedged.status_code == 503, wedged.text
            assert "write lock" in wedged.json()["checks"]["database_writable"]
            assert wedged.json()["checks"]["database"] == "ok"  # reads still answer: that is why it hid
            assert (await client.get("/readyz")).status_code == 200
