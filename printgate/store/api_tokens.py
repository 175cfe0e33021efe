"""API tokens (table ``api_tokens``), returned as ``printgate.domain.ApiToken``.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import ApiToken, UserId
from printgate.store.models.identity import ApiTokenRow


def api_token_from_row(row: ApiTokenRow) -> ApiToken:
    return ApiToken(id=row.id, user_id=UserId(row.user_id), name=row.name, scopes=tuple(row.scopes),
                    created_at=row.created_at, expires_at=row.expires_at, revoked_at=row.revoked_at,
                    last_used_at=row.last_used_at)


async def create_api_token(s: AsyncSession, *, token_id: str, user_id: str, name: str, token_hash: str,
                           scopes: Sequence[str], now: datetime, expires_at: datetime | None) -> ApiToken:
    row = ApiTokenRow(id=token_id, user_id=user_id, name=name, token_hash=token_hash, scopes=list(scopes),
                      created_at=now, expires_at=expires_at)
    s.add(row)
    await s.flush()
    return api_token_from_row(row)


async def add_api_token(s: AsyncSession, row: ApiTokenRow) -> None:
    """Transitional (tests written against the row API); use ``create_api_token``."""
    s.add(row)
    await s.flush()


async def find_api_token(s: AsyncSession, token_hash: str) -> ApiToken | None:
    row = (await s.execute(
        select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)
    )).scalar_one_or_none()
    return api_token_from_row(row) if row else None


async def list_api_tokens(s: AsyncSession, user_id: str) -> list[ApiToken]:
    return [api_token_from_row(r) for r in (await s.execute(
        select(ApiTokenRow).where(ApiTokenRow.user_id == user_id).order_by(ApiTokenRow.created_at)
    )).scalars().all()]


async def revoke_api_token(s: AsyncSession, token_id: str, *, user_id: str, now: datetime) -> bool:
    """Revoke one of ``user_id``'s tokens; False if it has no such token (written with the request's
    transaction, as ``mark_api_token_used``)."""
    row = await s.get(ApiTokenRow, token_id)
    if row is None or row.user_id != user_id:
        return False
    row.revoked_at = now
    return True


async def mark_api_token_used(s: AsyncSession, token_id: str, now: datetime) -> None:
    """Written when the request's transaction is flushed, not at once: on SQLite an early write
    would hold the database's write lock for the whole request."""
    row = await s.get(ApiTokenRow, token_id)
    if row is not None:
        row.last_used_at = now
