"""Browser sessions: opaque cookie token, server-side row (hash only), idle and
absolute timeouts, MFA time, logout everywhere."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import PortalSession
from printgate.store import portal_sessions
from printgate.token_digest import token_digest

COOKIE = "pg_session"
STAGE_PASSWORD = "password"  # password accepted, second factor pending
STAGE_FULL = "full"


token_hash = token_digest  # the core's one token digest


@dataclass(frozen=True, slots=True)
class Timeouts:
    idle: timedelta
    absolute: timedelta
    pending_mfa: timedelta = timedelta(minutes=5)


async def start(
    s: AsyncSession, *, user_id: str, stage: str, now: datetime, source_ip: str,
    auth_method: str = "password", mfa_method: str | None = None,
) -> tuple[str, PortalSession]:
    """Create a session; returns (cookie token, session). Never reuses a token."""
    token = secrets.token_urlsafe(32)
    session = await portal_sessions.create_portal_session(
        s, session_hash=token_hash(token), user_id=user_id, stage=stage, now=now,
        csrf_secret=secrets.token_hex(16), auth_method=auth_method, source_ip=source_ip, mfa_method=mfa_method,
    )
    return token, session


def expired(row: PortalSession, now: datetime, timeouts: Timeouts) -> str | None:
    """Why the session is no longer valid, or None."""
    if now - row.created_at > timeouts.absolute:
        return "absolute"
    if now - row.last_seen_at > timeouts.idle:
        return "idle"
    if row.stage == STAGE_PASSWORD and now - row.created_at > timeouts.pending_mfa:
        return "mfa_pending_too_long"
    return None


async def load(
    s: AsyncSession, token: str | None, now: datetime, timeouts: Timeouts
) -> PortalSession | None:
    if not token:
        return None
    row = await portal_sessions.get_portal_session(s, token_hash(token))
    if row is None:
        return None
    if expired(row, now, timeouts) is not None:
        await portal_sessions.delete_portal_session(s, row.id)
        return None
    return row
