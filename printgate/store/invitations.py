"""Invitations of new users (token hashes only).

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.identity import InvitationRow


async def add_invitation(
    s: AsyncSession, *, invitation_id: str, token_hash: str, email: str, roles: list[str],
    dealer_id: str | None, customer_id: str | None, invited_by: str, created_at: datetime,
    expires_at: datetime,
) -> None:
    s.add(InvitationRow(
        id=invitation_id, token_hash=token_hash, email=email, roles=roles, dealer_id=dealer_id,
        customer_id=customer_id, invited_by=invited_by, created_at=created_at, expires_at=expires_at))
    await s.flush()


async def find_invitation(s: AsyncSession, token_hash: str) -> InvitationRow | None:
    return (await s.execute(
        select(InvitationRow).where(InvitationRow.token_hash == token_hash)
    )).scalar_one_or_none()


async def list_invitations(s: AsyncSession, *, dealer_id: str | None,
                           customer_id: str | None) -> list[InvitationRow]:
    q = select(InvitationRow).order_by(InvitationRow.created_at.desc())
    q = q.where(InvitationRow.dealer_id == dealer_id) if dealer_id else q.where(
        InvitationRow.customer_id == customer_id)
    return list((await s.execute(q)).scalars().all())
