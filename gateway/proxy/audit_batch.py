"""Group commit for the proxy's audit events.

Every proxied request is audited before its response goes out (fail closed),
but one database transaction per request caps the proxy at a few hundred
requests/s. Events that arrive while a write is in flight are written together
in the next one (``append_many`` when the sink has it).

``append`` waits until the event is stored; the proxy awaits it for every
request before the response goes out, so a request whose record cannot be
written is never served. ``submit`` queues an event without waiting. After a
failed write ``failing`` is true until a write succeeds or, with nothing to
write, the writer's own probe of the store (every ``reprobe_s``) answers: it
never stays latched after the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import text

from printgate.domain import AuditEventIn
from printgate.interfaces import AuditSink
from printgate.lifecycle import cancel_and_wait
from printgate.logs import get_logger

log = get_logger(__name__)

_Item = tuple[AuditEventIn, "asyncio.Future[None]"]
Probe = Callable[[], Awaitable[None]]
PROBE_TIMEOUT_S = 5.0


def database_probe(sink: object) -> Probe | None:
    """``SELECT 1`` on the sink's database (``AuditLog.db``), if it has one."""
    db = getattr(sink, "db", None)
    if db is None or not hasattr(db, "session"):
        return None

    async def probe() -> None:
        async with db.session() as s:
            await s.execute(text("SELECT 1"))

    return probe


class GroupCommitAudit:
    """An ``AuditSink`` that batches concurrent appends into one write of the inner sink."""

    def __init__(self, sink: AuditSink, *, max_batch: int = 256, probe: Probe | None = None,
                 reprobe_s: float = 1.0) -> None:
        self._sink = sink
        self._probe = probe if probe is not None else database_probe(sink)
        self._reprobe_s = reprobe_s
        self._failing_since = 0.0
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        many: Callable[[Sequence[AuditEventIn]], Awaitable[Any]] | None = getattr(sink, "append_many", None)
        self._append_many = many
        self._failing = False

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dwa-audit-group-commit")

    @property
    def failing(self) -> bool:
        return self._failing

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued event was written (or failed)."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._queue.join()

    def submit(self, event: AuditEventIn) -> None:
        """Queue without waiting (the writer stores it with the next batch)."""
        if self._task is None:
            raise RuntimeError("audit writer not started")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self._queue.put_nowait((event, fut))

    async def aclose(self) -> None:
        if self._task is not None:
            await self.flush()
            await cancel_and_wait(self._task)
            self._task = None
        while not self._queue.empty():  # nothing may wait forever
            _event, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(RuntimeError("audit writer stopped"))

    async def append(self, event: AuditEventIn) -> None:
        if self._task is None:  # not started: write through
            await self._sink.append(event)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, fut))
        await fut

    async def _run(self) -> None:
        while True:
            if self._failing and self._probe is not None:
                try:
                    first = await asyncio.wait_for(self._queue.get(), self._reprobe_s)
                except TimeoutError:
                    await self._reprobe()
                    continue
            else:
                first = await self._queue.get()
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write([event for event, _ in batch])
                self._recovered()
            except Exception as exc:  # every waiter learns its event was not stored
                if not self._failing:
                    self._failing_since = time.monotonic()
                self._failing = True
                log.error("dwa.audit_batch_failed", error=str(exc), size=len(batch))
                for _event, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _event, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _reprobe(self) -> None:
        assert self._probe is not None
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._probe()
        except Exception:  # still unreachable: try again after reprobe_s
            return
        self._recovered()

    def _recovered(self) -> None:
        if self._failing:
            log.warning("dwa.audit_recovered", outage_seconds=round(time.monotonic() - self._failing_since, 2))
        self._failing = False

    async def _write(self, events: list[AuditEventIn]) -> None:
        if self._append_many is not None:
            await self._append_many(events)
            return
        for event in events:
            await self._sink.append(event)


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved; the writer already logged the failure
