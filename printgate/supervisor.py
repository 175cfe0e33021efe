"""Supervision of long-running tasks: restart with back-off, remember why, expose the state.

Every loop of the agent and the cloud runs under a ``Supervisor``: a loop that
raises is logged with its error (the traceback once per distinct error, then one
short line per restart with the count; a database outage always one short line), restarted after an exponential back-off
(reset once it ran well for a while), and its ``TaskHealth`` says so; a loop
that returns when it should not is restarted the same way. Nothing dies
silently. ``health()`` feeds ``agent status``, the heartbeat and the metrics.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from printgate import metrics
from printgate.lifecycle import Service
from printgate.logs import get_logger

log = get_logger("printgate.supervisor")

TaskState = Literal["starting", "running", "waiting", "degraded", "backoff", "stopped"]
OnRestart = Callable[[str, str], None]  # (task name, error) each time a task is restarted


@dataclass(frozen=True, slots=True)
class TaskHealth:
    """What a supervised task is doing and what went wrong with it last."""

    name: str
    state: TaskState
    restarts: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None

    waiting_for: str | None = None  # state "waiting": what it waits for (not an error: e.g. the cloud)

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "waiting")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state, "healthy": self.healthy, "restarts": self.restarts,
            "waiting_for": self.waiting_for, "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
        }


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays: ``initial`` doubling up to ``maximum``; back to ``initial`` after ``stable`` s of running."""

    initial: float = 1.0
    maximum: float = 30.0
    stable: float = 60.0

    def delay(self, failures_in_a_row: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** max(0, failures_in_a_row - 1)))


class _Supervised:
    def __init__(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.run = run
        self.health = TaskHealth(name, "starting")
        self.task: asyncio.Task[None] | None = None
        self.seen: dict[str, int] = {}  # error signature -> times (its traceback logged the first time)


class Supervisor(Service):
    """Owns named loops; ``add()`` before or after ``start()``; ``aclose()`` stops them all."""

    def __init__(self, name: str, *, backoff: Backoff = Backoff(), on_restart: OnRestart | None = None) -> None:
        self.name = name
        self._backoff = backoff
        self._on_restart = on_restart
        self._tasks: dict[str, _Supervised] = {}
        self._started = False

    def add(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Supervise ``run()`` (a coroutine function) under ``name``; started at once if running."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is already supervised")
        entry = _Supervised(name, run)
        self._tasks[name] = entry
        if self._started:
            entry.task = asyncio.create_task(self._supervise(entry), name=f"{self.name}:{name}")

    async def start(self) -> None:
        self._started = True
        for entry in self._tasks.values():
            if entry.task is None:
                entry.task = asyncio.create_task(self._supervise(entry), name=f"{self.name}:{entry.name}")

    async def aclose(self) -> None:
        self._started = False
        tasks = [e.task for e in self._tasks.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for entry in self._tasks.values():
            entry.task = None
            entry.health = _with(entry.health, state="stopped")

    async def remove(self, name: str) -> None:
        """Stop supervising ``name`` (its owner closes): the task is cancelled and leaves ``health()``."""
        entry = self._tasks.pop(name, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()
            await asyncio.gather(entry.task, return_exceptions=True)

    def health(self) -> list[TaskHealth]:
        return [e.health for e in self._tasks.values()]

    def degrade(self, name: str, error: str) -> None:
        """A running task ``name`` goes on but fails at its job (a write refused): shown as ``degraded``
        with ``error`` as its last error until ``recovered(name)``."""
        entry = self._tasks.get(name)
        if entry is not None and entry.health.state in ("running", "degraded"):
            if entry.health.state == "running" or entry.health.last_error != error[:500]:
                entry.health = TaskHealth(name, "degraded", entry.health.restarts, error[:500], datetime.now(UTC))

    def waiting(self, name: str, what: str) -> None:
        """A running task ``name`` waits for something outside it (the cloud restarting): shown as
        ``waiting`` with ``what``, healthy, no error, until ``recovered(name)``."""
        entry = self._tasks.get(name)
        if entry is not None and entry.health.state in ("running", "waiting"):
            h = entry.health
            entry.health = TaskHealth(name, "waiting", h.restarts, h.last_error, h.last_error_at, what[:500])

    def recovered(self, name: str) -> None:
        """Task ``name`` does its job again (its last error stays on record)."""
        entry = self._tasks.get(name)
        if entry is not None and entry.health.state in ("degraded", "waiting"):
            entry.health = _with(entry.health, state="running")

    @property
    def healthy(self) -> bool:
        return all(h.healthy for h in self.health())

    async def _supervise(self, entry: _Supervised) -> None:
        failures = 0
        while True:
            entry.health = _with(entry.health, state="running")
            began = time.monotonic()
            try:
                await entry.run()
                error = "ended unexpectedly"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the point of a supervisor: any failure is recorded and restarted
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                failures = 1 if time.monotonic() - began >= self._backoff.stable else failures + 1
                self._log_failure(entry, exc, error, self._backoff.delay(failures))
            else:
                failures = 1 if time.monotonic() - began >= self._backoff.stable else failures + 1
                log.error("task.ended", supervisor=self.name, task=entry.name,
                          in_seconds=self._backoff.delay(failures), restarts=entry.health.restarts + 1)
            delay = self._backoff.delay(failures)
            entry.health = TaskHealth(entry.name, "backoff", entry.health.restarts + 1, error[:500],
                                      datetime.now(UTC))
            metrics.TASK_RESTARTS.labels(self.name, entry.name).inc()
            if self._on_restart is not None:
                self._on_restart(entry.name, error)
            log.debug("task.restarting", supervisor=self.name, task=entry.name, in_seconds=delay,
                      restarts=entry.health.restarts)
            await asyncio.sleep(delay)

    def _log_failure(self, entry: _Supervised, exc: Exception, error: str, delay: float) -> None:
        """One line per restart; the traceback only the first time this error (type and place) is
        seen in this task; a database outage never gets one (it is not a bug, and a DB outage
        restarts every task that touches the database every few seconds)."""
        short = {"supervisor": self.name, "task": entry.name, "error": error[:300],
                 "restarts": entry.health.restarts + 1, "in_seconds": delay}
        if _database_outage(exc):
            log.error("task.failed", **short, database_outage=True)
            return
        key = _signature(exc)
        times = entry.seen.get(key, 0) + 1
        if times == 1 and len(entry.seen) >= MAX_DISTINCT_ERRORS:
            entry.seen.pop(next(iter(entry.seen)))
        entry.seen[key] = times
        if times == 1:
            log.error("task.failed", **short, exc_info=exc)
        else:
            log.error("task.failed", **short, times=times, traceback="logged at its first occurrence")


MAX_DISTINCT_ERRORS = 32  # per task: signatures remembered (the oldest forgotten first)
_DB_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite")


def _signature(exc: BaseException) -> str:
    """The type and the innermost place of an error: the same bug again, whatever its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__module__}.{type(exc).__qualname__}@{where}"


def _database_outage(exc: BaseException) -> bool:
    """The database is unreachable (not a bug): a driver's connection error, or an OS error or
    time-out raised from inside the database driver (asyncpg's refused connect is a bare OSError)."""
    if type(exc).__module__.startswith(_DB_MODULES):
        # loaded only where a database is used (the agent never needs it)
        from printgate.store.outage import is_database_outage

        return is_database_outage(exc)
    if isinstance(exc, OSError | TimeoutError):
        tb = exc.__traceback__
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DB_MODULES):
                return True
            tb = tb.tb_next
    return False


def _with(h: TaskHealth, *, state: TaskState) -> TaskHealth:
    return TaskHealth(h.name, state, h.restarts, h.last_error, h.last_error_at)
