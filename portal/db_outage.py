"""The portal while its database is unreachable: a clear 503, one log event per outage, recovery by itself.

``DatabaseOutage`` learns of an outage from the first request that fails with a
connection-level database error (``printgate.store.outage.is_database_outage``, shared with the gateway's channel); it logs
``portal.database_unreachable`` once (no traceback per request), answers every
request with 503 (JSON under ``/api``) without touching the database, and probes
it at most every ``probe_every_s``; the first probe that answers ends the outage
(``portal.database_recovered`` with its duration). Nothing needs a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text

from portal.errors import DATABASE_UNAVAILABLE
from printgate import metrics
from printgate.logs import get_logger
from printgate.store.db import Database
from printgate.store.outage import is_database_outage as is_database_outage  # the one definition

log = get_logger("portal.db_outage")

RETRY_AFTER_S = 5
MESSAGE = "The printgate database cannot be reached right now. Nothing was changed; try again in a few seconds."
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · printgate</title>
<link rel="stylesheet" href="/static/portal.css"></head><body><main>
<h1>Temporarily unavailable</h1><p>{message}</p><p class="muted">If this lasts, tell your printgate administrator
(the portal's log says <code>portal.database_unreachable</code>).</p></main></body></html>"""


class DatabaseOutage:
    def __init__(self, db: Database, *, probe_timeout_s: float = 2.0, probe_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._probe_timeout = probe_timeout_s
        self._probe_every = probe_every_s
        self._clock = clock
        self.down_since: float | None = None
        self._last_probe = 0.0
        self._failed_requests = 0
        self._probe_lock = asyncio.Lock()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    async def reachable(self, *, since: float | None = None) -> bool:
        """``SELECT 1`` within the probe timeout; updates the outage state (``since``: see ``failed``)."""
        try:
            async with asyncio.timeout(self._probe_timeout), self._db.session() as s:
                await s.execute(text("SELECT 1"))
        except Exception as exc:  # any failure of the probe means: not reachable
            self.failed(exc, since=since)
            return False
        self._recovered()
        return True

    async def admits(self) -> bool:
        """During an outage: probe (at most every ``probe_every_s``) and say whether to go ahead."""
        if not self.down:
            return True
        async with self._probe_lock:
            if not self.down:
                return True
            if self._clock() - self._last_probe < self._probe_every:
                self._failed_requests += 1
                return False
            self._last_probe = self._clock()
            return await self.reachable()

    def now(self) -> float:
        """This outage clock's time (a request notes it when it starts, for ``failed(since=...)``)."""
        return self._clock()

    def failed(self, exc: BaseException, *, since: float | None = None) -> None:
        """Note a connection-level failure; ``since``: when the failed request started waiting on the
        database (a hung server fails a request only after the statement timeout, and the outage began
        when the request started, not when it gave up)."""
        self._failed_requests += 1
        metrics.DATABASE_ERRORS.labels("portal").inc()
        if self.down_since is None:
            self.down_since = self._clock() if since is None else min(since, self._clock())
            self._last_probe = self._clock()
            log.error("portal.database_unreachable", error=f"{type(exc).__name__}: {exc}"[:500])

    def _recovered(self) -> None:
        if self.down_since is None:
            return
        log.warning("portal.database_recovered", outage_seconds=round(self._clock() - self.down_since, 2),
                    requests_refused=self._failed_requests)
        self.down_since = None
        self._failed_requests = 0

    def response(self, request: Request) -> Response:
        headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
        if request.url.path.startswith("/api") or "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": DATABASE_UNAVAILABLE, "detail": MESSAGE}, status_code=503,
                                headers=headers)
        return HTMLResponse(PAGE.format(message=MESSAGE), status_code=503, headers=headers)
