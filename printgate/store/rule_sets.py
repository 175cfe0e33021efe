"""Dealers' policy rule sets: every version kept, the newest is current.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.identity import PolicyRuleSetRow


async def load_ruleset(s: AsyncSession, dealer_id: str) -> dict[str, Any] | None:
    """The newest rule-set body of a dealer (None: use ``policy.default_ruleset``)."""
    row = (await s.execute(
        select(PolicyRuleSetRow).where(PolicyRuleSetRow.dealer_id == dealer_id)
        .order_by(PolicyRuleSetRow.version.desc()).limit(1)
    )).scalar_one_or_none()
    return dict(row.body) if row else None


async def save_ruleset(
    s: AsyncSession, dealer_id: str, body: dict[str, Any], *, actor: str, now: datetime
) -> int:
    """Store ``body`` as the next version; returns that version number."""
    current = (await s.execute(
        select(func.max(PolicyRuleSetRow.version)).where(PolicyRuleSetRow.dealer_id == dealer_id)
    )).scalar_one_or_none() or 0
    version = current + 1
    stored = {**body, "dealer_id": dealer_id, "version": version}
    s.add(PolicyRuleSetRow(dealer_id=dealer_id, version=version, body=stored, created_at=now,
                           created_by=actor))
    await s.flush()
    return version
