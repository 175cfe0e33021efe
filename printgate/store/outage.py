"""Telling a database outage from a bug, and logging an outage once (with its duration at the end).

Used by the services that keep running while the database is away (the agent channel): the first
failure logs ``<prefix>.database_unreachable``, the rest of the outage is silent, and the first success
logs ``<prefix>.database_recovered`` with how long it lasted and how many calls were refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import exc as sa_exc

from printgate.logs import get_logger

log = get_logger("printgate.store.outage")


def is_database_outage(exc: BaseException) -> bool:
    """A failure to reach the database (not a bug in a query)."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    if isinstance(exc, sa_exc.TimeoutError | ConnectionError | TimeoutError | OSError):
        return True
    name = type(exc).__name__
    return type(exc).__module__.startswith("asyncpg") and ("Connection" in name or name in (
        "CannotConnectNowError", "InterfaceError"))


class OutageLog:
    def __init__(self, prefix: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = prefix
        self._clock = clock
        self.down_since: float | None = None
        self._refused = 0

    def failed(self, exc: BaseException) -> None:
        self._refused += 1
        if self.down_since is None:
            self.down_since = self._clock()
            log.error(f"{self._prefix}.database_unreachable", error=f"{type(exc).__name__}: {exc}"[:500])

    def recovered(self) -> None:
        if self.down_since is None:
            return
        log.warning(f"{self._prefix}.database_recovered", outage_seconds=round(self._clock() - self.down_since, 2),
                    failures=self._refused)
        self.down_since = None
        self._refused = 0
