"""Invitations of new users (token hashes only).

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain.invitations import InvitationRecord
from printgate.store.models.identity import InvitationRow


def _record(row: InvitationRow) -> InvitationRecord:
    return InvitationRecord(
        id=row.id, email=row.email, roles=tuple(row.roles or ()), dealer_id=row.dealer_id,
        customer_id=row.customer_id, invited_by=row.invited_by, created_at=row.created_at,
        expires_at=row.expires_at, accepted_at=row.accepted_at)


async def add_invitation(
    s: AsyncSession, *, invitation_id: str, token_hash: str, email: str, roles: list[str],
    dealer_id: str | None, customer_id: str | None, invited_by: str, created_at: datetime,
    expires_at: datetime,
) -> None:
    s.add(InvitationRow(
        id=invitation_id, token_hash=token_hash, email=email, roles=roles, dealer_id=dealer_id,
        customer_id=customer_id, invited_by=invited_by, created_at=created_at, expires_at=expires_at))
    await s.flush()


async def revoke_open_invitations(s: AsyncSession, email: str, now: datetime) -> list[str]:
    """End every unused, unexpired invitation of ``email`` (its link stops working at once):
    a new invitation replaces them. Returns the ids revoked."""
    rows = (await s.execute(select(InvitationRow).where(
        func.lower(InvitationRow.email) == email.strip().lower(), InvitationRow.accepted_at.is_(None),
        InvitationRow.expires_at > now))).scalars().all()
    for row in rows:
        row.expires_at = now
    await s.flush()
    return sorted(r.id for r in rows)


async def find_invitation(s: AsyncSession, token_hash: str) -> InvitationRecord | None:
    row = (await s.execute(
        select(InvitationRow).where(InvitationRow.token_hash == token_hash)
    )).scalar_one_or_none()
    return _record(row) if row is not None else None


async def mark_accepted(s: AsyncSession, invitation_id: str, at: datetime) -> None:
    """The invitation is used, with the request's transaction (unit of work, flushed at commit)."""
    row = await s.get(InvitationRow, invitation_id)
    if row is not None:
        row.accepted_at = at


async def list_invitations(s: AsyncSession, *, dealer_id: str | None,
                           customer_id: str | None) -> list[InvitationRecord]:
    q = select(InvitationRow).order_by(InvitationRow.created_at.desc())
    q = q.where(InvitationRow.dealer_id == dealer_id) if dealer_id else q.where(
        InvitationRow.customer_id == customer_id)
    return [_record(r) for r in (await s.execute(q)).scalars().all()]
