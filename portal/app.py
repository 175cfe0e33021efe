"""The portal application: ``create_app(settings, db=..., broker=..., audit=...)``.

Nothing starts at import; the caller serves the returned app (uvicorn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from portal import api_docs, error_pages
from portal.db_outage import DatabaseOutage, is_database_outage
from portal.deps import LoginRequired, OptionalLogin
from portal.notifications import Notifier
from portal.pages import landing_page, see_other
from portal.routers import (
    agents,
    api,
    api_tokens,
    approvals,
    device_credentials,
    devices,
    dwa_sessions,
    fleet,
    health,
    integrations,
    login,
    mfa,
    policy_rules,
    security_alerts,
    sso,
    tenants,
    users,
)
from portal.routers import audit as audit_routes
from portal.state import STATIC, AgentCaFacts, PortalState, utc_now
from printgate.interfaces import AgentCommands, AuditSink, SessionBroker
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.vault import CredentialVault


def create_app(
    settings: PortalSettings,
    *,
    db: Database,
    broker: SessionBroker,
    audit: AuditSink,
    extra_routers: Sequence[APIRouter] = (),
    clock: Callable[[], datetime] = utc_now,
    agent_ca: AgentCaFacts | None = None,
    commands: AgentCommands | None = None,
    vault: CredentialVault | None = None,
) -> FastAPI:
    app = FastAPI(title="printgate portal", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.portal = PortalState(settings=settings, db=db, broker=broker, audit=audit, clock=clock,
                                   agent_ca=agent_ca, commands=commands, notifier=Notifier(settings.notify),
                                   vault=vault)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    api_docs.install(app)  # /api/docs: Swagger UI from local files
    error_pages.install(app)  # 4xx/5xx as pages saying what to do (JSON for API clients)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        return see_other(f"/login?next={exc.next_url}")

    outage = DatabaseOutage(db)
    app.state.database_outage = outage
    unguarded = ("/healthz", "/readyz", "/metrics", "/static/", "/favicon.ico")

    @app.middleware("http")
    async def _database_outage(request: Request, call_next: Callable) -> Response:
        """503 while the database is unreachable (no traceback per request); recovers by itself.
        Registered first, so the security headers wrap its answers too."""
        if request.url.path.startswith(unguarded):
            return await call_next(request)
        if not await outage.admits():
            return outage.response(request)
        started = outage.now()
        try:
            return await call_next(request)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            if isinstance(exc, TimeoutError):  # the database did not answer in time: no probe to wait out too
                outage.failed(exc, since=started)
            elif await outage.reachable(since=started):
                raise
            return outage.response(request)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next: Callable) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self' http: https:; "
            "frame-ancestors 'none'",
        )
        if request.url.path != "/static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    favicon = (STATIC / "favicon.svg").read_bytes()

    @app.get("/favicon.ico", include_in_schema=False)
    async def _favicon() -> Response:
        """For clients that ask without reading the pages' <link rel="icon"> (browsers' own requests, bookmarks)."""
        return Response(favicon, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/", include_in_schema=False)
    async def _home(signed_in: OptionalLogin) -> Response:
        return see_other(landing_page(signed_in.user if signed_in else None))

    for router in (health.router, login.router, mfa.router, devices.router, dwa_sessions.router, approvals.router,
                   approvals.api, sso.router, users.router, tenants.router, policy_rules.router, api_tokens.router,
                   agents.router, api.router, fleet.router, audit_routes.router, device_credentials.router,
                   integrations.router, security_alerts.router,
                   *extra_routers):
        app.include_router(router)
    return app
