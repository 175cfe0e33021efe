"""SSO: tenants' identity providers, the replay cache, logins in flight.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain.sso import SsoPending, SsoProvider
from printgate.store.models.identity import SsoPendingRow, SsoProviderRow, SsoReplayRow


def _provider(row: SsoProviderRow) -> SsoProvider:
    return SsoProvider(
        id=row.id, kind=row.kind, name=row.name, dealer_id=row.dealer_id, customer_id=row.customer_id,
        config=dict(row.config or {}), role_map=dict(row.role_map or {}),
        default_roles=tuple(row.default_roles or ()), mfa_asserted=bool(row.mfa_asserted),
        enabled=bool(row.enabled),
    )


async def add_sso_provider(s: AsyncSession, provider: SsoProvider) -> None:
    s.add(SsoProviderRow(
        id=provider.id, kind=provider.kind, name=provider.name, dealer_id=provider.dealer_id,
        customer_id=provider.customer_id, config=dict(provider.config), role_map=dict(provider.role_map),
        default_roles=list(provider.default_roles), mfa_asserted=provider.mfa_asserted,
        enabled=provider.enabled,
    ))
    await s.flush()


async def get_sso_provider(s: AsyncSession, provider_id: str) -> SsoProvider | None:
    row = await s.get(SsoProviderRow, provider_id)
    return _provider(row) if row is not None else None


async def list_sso_providers(s: AsyncSession) -> list[SsoProvider]:
    return [_provider(r) for r in (await s.execute(
        select(SsoProviderRow).where(SsoProviderRow.enabled.is_(True)).order_by(SsoProviderRow.name)
    )).scalars().all()]


async def remember_once(s: AsyncSession, key: str, *, expires_at: datetime, now: datetime) -> bool:
    """Insert ``key`` into the replay cache; False if it is already there."""
    await s.execute(delete(SsoReplayRow).where(SsoReplayRow.expires_at < now))
    try:
        async with s.begin_nested():
            s.add(SsoReplayRow(id=key[:255], expires_at=expires_at))
    except IntegrityError:
        return False
    return True


async def add_sso_pending(s: AsyncSession, pending: SsoPending) -> None:
    s.add(SsoPendingRow(state=pending.state, provider_id=pending.provider_id, nonce=pending.nonce,
                        code_verifier=pending.code_verifier, created_at=pending.created_at))
    await s.flush()


async def pop_sso_pending(s: AsyncSession, state: str) -> SsoPending | None:
    """The sign-in in flight under ``state``, removed (one use); None if there is none."""
    row = await s.get(SsoPendingRow, state)
    if row is None:
        return None
    pending = SsoPending(state=row.state, provider_id=row.provider_id, created_at=row.created_at,
                         nonce=row.nonce, code_verifier=row.code_verifier)
    await s.delete(row)
    await s.flush()
    return pending
