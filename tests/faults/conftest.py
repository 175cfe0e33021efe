"""Fault fixtures: a tiny tmpfs the test mounts for an agent's data, a PostgreSQL cluster of the
test's own to stop and start, the portal served over it with a signed-in client, and ``until``
(wait for a supervised loop's state, failing with what was awaited)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store.db import Database, migrate
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock, create_user, served, sign_in
from printgate.testing.tenancy import Tenancy


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (polling every 50 ms) until ``predicate()`` holds; after ``timeout`` s fail saying ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(what) from None


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test only (root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)],
                   check=True, capture_output=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last block; returns the filler file (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def fill_under_queue(disk: Path, queue_file: Path) -> Path:
    """Fill ``disk`` at a moment the agent's readings queue (``queue_file``, SQLite in WAL mode) needs
    new space for its next write; returns the filler file.

    The queue keeps its WAL file allocated (``journal_size_limit`` 1 MiB) and writes it again from the
    start after each checkpoint: a disk filled at a random moment leaves it room for up to ~250 more
    frames (tens of seconds, more on a loaded machine), where it honestly goes on storing. Emptying the
    WAL first (a checkpoint that truncates it, from a second connection as the sqlite3 shell would)
    makes the queue's next transaction allocate, so the full disk shows at once."""
    with contextlib.closing(sqlite3.connect(queue_file, timeout=10)) as db:
        for _ in range(50):  # busy while the agent is inside a transaction: ask again
            busy, _frames, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
        else:
            raise AssertionError(f"the WAL of {queue_file} could not be checkpointed (always busy)")
    return fill(disk)  # a transaction in between only grew the WAL from empty: the next one allocates too


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), Path("/nonexistent"))


class OwnPostgres:
    """A PostgreSQL cluster this test made (initdb in tmp, its own free port): stop and start it at will.

    Never the shared server at :5432.
    """

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True,
                       timeout=timeout, cwd=self.root)

    def init(self) -> None:
        """A new cluster: a copy (``cp -a``: owner and modes kept) of one that initdb made for this test
        process, which is what initdb would make again (1-3 s each, more on a busy machine)."""
        subprocess.run(["cp", "-a", str(_initdb_once(self._as_postgres)), str(self.data)], check=True,
                       capture_output=True, timeout=60)

    def start(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w",
                          "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                          "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop")


_initdb_cluster: Path | None = None


def _initdb_once(as_postgres: Callable[..., None]) -> Path:
    """The data dir of a cluster initdb made once in this process (never started: copies of it are),
    removed when the process ends."""
    global _initdb_cluster
    if _initdb_cluster is None or not _initdb_cluster.exists():
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="pgfault-initdb-"))
        root.chmod(0o755)
        shutil.chown(root, "postgres", "postgres")
        atexit.register(shutil.rmtree, root, True)
        as_postgres(str(PG_BIN / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
                    "--no-sync", "-E", "UTF8")
        _initdb_cluster = root / "data"
    return _initdb_cluster


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists():
        pytest.skip("needs root and PostgreSQL's initdb")
    import shutil
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(prefix="pgfault-"))
    root.chmod(0o755)
    shutil.chown(root, "postgres", "postgres")
    pg = OwnPostgres(root, port)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PortalOnPostgres:
    """The portal served on loopback over a migrated ``OwnPostgres`` (one dealer), with a technician
    signed in through ``client``: the set-up of the portal's database-outage tests."""

    pg: OwnPostgres
    db: Database
    clock: Clock
    base: str
    client: httpx.AsyncClient


@pytest.fixture
async def portal_on_own_postgres(own_postgres: OwnPostgres) -> AsyncIterator[PortalOnPostgres]:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    try:
        await Tenancy().dealer("d1").save(db)
        clock = Clock()
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                         broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
        user, secret = await create_user(db, Role.TECHNICIAN)
        async with served(app, port), httpx.AsyncClient(base_url=base, timeout=60,
                                                          follow_redirects=False) as client:
            await sign_in(client, SimpleNamespace(clock=clock), user, secret)
            yield PortalOnPostgres(own_postgres, db, clock, base, client)
    finally:
        await db.aclose()
