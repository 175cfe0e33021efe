"""A user's web-access sessions as "My sessions" shows them: device, customer and site by
name, state, times and, once ended, why (the last transition's reason)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import DwaState, SessionReason
from printgate.store.models.core import (
    CustomerRow,
    DeviceRow,
    DwaSessionRow,
    DwaTransitionRow,
    SiteRow,
    UserRow,
)
from printgate.store.sessions import reason_of


@dataclass(frozen=True, slots=True)
class SessionLine:
    id: str
    device_id: str
    device_name: str
    customer_name: str
    site_name: str
    state: DwaState
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    last_reason: str  # why it is in its state (for ended sessions: why it ended)
    why: SessionReason | None = None  # why it was opened: alert, ticket or text (issue 20)
    technician: str = ""  # who opened it (e-mail), for the customer's view

    def is_live(self, now: datetime) -> bool:
        return not self.state.is_final and now < self.expires_at

    def remaining_seconds(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))


async def sessions_of_user(s: AsyncSession, user_id: str, *, limit: int = 50,
                           device_id: str | None = None) -> list[SessionLine]:
    """The user's newest sessions (refused ones left out: they never opened), newest first."""
    return await _lines(s, DwaSessionRow.user_id == user_id, limit=limit, device_id=device_id)


async def sessions_of_customer(s: AsyncSession, customer_id: str, *, limit: int = 20) -> list[SessionLine]:
    """Sessions on the customer's devices (any technician), newest first: the approver's view."""
    return await _lines(s, CustomerRow.id == customer_id, limit=limit)


async def _lines(s: AsyncSession, which: Any, *, limit: int, device_id: str | None = None) -> list[SessionLine]:
    q = (select(DwaSessionRow, DeviceRow.name, DeviceRow.model, CustomerRow.name, SiteRow.name, UserRow.email)
         .join(DeviceRow, DeviceRow.id == DwaSessionRow.device_id)
         .join(SiteRow, SiteRow.id == DeviceRow.site_id)
         .join(CustomerRow, CustomerRow.id == SiteRow.customer_id)
         .join(UserRow, UserRow.id == DwaSessionRow.user_id)
         .where(which, DwaSessionRow.state != DwaState.DENIED.value)
         .order_by(DwaSessionRow.created_at.desc()).limit(limit))
    if device_id is not None:
        q = q.where(DwaSessionRow.device_id == device_id)
    rows = (await s.execute(q)).all()
    reasons: dict[str, str] = {}
    if rows:
        for sid, reason in (await s.execute(
            select(DwaTransitionRow.session_id, DwaTransitionRow.reason)
            .where(DwaTransitionRow.session_id.in_([r[0].id for r in rows]))
            .order_by(DwaTransitionRow.id)
        )).all():
            reasons[sid] = reason  # the last one wins
    return [SessionLine(
        id=row.id, device_id=row.device_id, device_name=name or model or row.device_id,
        customer_name=customer, site_name=site, state=DwaState(row.state), created_at=row.created_at,
        expires_at=row.expires_at, ended_at=row.ended_at, last_reason=reasons.get(row.id, ""),
        why=reason_of(row.reason), technician=email,
    ) for row, name, model, customer, site, email in rows]


async def live_session_on_device(s: AsyncSession, user_id: str, device_id: str, now: datetime) -> str | None:
    """The id of ``user_id``'s own live session on ``device_id`` (to rejoin it), if any."""
    for line in await sessions_of_user(s, user_id, limit=5, device_id=device_id):
        if line.is_live(now):
            return line.id
    return None
