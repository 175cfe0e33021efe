"""What a load balancer asks: ``/healthz`` (the process answers) and ``/readyz`` (it can serve);
what Prometheus scrapes: ``/metrics``.

``/readyz`` is 200 only when the database answers, a write could start (on
SQLite: the write lock can be taken -- a transaction stuck holding it makes every
writer fail), and the audit trail can be written (its table answers and the audit
writer is not failing); otherwise 503 with the failing check named. Neither needs a sign-in or touches a session.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text

from portal.state import PortalState
from printgate import metrics

router = APIRouter(include_in_schema=False)
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# a loopback peer carrying any of these is a reverse proxy (nginx, a CDN, a load balancer) relaying
# someone else: without a token, that client is refused whatever the header says
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-client-ip", "true-client-ip",
                      "cf-connecting-ip", "fastly-client-ip", "x-cluster-client-ip", "x-forwarded-host",
                      "x-original-forwarded-for", "via")


def _metrics_refusal(request: Request) -> tuple[int, str] | None:
    """Why this scrape is not answered (status, text), or None. With ``[portal] metrics_token``
    only its bearer token opens /metrics; without, only a direct loopback client does."""
    token = request.app.state.portal.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                               token.get_secret_value().encode()):
            return None
        return 401, "metrics need `Authorization: Bearer <[portal] metrics_token>`\n"
    host = request.client.host if request.client else ""
    try:
        local = any(ipaddress.ip_address(host) in net for net in LOOPBACK)
    except ValueError:
        local = False
    if local and not any(h in request.headers for h in FORWARDING_HEADERS):
        return None
    return 403, ("metrics are served to loopback clients only: set [portal] metrics_token and scrape with "
                 "`Authorization: Bearer <token>` (docs/operations.md)\n")


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format: sessions, tunnels, proxy, readings, audit, database, task restarts."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        status, text = refusal
        headers = {"Cache-Control": "no-store"} | ({"WWW-Authenticate": "Bearer"} if status == 401 else {})
        return PlainTextResponse(text, status_code=status, headers=headers)
    body, content_type = metrics.exposition(metrics.CLOUD)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state: PortalState = request.app.state.portal
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), state.db.session() as s:
            await s.execute(text("SELECT 1"))
            checks["database"] = "ok"
            await s.execute(text("SELECT count(*) FROM audit_head"))
        checks["database_writable"] = await state.db.writable(timeout=CHECK_TIMEOUT_S) or "ok"
    except Exception as exc:  # any failure: not ready, say which
        problem = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        checks.setdefault("database", problem)
        checks["audit"] = "not writable: database unavailable" if checks["database"] != "ok" else problem
    else:
        proxy_failing = getattr(request.app.state, "audit_failing", None)
        failing = bool(getattr(state.audit, "failing", False)) or bool(proxy_failing and proxy_failing())
        checks["audit"] = "not writable: the audit writer's last write failed" if failing else "ok"
        draining = getattr(request.app.state, "draining", None)  # a gateway node stopping (docs/scale-out.md)
        if draining is not None and draining():
            checks["node"] = "draining: this node is stopping for maintenance and opens no new sessions"
    ready = all(v == "ok" for v in checks.values())
    task_health = getattr(request.app.state, "task_health", None)  # the cloud's supervised loops (information)
    tasks = {t.name: t.to_dict() for t in task_health()} if task_health is not None else {}
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks, "tasks": tasks},
                        status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})
