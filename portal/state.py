"""What every request handler needs, built once by ``create_app``."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from portal.auth.browser_sessions import Timeouts
from portal.auth.passwords import Lockout
from portal.notifications import Notifier
from printgate.domain import AuditEventIn, PortalSession, User
from printgate.interfaces import AgentCommands, AuditSink, SessionBroker
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.vault import CredentialVault

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Work that must wait until a request's database transaction has ended (see
# ``portal.deps``): audit events, and calls into the session broker (which
# writes to the store itself). SQLite has one writer; doing either inside the
# request transaction would wait on our own lock.
AfterCommit = AuditEventIn | Callable[[], Awaitable[object]]
PENDING_AUDIT: contextvars.ContextVar[list[AfterCommit] | None] = contextvars.ContextVar(
    "printgate_pending_audit", default=None
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AgentCaFacts:
    """The agent CA an agent must trust to enrol (``--ca-cert``): where the gateway keeps it,
    its SHA-256 fingerprint (as ``openssl x509 -fingerprint -sha256`` prints it) and its PEM."""

    path: str
    sha256: str
    pem: bytes


@dataclass
class PortalState:
    settings: PortalSettings
    db: Database
    broker: SessionBroker
    audit: AuditSink
    clock: Callable[[], datetime] = utc_now
    agent_ca: AgentCaFacts | None = None
    commands: AgentCommands | None = None  # signed commands to agents (the fleet's "rescan now")
    notifier: Notifier | None = None  # access requests and decisions (e-mail, webhook)
    vault: CredentialVault | None = None  # stored device credentials (issue 19), write-only
    lockout: Lockout = field(default_factory=Lockout)
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=TEMPLATES))

    @property
    def secret_key(self) -> str:
        return self.settings.secret_key.get_secret_value()

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(idle=timedelta(minutes=self.settings.session_idle_minutes),
                        absolute=timedelta(hours=self.settings.session_absolute_hours))

    async def record(self, type_: str, *, request: Request | None = None, user: User | None = None,
                     actor: str | None = None, **kw: Any) -> None:
        """Append an audit event with the user's tenant and the client address."""
        if user is not None:
            kw.setdefault("dealer_id", user.dealer_id)
            kw.setdefault("customer_id", user.customer_id)
        event = AuditEventIn(
            type=type_, actor=actor or (user.email if user else None),
            source_ip=client_ip(request) if request is not None else None, **kw,
        )
        pending = PENDING_AUDIT.get()
        if pending is not None:
            pending.append(event)  # a request transaction is open: append after it ends
            return
        await self.audit.append(event)

    async def after_commit(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run ``work`` once the request's transaction has ended (now, if none is open)."""
        pending = PENDING_AUDIT.get()
        if pending is not None:
            pending.append(work)
            return
        await work()

    async def flush_pending(self, pending: list[AfterCommit]) -> None:
        for item in pending:
            if isinstance(item, AuditEventIn):
                await self.audit.append(item)
            else:
                await item()
        pending.clear()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def portal_state(request: Request) -> PortalState:
    state: PortalState = request.app.state.portal
    return state


@dataclass(frozen=True, slots=True)
class Login:
    """The authenticated browser session of a request."""

    user: User
    session: PortalSession
    csrf_token: str

    def mfa_age_seconds(self, now: datetime) -> float | None:
        if self.session.mfa_at is None:
            return None
        return (now - self.session.mfa_at).total_seconds()
