"""Run a call's work as a task of its own, which the client cancelling the call does not cut.

When a gRPC client cancels a call (or dies), grpc.aio cancels the handler's task. A
cancellation landing inside a database statement leaves SQLAlchemy's aiosqlite
connection half-closed and, on SQLite, a transaction holding the one write lock for
ever (issue 12 follow-up). So the channel's handlers do their work in a detached task:
the cancelled call returns at once, the work runs to its end (bounded by the store's
own timeouts), commits or rolls back normally, and its outcome is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from printgate.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class DetachedWork:
    """``await detached.run(coro)``; ``await detached.drain(timeout)`` on shutdown."""

    def __init__(self) -> None:
        self._orphans: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> int:
        """Work whose call was cancelled and which is still finishing."""
        return len(self._orphans)

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self._orphans.add(task)
                task.add_done_callback(self._finished)
            raise

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._orphans.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the caller is gone: nobody to tell
            log.debug("channel.detached.failed", error=type(task.exception()).__name__)

    async def drain(self, timeout: float) -> None:
        """Let cancelled calls' work finish (up to ``timeout``), then cancel what is left."""
        if not self._orphans:
            return
        _, pending = await asyncio.wait(set(self._orphans), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
