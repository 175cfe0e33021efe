"""Proxy fixtures: the lab EWS printers, one DwaProxy, the real audit log, headless Chromium.

Expensive servers start once per test run. Sessions are cheap: each test opens
its own route on the shared proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable, SessionRoute
from gateway.proxy.server import DwaProxy
from lab.ews import EwsLab, EwsServer
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.database import migrated, sqlite_url

PORTAL_URL = "http://portal.test:8400"  # where our own pages link back to (never fetched)
DWA_DOMAIN = "dwa.localhost"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


@pytest.fixture(scope="session")
async def ews_lab() -> AsyncIterator[EwsLab]:
    async with EwsLab() as lab:
        yield lab


@pytest.fixture(scope="session")
async def audit_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ReadableAuditLog]:
    """The proxy's audit sink: the real chained ``AuditLog`` on its own SQLite file."""
    async with migrated(sqlite_url(tmp_path_factory.mktemp("proxy-audit") / "audit.db")) as db:
        yield ReadableAuditLog(db, None)


@dataclass
class ProxyHarness:
    proxy: DwaProxy
    routes: RouteTable
    audit: ReadableAuditLog
    end_requests: list[str]
    timeouts: list[tuple[str, str]]

    def open_session(
        self,
        ews: EwsServer,
        *,
        minutes: float = 30,
        idle_s: int = 600,
        pinned: str | None = None,
        upstream: tuple[str, int] | None = None,
        device_origin: str | None = None,
        device_scheme: str | None = None,
    ) -> SessionRoute:
        sid = uuid.uuid4().hex[:12]
        host, port = upstream or (ews.host, ews.port)
        route = SessionRoute(
            session_id=sid,
            host=self.proxy.session_host(sid),
            upstream_host=host,
            upstream_port=port,
            device_origin=device_origin or ews.origin,
            device_scheme=device_scheme or ews.scheme,
            pinned_fingerprint=pinned if pinned is not None else ews.cert_fingerprint,
            expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
            idle_timeout_s=idle_s,
            device_label=ews.state.device_name,
            customer_name="ACME Print Customer",
        )
        self.routes.add(route)
        return route

    def launch_url(self, route: SessionRoute) -> str:
        return self.proxy.launch_url(route.session_id, self.routes.issue_launch_token(route.session_id))

    async def events(self, session_id: str) -> list[Any]:
        await self.proxy.flush_audit()
        return await self.audit.events(session_id=session_id)


@pytest.fixture(scope="session")
async def harness(audit_db: ReadableAuditLog) -> AsyncIterator[ProxyHarness]:
    routes = RouteTable()
    ends: list[str] = []
    timeouts: list[tuple[str, str]] = []

    async def on_end(session_id: str) -> None:
        ends.append(session_id)

    async def on_timeout(session_id: str, reason: str) -> None:
        timeouts.append((session_id, reason))

    extended: set[str] = set()

    async def on_extend(session_id: str) -> datetime | None:
        """Test policy: one extension of 10 minutes per session."""
        if session_id in extended:
            return None
        extended.add(session_id)
        return datetime.now(UTC) + timedelta(minutes=10)

    proxy = DwaProxy(
        "127.0.0.1", 0, dwa_domain=DWA_DOMAIN, routes=routes, audit=audit_db,
        on_end_request=on_end, on_session_timeout=on_timeout, on_extend_request=on_extend,
        limits=ProxyLimits(sweep_interval_s=0.2), portal_url=PORTAL_URL,
    )
    async with proxy:
        yield ProxyHarness(proxy, routes, audit_db, ends, timeouts)


class SessionClient:
    """An HTTP client that talks to one session host through the proxy (Python does not resolve *.localhost)."""

    def __init__(self, harness: ProxyHarness, route: SessionRoute) -> None:
        self.route = route
        self.netloc = harness.proxy.deps.public.netloc(route.host)
        self.origin = harness.proxy.session_origin(route.session_id)
        self.cookie: str | None = None
        self._harness = harness
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{harness.proxy.port}", timeout=15.0,
            headers={"host": self.netloc},
        )

    async def launch(self) -> None:
        token = self._harness.routes.issue_launch_token(self.route.session_id)
        r = await self.http.get("/__printgate/launch", params={"token": token})
        assert r.status_code == 200, r.text
        self.cookie = r.headers["set-cookie"].split(";", 1)[0]

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if self.cookie:
            headers["cookie"] = "; ".join(filter(None, [self.cookie, headers.get("cookie")]))
        return await self.http.request(method, path, headers=headers, **kw)

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def session_client(
    harness: ProxyHarness,
) -> AsyncIterator[Callable[[EwsServer], Awaitable[SessionClient]]]:
    clients: list[SessionClient] = []

    async def make(ews: EwsServer, **kw: Any) -> SessionClient:
        client = SessionClient(harness, harness.open_session(ews, **kw))
        await client.launch()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context()
    pg = await context.new_page()
    yield pg
    await context.close()


async def launch(page: Any, harness: ProxyHarness, route: SessionRoute) -> str:
    """Open the session in ``page`` with its launch link; the session's origin."""
    await page.goto(harness.launch_url(route))
    await page.wait_for_url(re.compile(r".*/$"))
    return harness.proxy.session_origin(route.session_id)


async def exchange(port: int, data: bytes, *, wait_s: float = 3.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the proxy answered until it closed (or ``wait_s``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    got = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(wait_s):
            while chunk := await reader.read(65536):
                got += chunk
    writer.close()
    return got


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
