"""A proxy with a small session budget and technicians' sessions to a hostile device: what the
budget attack tests (test_r4_budget_*) share."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from gateway.proxy.addons.transfer_budget import TransferBudget
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.routes import RouteTable, SessionRoute
from gateway.proxy.server import DwaProxy
from printgate.testing.audit import ReadableAuditLog
from tests.proxy.conftest import DWA_DOMAIN, PORTAL_URL, ProxyHarness, SessionClient
from tests.proxy.hostile_device import HostileDevice


@asynccontextmanager
async def budget_proxy(audit: ReadableAuditLog, session_budget: int) -> AsyncIterator[ProxyHarness]:
    """A real proxy whose session budget is ``session_budget`` bytes (attacks run out of it fast)."""
    routes = RouteTable()

    async def noop(*_a: object) -> None:
        return None

    proxy = DwaProxy("127.0.0.1", 0, dwa_domain=DWA_DOMAIN, routes=routes, audit=audit,
                     on_end_request=noop, on_session_timeout=noop, on_extend_request=noop,
                     limits=ProxyLimits(sweep_interval_s=0.2, session_budget=session_budget),
                     portal_url=PORTAL_URL)
    async with proxy:
        yield ProxyHarness(proxy, routes, audit, [], [])


def budget_of(h: ProxyHarness) -> TransferBudget:
    """The proxy's budget addon (inside the pipeline)."""
    pipeline = h.proxy._master.addons.get("printgate-pipeline")  # type: ignore[union-attr]
    return next(a.inner for a in pipeline.addons_in_order if isinstance(getattr(a, "inner", None), TransferBudget))


async def technician(h: ProxyHarness, device: HostileDevice, tenant: str) -> SessionClient:
    """A launched session of a new technician to ``device``, attributed to dealer-/cust-/site-``tenant``."""
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(
        session_id=sid, host=h.proxy.session_host(sid), upstream_host=device.host, upstream_port=device.port,
        device_origin=device.origin, device_scheme="http", pinned_fingerprint=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=30), idle_timeout_s=600, device_label="Hostile",
        customer_name="ACME", user_id=f"user-{sid}", device_id=f"dev-{sid}", dealer_id=f"dealer-{tenant}",
        customer_id=f"cust-{tenant}", site_id=f"site-{tenant}",
    )
    h.routes.add(route)
    client = SessionClient(h, route)
    await client.launch()
    return client
