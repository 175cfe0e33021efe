"""Migrated databases for tests and benchmarks: a SQLite file or the local PostgreSQL.

Migrating from scratch costs about a second on PostgreSQL and a third of one on SQLite, and the
test suite needs a fresh migrated database for hundreds of tests. So ``migrated`` runs the real
Alembic upgrade once per process into a template (a SQLite file, a PostgreSQL database) and then
gives each new database a copy of it: a file copy for a SQLite file that does not exist yet,
``CREATE DATABASE … TEMPLATE`` for an empty database that ``create_pg_database`` made. Anything else (a
database with tables in it, another server) is migrated the ordinary way.

On PostgreSQL a copy still costs the server about half a second (more on a busy machine) and a
``DROP DATABASE`` a forced checkpoint (one to two seconds): so a background thread of the process
makes the next copies of the template before a test asks for one (``create_pg_database``), and
drops the databases that tests are done with (``discard_pg_database``) while the next test runs.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import queue
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from printgate.logs import get_logger
from printgate.store.db import Database, migrate, migrate_sync, sqlite_options

log = get_logger("printgate.testing.database")

PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
PG_TEST_PREFIX = "pgtest_"
PG_TEMPLATE_PREFIX = "pgtmpl_"
SQLITE_TEMPLATE_PREFIX = "printgate-template-"


def psql(sql: str) -> None:
    """Run one statement as ``postgres`` on the PostgreSQL server at 127.0.0.1:5432 (trust auth)."""
    subprocess.run(
        ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql],
        check=True, capture_output=True, timeout=30,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _new_pg_name() -> str:
    """``pgtest_<pid>_<random>``: the process id lets a later run drop what a killed one left."""
    return f"{PG_TEST_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:12]}"


def create_pg_database(*, migrated: bool = False) -> str:
    """A new PostgreSQL database, empty or (``migrated``) a copy of this process's migrated
    template (made ahead by the background thread when it could); its URL (drop it with
    ``drop_pg_database``, or ``discard_pg_database``)."""
    if not migrated:
        name = _new_pg_name()
        psql(f"CREATE DATABASE {name}")
        return f"{PG_SERVER}/{name}"
    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own event loop: never in the caller's thread
        template = pool.submit(_pg_template_name).result()
    url = _background().take_copy(template)
    _at_heads.add(url)
    return url


def drop_pg_database(url: str) -> None:
    _at_heads.discard(url)
    psql(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def discard_pg_database(url: str) -> threading.Event:
    """Drop a database its test is done with on the background thread (``DROP DATABASE`` waits for
    a checkpoint); it is gone before the test session ends. The event is set once it was tried."""
    _at_heads.discard(url)
    tried = threading.Event()

    def drop() -> None:
        try:
            drop_pg_database(url)
        finally:
            tried.set()

    _background().submit(drop)
    return tried


class _Background:
    """One thread per process for the server's slow work: copies of the template made ahead (at
    most ``AHEAD`` waiting) and drops of finished databases. At exit it finishes the drops queued,
    then drops the copies nobody took."""

    AHEAD = 2

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._planned = 0  # copies queued or waiting in _ready
        self._thread = threading.Thread(target=self._run, name="pg-test-databases", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def take_copy(self, template: str) -> str:
        """A copy of ``template`` (made now when none is ready); the next ones are queued."""
        try:
            name = self._ready.get_nowait()
            with self._lock:
                self._planned -= 1
        except queue.Empty:
            name = _new_pg_name()
            psql(f"CREATE DATABASE {name} TEMPLATE {template}")
        with self._lock:
            wanted, self._planned = self.AHEAD - self._planned, max(self._planned, self.AHEAD)
        for _ in range(wanted):
            self.submit(lambda: self._make_copy(template))
        return f"{PG_SERVER}/{name}"

    def _make_copy(self, template: str) -> None:
        name = _new_pg_name()
        try:
            psql(f"CREATE DATABASE {name} TEMPLATE {template}")
        except Exception:  # the server is busy or gone: take_copy makes one itself, and says why
            with self._lock:
                self._planned -= 1
            return
        self._ready.put(name)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception as exc:  # a drop that failed leaves a pgtest_<pid>_ database the next sweep drops
                log.warning("test_database.background_job_failed", error=str(exc))

    def close(self) -> None:
        if os.getpid() != self.pid or not self._thread.is_alive():
            return
        self._jobs.put(None)
        self._thread.join(timeout=120)
        while True:
            try:
                name = self._ready.get_nowait()
            except queue.Empty:
                break
            try:
                drop_pg_database(f"{PG_SERVER}/{name}")
            except Exception as exc:  # left for the next sweep (its process id is dead then)
                log.warning("test_database.drop_failed", database=name, error=str(exc))


_background_thread: _Background | None = None


def release_test_databases() -> None:
    """The end of a test session: finish the queued drops, drop the unused copies and this
    process's templates (pytest-xdist workers end without running exit handlers)."""
    global _background_thread, _pg_template, _sqlite_template
    with _template_lock:
        background, _background_thread = _background_thread, None
        template, _pg_template = _pg_template, None
        sqlite_template, _sqlite_template = _sqlite_template, None
    if background is not None:
        background.close()
    if template is not None:
        drop_pg_database(f"{PG_SERVER}/{template}")
    if sqlite_template is not None:
        shutil.rmtree(sqlite_template.parent, ignore_errors=True)


def _background() -> _Background:
    global _background_thread
    with _template_lock:
        if _background_thread is None or _background_thread.pid != os.getpid():
            _background_thread = _Background()
        return _background_thread


_template_lock = threading.Lock()
_sqlite_template: Path | None = None
_pg_template: str | None = None
_at_heads: set[str] = set()  # databases created as copies of the template


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(sqlite_options(url)[0])
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _pg_name(url: str) -> str | None:
    """The database name when ``url`` is one that ``create_pg_database`` made on the local server."""
    if not url.startswith(f"{PG_SERVER}/{PG_TEST_PREFIX}"):
        return None
    name = url[len(PG_SERVER) + 1:]
    return name if name.isidentifier() else None


def _dead(pid: str) -> bool:
    return pid.isdigit() and not Path(f"/proc/{pid}").exists()


def _sweep_dead_sqlite_templates() -> None:
    """Remove the SQLite templates of test processes that ended without their exit handlers (a
    pytest-xdist worker, a killed run)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SQLITE_TEMPLATE_PREFIX}*"):
        if _dead(folder.name[len(SQLITE_TEMPLATE_PREFIX):].split("-", 1)[0]):
            shutil.rmtree(folder, ignore_errors=True)


def sweep_dead_test_databases() -> None:
    """Drop the template databases and test databases of test processes that ended without their
    exit handlers (the server is on this machine, so the process id in the name can be checked)."""
    listed = subprocess.run(
        ["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
         "SELECT datname FROM pg_database WHERE datname LIKE 'pgtmpl%' OR datname LIKE 'pgtest%'"],
        check=True, capture_output=True, text=True, timeout=30).stdout.split()
    for name in listed:
        for prefix in (PG_TEMPLATE_PREFIX, PG_TEST_PREFIX):
            pid, sep, _rest = name.removeprefix(prefix).partition("_")
            if name.startswith(prefix) and sep and _dead(pid):
                drop_pg_database(f"{PG_SERVER}/{name}")


def _sqlite_template_file() -> Path:
    """This process's migrated SQLite template (built on first use, WAL folded into the file)."""
    global _sqlite_template
    with _template_lock:
        if _sqlite_template is None:
            _sweep_dead_sqlite_templates()
            folder = Path(tempfile.mkdtemp(prefix=f"{SQLITE_TEMPLATE_PREFIX}{os.getpid()}-"))
            atexit.register(shutil.rmtree, folder, True)
            path = folder / "template.db"
            migrate_sync(sqlite_url(path))
            with closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _sqlite_template = path
        return _sqlite_template


def _pg_template_name() -> str:
    """This process's migrated template database on the local server (dropped at exit)."""
    global _pg_template
    with _template_lock:
        if _pg_template is None:
            sweep_dead_test_databases()
            name = f"{PG_TEMPLATE_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
            psql(f"CREATE DATABASE {name}")
            atexit.register(drop_pg_database, f"{PG_SERVER}/{name}")
            migrate_sync(f"{PG_SERVER}/{name}")
            _pg_template = name
        return _pg_template


async def _pg_connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database=database, timeout=30)


async def _copy_of_template(url: str) -> bool:
    """Make the database at ``url`` a copy of this process's migrated template when it is a SQLite
    file that does not exist yet or an empty database on the local server; whether it did."""
    if (path := _sqlite_file(url)) is not None:
        if path.exists():
            return False
        template = await asyncio.to_thread(_sqlite_template_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, template, path)
        return True
    if url in _at_heads:
        return True
    if (name := _pg_name(url)) is None:
        return False
    conn = await _pg_connect(name)
    try:
        empty = not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema')")
    finally:
        await conn.close()
    if not empty:
        return False
    template_name = await asyncio.to_thread(_pg_template_name)
    admin = await _pg_connect("postgres")
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    finally:
        await admin.close()
    return True


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    """The database at ``url`` upgraded to the newest schema, closed on exit (a new SQLite file or
    an empty local PostgreSQL database becomes a copy of the once-migrated template)."""
    if not await _copy_of_template(url):
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
    url = await asyncio.to_thread(create_pg_database, migrated=True)
    try:
        async with migrated(url) as db:
            yield db
    finally:
        discard_pg_database(url)
