"""Portal (browser) sessions, stored under the SHA-256 of their cookie token.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.identity import PortalSessionRow


async def add_portal_session(s: AsyncSession, row: PortalSessionRow) -> None:
    s.add(row)
    await s.flush()


async def get_portal_session(s: AsyncSession, session_hash: str) -> PortalSessionRow | None:
    return await s.get(PortalSessionRow, session_hash)


async def delete_portal_session(s: AsyncSession, session_hash: str) -> None:
    await s.execute(delete(PortalSessionRow).where(PortalSessionRow.id == session_hash))


async def delete_user_portal_sessions(s: AsyncSession, user_id: str) -> int:
    result = await s.execute(delete(PortalSessionRow).where(PortalSessionRow.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]
