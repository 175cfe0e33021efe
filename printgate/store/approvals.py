"""Customer approvals (table ``dwa_approvals``), returned as ``printgate.domain.Approval``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import Approval, CustomerId, DeviceId, UserId
from printgate.domain.approvals import APPROVED, DENIED, PENDING
from printgate.errors import InvalidTransition, NotFound
from printgate.store import outbox
from printgate.store.models.identity import ApprovalRow


def approval_from_row(row: ApprovalRow) -> Approval:
    return Approval(
        id=row.id, user_id=UserId(row.user_id), device_id=DeviceId(row.device_id),
        customer_id=CustomerId(row.customer_id), status=row.status, reason=row.reason,
        requested_at=row.requested_at, decided_by=row.decided_by, decided_at=row.decided_at,
        approved_until=row.approved_until,
    )


async def request_approval(s: AsyncSession, *, approval_id: str, user_id: str, device_id: str,
                           customer_id: str, reason: str, now: datetime) -> Approval:
    """A new pending request."""
    row = ApprovalRow(id=approval_id, user_id=user_id, device_id=device_id, customer_id=customer_id,
                      status=PENDING, reason=reason, requested_at=now)
    s.add(row)
    await s.flush()
    # the dealer's integrations hear of it in the same transaction (docs/integrations.md)
    await outbox.enqueue_for_device(s, kind=outbox.SESSION_APPROVAL_REQUESTED, device_id=device_id, now=now,
                                    payload={"approval_id": approval_id, "user_id": user_id,
                                             "reason": reason, "requested_at": now.isoformat()})
    return approval_from_row(row)


async def get_approval(s: AsyncSession, approval_id: str) -> Approval | None:
    row = await s.get(ApprovalRow, approval_id)
    return approval_from_row(row) if row else None


async def decide_approval(s: AsyncSession, approval_id: str, *, approved: bool, by: str, now: datetime,
                          until: datetime | None = None) -> Approval:
    """Approve (valid until ``until``) or deny a pending request."""
    row = await s.get(ApprovalRow, approval_id)
    if row is None:
        raise NotFound(f"no approval request {approval_id}")
    if row.status != PENDING:
        raise InvalidTransition(f"approval request {approval_id} was already {row.status}")
    row.status, row.decided_by, row.decided_at = (APPROVED if approved else DENIED), by, now
    if approved:
        row.approved_until = until
    return approval_from_row(row)  # written with the caller's transaction


async def pending_approval(s: AsyncSession, user_id: str, device_id: str) -> Approval | None:
    row = (await s.execute(
        select(ApprovalRow).where(ApprovalRow.user_id == user_id,
                                  ApprovalRow.device_id == device_id,
                                  ApprovalRow.status == PENDING).limit(1)
    )).scalar_one_or_none()
    return approval_from_row(row) if row else None


async def list_approvals_of_customer(s: AsyncSession, customer_id: str) -> list[Approval]:
    return [approval_from_row(r) for r in (await s.execute(
        select(ApprovalRow).where(ApprovalRow.customer_id == customer_id)
        .order_by(ApprovalRow.requested_at.desc()).limit(200)
    )).scalars().all()]


async def list_approvals_of_user(s: AsyncSession, user_id: str) -> list[Approval]:
    return [approval_from_row(r) for r in (await s.execute(
        select(ApprovalRow).where(ApprovalRow.user_id == user_id)
        .order_by(ApprovalRow.requested_at.desc()).limit(50)
    )).scalars().all()]


async def active_approval_until(
    s: AsyncSession, user_id: str, device_id: str, now: datetime
) -> datetime | None:
    """Expiry of the newest approval still valid for ``user`` on ``device``
    (``policy.Context.approved_until``), or None."""
    return (await s.execute(
        select(func.max(ApprovalRow.approved_until)).where(
            ApprovalRow.user_id == user_id, ApprovalRow.device_id == device_id,
            ApprovalRow.status == APPROVED, ApprovalRow.approved_until > now)
    )).scalar_one_or_none()
