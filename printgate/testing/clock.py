"""A stopped clock for tests of code that takes ``clock: Callable[[], datetime]``.

``printgate.testing.portal.Clock`` follows the wall clock with an offset (the portal's
sessions); this one stands still until moved, for rules with windows and back-offs
(webhook retries, alert de-duplication) that a test steps through exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FrozenClock:
    """``clock()`` is ``clock.now`` (UTC, the moment it was made); ``advance(seconds=...)`` or set ``now``."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)
