"""The lifecycle every long-lived component shares: ``start()``, ``aclose()``, ``async with``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Self


class Service:
    """Mixin: ``async with X(...) as x`` runs ``start()`` then ``aclose()``; subclasses define both."""

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task (if there is one) and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
