"""Engine and session factory; migrations run through Alembic.

A session's rollback and close run to the end even when the task using it is
cancelled (a gRPC call the client cancels, a request whose client went away):
a cancelled rollback would leave the pooled connection inside its transaction,
and on SQLite that transaction holds the one write lock for ever (every later
writer then waits out ``busy_timeout`` and fails). The cleanup runs as its own
task, shielded, and the cancelled caller waits for it (at most ``CLEANUP_GRACE_S``)
before the cancellation goes on.

A cancellation landing *inside* a statement sends SQLAlchemy's aiosqlite adaptor down
its invalidate/terminate path, which closed the driver connection without a rollback;
``sqlite3``'s close does not finalise a statement still owned by a live cursor (the
cancelled one lives on in the traceback), so SQLite kept the connection as a "zombie"
with its transaction, and the one write lock, open for good. ``_SqliteConnection`` (every
SQLite engine here connects through it) rolls back on the connection's own worker thread
before any close or stop, so the lock goes with the connection
(tests/core/test_cancelled_sessions.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from printgate.logs import get_logger

MIGRATIONS = Path(__file__).parent / "migrations"
WRITABLE_PROBE_S = 2.0
CLEANUP_GRACE_S = 10.0  # how long a cancelled caller waits for its session's rollback/close
log = get_logger(__name__)


async def run_to_end(step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step`` in its own task and wait for it even if this task is cancelled meanwhile.

    The cancellation (one or many) is re-raised once the step has finished, so the
    caller still unwinds; the step's own error, if any, wins over nothing.
    """
    async def _step() -> None:
        await step()

    task = asyncio.ensure_future(_step())
    cancelled_at: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        try:
            if cancelled_at is None:
                await asyncio.shield(task)
            else:  # cancelled: wait for the cleanup, but never for ever (a driver that lost its
                # connection thread never answers; the caller must still unwind)
                left = cancelled_at + CLEANUP_GRACE_S - loop.time()
                if left <= 0:
                    log.warning("store.cleanup_abandoned", grace_s=CLEANUP_GRACE_S)
                    break
                await asyncio.wait_for(asyncio.shield(task), left)
        except asyncio.CancelledError:
            if task.done():
                # the step itself was cancelled (loop shutting down) -- nothing more to wait for
                raise
            cancelled_at = cancelled_at or loop.time()
            continue
        except TimeoutError:
            continue
        break
    if cancelled_at is not None:
        raise asyncio.CancelledError


PG_CONNECT_TIMEOUT_S = 3.0  # PostgreSQL: TCP connect and startup handshake
PG_COMMAND_TIMEOUT_S = 6.0  # PostgreSQL: any one statement (a hung server answers nothing)
PG_POOL_TIMEOUT_S = 5.0  # PostgreSQL: waiting for a free pooled connection


# SQLite commit durability (docs/operations.md): in WAL mode "normal" survives a crash of the
# process (the commit is in the WAL file), not a power loss or kernel crash (the last commits
# may be lost, the file stays consistent); "full" fsyncs the WAL at every commit. Choose with
# the URL: sqlite+aiosqlite:///var/printgate.db?synchronous=full
SQLITE_SYNCHRONOUS = ("normal", "full")
SQLITE_SYNCHRONOUS_DEFAULT = "normal"


def sqlite_options(url: str) -> tuple[str, str]:
    """``(url without printgate's options, synchronous)`` of a SQLite URL (other URLs unchanged)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or "synchronous" not in parsed.query:
        return url, SQLITE_SYNCHRONOUS_DEFAULT
    value = str(parsed.query["synchronous"]).lower()
    if value not in SQLITE_SYNCHRONOUS:
        from printgate.errors import ConfigError

        raise ConfigError(f"synchronous={value!r} in the database URL: use one of {', '.join(SQLITE_SYNCHRONOUS)}")
    return parsed.difference_update_query(["synchronous"]).render_as_string(hide_password=False), value


def sqlite_pragmas(dbapi_conn: Any, synchronous: str = SQLITE_SYNCHRONOUS_DEFAULT) -> None:
    """The settings of every SQLite connection (the async engine's and the audit writer's)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS.index(synchronous) + 1}")  # NORMAL=1, FULL=2
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # erased values (GDPR) are overwritten with zeros, not left in free pages
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


SQLITE_BUSY_TIMEOUT_S = 30


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    """End ``conn``'s transaction (on the connection's own thread); ROLLBACK also aborts the
    statements a cancelled caller left pending, so no write lock outlives the connection."""
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.rollback()


class _SqliteConnection(aiosqlite.Connection):
    """aiosqlite's connection, but every way of closing it rolls back first (see the module doc)."""

    async def close(self) -> None:
        conn = self._connection
        if conn is not None and self._running:
            with contextlib.suppress(Exception):
                await run_to_end(partial(self._execute, _rollback_quietly, conn))
        await super().close()

    def stop(self) -> asyncio.Future[Any] | None:
        conn = self._connection
        if conn is not None and self._running:  # queued ahead of the close: same worker thread, in order
            self._tx.put_nowait((None, partial(_rollback_quietly, conn)))
        return super().stop()


def _sqlite_creator(url: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """Connections as SQLAlchemy's aiosqlite dialect makes them (same arguments), as ``_SqliteConnection``."""
    parsed = make_url(url)
    args, params = parsed.get_dialect()().create_connect_args(parsed)
    params = {**params, "timeout": SQLITE_BUSY_TIMEOUT_S}

    async def connect() -> aiosqlite.Connection:
        conn = _SqliteConnection(partial(sqlite3.connect, *args, **params), 64)
        conn._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return await conn

    return connect


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (SQLite file created on demand, WAL mode, ``?synchronous=``)."""
    url, synchronous = sqlite_options(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, async_creator=_sqlite_creator(url))
        event.listen(engine.sync_engine, "connect",
                     lambda dbapi_conn, _record: sqlite_pragmas(dbapi_conn, synchronous))
        return engine
    # a hung server (stopped, network black hole) must fail requests within seconds, not hang them:
    # asyncpg's connect timeout and default per-statement timeout (pre-ping included), and a bounded
    # wait for a pooled connection
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                               pool_timeout=PG_POOL_TIMEOUT_S,
                               connect_args={"timeout": PG_CONNECT_TIMEOUT_S,
                                             "command_timeout": PG_COMMAND_TIMEOUT_S})


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlite_options(url)[0].replace("%", "%%"))
    return cfg


START_RETRY_FIRST_S = 1.0
START_RETRY_MAX_S = 10.0


def database_address(url: str) -> str:
    """``host:port`` of a server database (for messages; never the password)."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


async def _ping(url: str) -> None:
    engine = create_engine(url)
    try:
        async with asyncio.timeout(PG_CONNECT_TIMEOUT_S + 5), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def wait_for_database(url: str, *, max_wait_s: float, clock: Callable[[], float] | None = None) -> None:
    """At start-up, before the migration: wait for a server database to answer, with back-off
    (1 s doubling to 10 s) and one warning line per failed attempt; ``DatabaseUnreachable`` (one
    line, no traceback) after ``max_wait_s``. A SQLite file needs no waiting; an error that is not
    an outage (bad password, no such database) is raised at once."""
    from printgate.errors import DatabaseUnreachable
    from printgate.store.outage import is_database_outage

    if make_url(sqlite_options(url)[0]).get_backend_name() == "sqlite":
        return
    now = clock or asyncio.get_running_loop().time
    where = database_address(url)
    deadline = now() + max_wait_s
    delay, attempt = START_RETRY_FIRST_S, 0
    while True:
        attempt += 1
        try:
            await _ping(url)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            reason = (str(getattr(exc, "orig", None) or exc) or type(exc).__name__).splitlines()[0][:300]
            left = deadline - now()
            if left <= 0:
                raise DatabaseUnreachable(
                    f"database unreachable at {where}: {reason}; gave up after {max_wait_s:g}s and "
                    f"{attempt} attempts (start the database or fix database_url; "
                    "database_start_wait_seconds sets how long to wait)") from None
            wait = min(delay, left)
            log.warning("db.unreachable_at_start", message=f"database unreachable at {where}: {reason}; "
                        f"retrying in {round(wait, 1):g}s", attempt=attempt, retry_in_s=round(wait, 1))
            await asyncio.sleep(wait)
            delay = min(delay * 2, START_RETRY_MAX_S)
        else:
            if attempt > 1:
                log.info("db.reachable", at=where, attempts=attempt)
            return


def migrate_sync(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema (all branches)."""
    command.upgrade(alembic_config(url), "heads")


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)


class Database:
    """Owns the engine; hands out sessions. ``async with Database(url)``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; on leaving, whatever it began is rolled back and its connection returned
        (see the module doc: even when cancelled)."""
        s = self.sessions()
        try:
            yield s
        finally:
            await run_to_end(s.close)

    @asynccontextmanager
    async def transaction(self, bind: AsyncConnection | None = None) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends normally, rolled back
        otherwise (cancellation included, and the rollback itself is not cancellable). With
        ``bind``, on a connection the caller holds (closing the session leaves it open)."""
        s = self.sessions() if bind is None else self.sessions(bind=bind)
        try:
            await s.begin()
            yield s
            await s.commit()
        except BaseException:
            await run_to_end(s.rollback)
            raise
        finally:
            await run_to_end(s.close)

    async def writable(self, timeout: float = WRITABLE_PROBE_S) -> str | None:
        """None when a write could start now; otherwise why not (for ``/readyz``).

        On SQLite this takes the write lock for an instant (``BEGIN IMMEDIATE`` on a
        connection of its own, so a full pool or a stuck pooled connection cannot hide
        the answer); on PostgreSQL it starts a read-write transaction.
        """
        try:
            if self.dialect == "sqlite":
                await asyncio.wait_for(asyncio.to_thread(_sqlite_take_write_lock, self.url, timeout),
                                       timeout + 1.0)
            else:
                async with asyncio.timeout(timeout), self.engine.connect() as conn:
                    await conn.execute(text("SET TRANSACTION READ WRITE"))
                    await conn.execute(text("SELECT 1"))
                    await conn.rollback()
        except TimeoutError:
            return f"no write lock within {timeout:g} s"
        except Exception as exc:  # any failure is the answer
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _sqlite_take_write_lock(url: str, timeout: float) -> None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    conn = sqlite3.connect(database, timeout=timeout, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        raise TimeoutError(str(exc)) from exc
    finally:
        conn.close()
