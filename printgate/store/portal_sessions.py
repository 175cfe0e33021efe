"""Portal (browser) sessions (table ``portal_sessions``), returned as ``printgate.domain.PortalSession``.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import PortalSession, UserId
from printgate.errors import NotFound
from printgate.store.models.identity import PortalSessionRow


def portal_session_from_row(row: PortalSessionRow) -> PortalSession:
    return PortalSession(id=row.id, user_id=UserId(row.user_id), stage=row.stage, created_at=row.created_at,
                         last_seen_at=row.last_seen_at, csrf_secret=row.csrf_secret, auth_method=row.auth_method,
                         source_ip=row.source_ip, mfa_at=row.mfa_at, mfa_method=row.mfa_method)


async def create_portal_session(s: AsyncSession, *, session_hash: str, user_id: str, stage: str, now: datetime,
                                csrf_secret: str, auth_method: str, source_ip: str,
                                mfa_method: str | None) -> PortalSession:
    row = PortalSessionRow(id=session_hash, user_id=user_id, stage=stage, created_at=now, last_seen_at=now,
                           mfa_at=now if mfa_method else None, mfa_method=mfa_method, auth_method=auth_method,
                           source_ip=source_ip, csrf_secret=csrf_secret)
    s.add(row)
    await s.flush()
    return portal_session_from_row(row)


async def get_portal_session(s: AsyncSession, session_hash: str) -> PortalSession | None:
    row = await s.get(PortalSessionRow, session_hash)
    return portal_session_from_row(row) if row else None


async def touch_portal_session(s: AsyncSession, session_hash: str, now: datetime) -> None:
    """The session was used at ``now`` (its idle timeout restarts).

    Written when the request's transaction is flushed, not at once: on SQLite an
    early write would hold the database's write lock for the whole request.
    """
    row = await s.get(PortalSessionRow, session_hash)  # usually already loaded by get_portal_session
    if row is not None:
        row.last_seen_at = now


async def record_second_factor(s: AsyncSession, session_hash: str, *, at: datetime, method: str) -> PortalSession:
    """A second factor was shown in this session at ``at`` (a step-up)."""
    row = await s.get(PortalSessionRow, session_hash)
    if row is None:
        raise NotFound("this sign-in session ended; sign in again")
    row.mfa_at, row.mfa_method = at, method  # written with the request's transaction (see above)
    return portal_session_from_row(row)


async def delete_portal_session(s: AsyncSession, session_hash: str) -> None:
    await s.execute(delete(PortalSessionRow).where(PortalSessionRow.id == session_hash))


async def delete_user_portal_sessions(s: AsyncSession, user_id: str) -> int:
    result = await s.execute(delete(PortalSessionRow).where(PortalSessionRow.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]
