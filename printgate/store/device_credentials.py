"""Persistence of the credential vault: wrapped data keys, sealed credential versions, the
customers' refusals. Secrets never reach this module in clear: callers pass sealed bytes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain.credentials import CredentialScope, LoginKind, RevealRequest, StoredCredential
from printgate.store.models.vault import (
    CredentialRevealRow,
    CredentialUseSettingRow,
    DeviceCredentialRow,
    VaultDataKeyRow,
)


async def wrapped_data_key(s: AsyncSession, customer_id: str) -> tuple[str, bytes] | None:
    row = await s.get(VaultDataKeyRow, customer_id)
    return (row.kms_key_id, row.wrapped_key) if row else None


async def add_wrapped_data_key(s: AsyncSession, customer_id: str, kms_key_id: str, wrapped: bytes,
                               now: datetime) -> None:
    s.add(VaultDataKeyRow(customer_id=customer_id, kms_key_id=kms_key_id, wrapped_key=wrapped, created_at=now))
    await s.flush()


async def next_version(s: AsyncSession, customer_id: str, scope: CredentialScope, target: str) -> int:
    found = await s.scalar(select(func.max(DeviceCredentialRow.version)).where(
        DeviceCredentialRow.customer_id == customer_id, DeviceCredentialRow.scope == scope.value,
        DeviceCredentialRow.target == target))
    return int(found or 0) + 1


async def add_credential_version(
    s: AsyncSession, *, customer_id: str, scope: CredentialScope, target: str, version: int,
    kind: LoginKind, account: str, profile: str, sealed: bytes, now: datetime, by: str | None,
) -> None:
    s.add(DeviceCredentialRow(
        customer_id=customer_id, scope=scope.value, target=target, version=version, kind=kind.value,
        account=account, profile=profile, sealed=sealed, created_at=now, created_by=by,
    ))
    await s.flush()


async def erase_credential(s: AsyncSession, customer_id: str, scope: CredentialScope, target: str,
                           now: datetime) -> int:
    """Drop the sealed bytes of every version; the number of versions erased."""
    result = await s.execute(
        update(DeviceCredentialRow)
        .where(DeviceCredentialRow.customer_id == customer_id, DeviceCredentialRow.scope == scope.value,
               DeviceCredentialRow.target == target, DeviceCredentialRow.sealed.is_not(None))
        .values(sealed=None, erased_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _stored(row: DeviceCredentialRow) -> StoredCredential:
    return StoredCredential(
        customer_id=row.customer_id, scope=CredentialScope(row.scope), target=row.target,
        kind=LoginKind(row.kind), account=row.account, profile=row.profile, version=row.version,
        updated_at=row.created_at, updated_by=row.created_by,
    )


async def current_sealed(
    s: AsyncSession, customer_id: str, scope: CredentialScope, target: str,
) -> tuple[StoredCredential, bytes] | None:
    """The newest version of one scope, when it is not erased."""
    row = await s.scalar(
        select(DeviceCredentialRow)
        .where(DeviceCredentialRow.customer_id == customer_id, DeviceCredentialRow.scope == scope.value,
               DeviceCredentialRow.target == target)
        .order_by(DeviceCredentialRow.version.desc()).limit(1)
    )
    if row is None or row.sealed is None:
        return None
    return _stored(row), row.sealed


async def list_current(s: AsyncSession, customer_id: str) -> list[StoredCredential]:
    """The newest, not erased version of every scope of a customer (no secrets)."""
    latest = (
        select(DeviceCredentialRow.scope, DeviceCredentialRow.target,
               func.max(DeviceCredentialRow.version).label("v"))
        .where(DeviceCredentialRow.customer_id == customer_id)
        .group_by(DeviceCredentialRow.scope, DeviceCredentialRow.target).subquery()
    )
    rows = await s.scalars(
        select(DeviceCredentialRow).join(latest, (DeviceCredentialRow.scope == latest.c.scope)
                                         & (DeviceCredentialRow.target == latest.c.target)
                                         & (DeviceCredentialRow.version == latest.c.v))
        .where(DeviceCredentialRow.customer_id == customer_id, DeviceCredentialRow.sealed.is_not(None))
        .order_by(DeviceCredentialRow.scope, DeviceCredentialRow.target)
    )
    return [_stored(r) for r in rows]


async def credentials_forbidden(s: AsyncSession, customer_id: str) -> bool:
    row = await s.get(CredentialUseSettingRow, customer_id)
    return bool(row and row.forbidden)


async def set_credentials_forbidden(s: AsyncSession, customer_id: str, forbidden: bool, now: datetime,
                                    by: str | None) -> None:
    row = await s.get(CredentialUseSettingRow, customer_id)
    if row is None:
        s.add(CredentialUseSettingRow(customer_id=customer_id, forbidden=forbidden, changed_at=now, changed_by=by))
    else:
        row.forbidden, row.changed_at, row.changed_by = forbidden, now, by
    await s.flush()


async def resolved(s: AsyncSession, customer_id: str, device_id: str, model: str | None) -> StoredCredential | None:
    """Which stored credential a device would be signed in with (device, then model, then customer),
    without its secret."""
    candidates = [(CredentialScope.DEVICE, device_id)]
    if model:
        candidates.append((CredentialScope.MODEL, model.strip().lower()))
    candidates.append((CredentialScope.CUSTOMER, ""))
    for scope, target in candidates:
        found = await current_sealed(s, customer_id, scope, target)
        if found is not None:
            return found[0]
    return None


async def add_reveal(s: AsyncSession, *, reveal_id: str, approval_id: str, user_id: str, device_id: str,
                     customer_id: str, now: datetime) -> None:
    s.add(CredentialRevealRow(id=reveal_id, approval_id=approval_id, user_id=user_id, device_id=device_id,
                              customer_id=customer_id, requested_at=now))
    await s.flush()


async def get_reveal(s: AsyncSession, reveal_id: str) -> RevealRequest | None:
    row = await s.get(CredentialRevealRow, reveal_id)
    if row is None:
        return None
    return RevealRequest(id=row.id, approval_id=row.approval_id, user_id=row.user_id, device_id=row.device_id,
                         customer_id=row.customer_id, requested_at=row.requested_at, revealed_at=row.revealed_at)


async def mark_revealed(s: AsyncSession, reveal_id: str, now: datetime) -> bool:
    """Claim the one reveal of a request; False when it was used already."""
    result = await s.execute(
        update(CredentialRevealRow)
        .where(CredentialRevealRow.id == reveal_id, CredentialRevealRow.revealed_at.is_(None))
        .values(revealed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
