"""SSO: tenants' identity providers, the replay cache, logins in flight.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.identity import SsoPendingRow, SsoProviderRow, SsoReplayRow


async def add_sso_provider(s: AsyncSession, row: SsoProviderRow) -> None:
    s.add(row)
    await s.flush()


async def get_sso_provider(s: AsyncSession, provider_id: str) -> SsoProviderRow | None:
    return await s.get(SsoProviderRow, provider_id)


async def list_sso_providers(s: AsyncSession) -> list[SsoProviderRow]:
    return list((await s.execute(
        select(SsoProviderRow).where(SsoProviderRow.enabled.is_(True)).order_by(SsoProviderRow.name)
    )).scalars().all())


async def remember_once(s: AsyncSession, key: str, *, expires_at: datetime, now: datetime) -> bool:
    """Insert ``key`` into the replay cache; False if it is already there."""
    await s.execute(delete(SsoReplayRow).where(SsoReplayRow.expires_at < now))
    try:
        async with s.begin_nested():
            s.add(SsoReplayRow(id=key[:255], expires_at=expires_at))
    except IntegrityError:
        return False
    return True


async def add_sso_pending(s: AsyncSession, row: SsoPendingRow) -> None:
    s.add(row)
    await s.flush()


async def pop_sso_pending(s: AsyncSession, state: str) -> SsoPendingRow | None:
    row = await s.get(SsoPendingRow, state)
    if row is not None:
        await s.delete(row)
        await s.flush()
    return row
