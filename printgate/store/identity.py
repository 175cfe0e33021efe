"""Repositories for identity and policy data (portal sessions, MFA, tokens,
SSO, invitations, customer approvals, tenant rule sets).

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import User
from printgate.store.models.core import CustomerRow, DwaSessionRow, SiteRow, UserRow
from printgate.store.models.identity import (
    ApiTokenRow,
    ApprovalRow,
    InvitationRow,
    PolicyRuleSetRow,
    PortalSessionRow,
    RecoveryCodeRow,
    SsoPendingRow,
    SsoProviderRow,
    SsoReplayRow,
)
from printgate.store.tenants import user_from_row

# --- policy rule sets -------------------------------------------------------


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


# --- users (auth columns) ---------------------------------------------------


async def get_user_row(s: AsyncSession, user_id: str) -> UserRow | None:
    return await s.get(UserRow, user_id)


async def accept_totp_step(s: AsyncSession, user_id: str, step: int) -> bool:
    """Record ``step`` as used, atomically; False if it (or a later one) was used."""
    result = await s.execute(
        update(UserRow)
        .where(UserRow.id == user_id,
               or_(UserRow.totp_last_step.is_(None), UserRow.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_users(s: AsyncSession, *, dealer_id: str | None = None,
                     customer_id: str | None = None) -> list[User]:
    q = select(UserRow).order_by(UserRow.email)
    if dealer_id is not None:
        q = q.where(UserRow.dealer_id == dealer_id)
    if customer_id is not None:
        q = q.where(UserRow.customer_id == customer_id)
    return [user_from_row(r) for r in (await s.execute(q)).scalars().all()]


async def count_live_dwa_sessions(s: AsyncSession, *, user_id: str | None = None,
                                  device_id: str | None = None) -> int:
    q = select(func.count()).select_from(DwaSessionRow).where(
        DwaSessionRow.state.not_in(["closed", "denied", "failed"]))
    if user_id is not None:
        q = q.where(DwaSessionRow.user_id == user_id)
    if device_id is not None:
        q = q.where(DwaSessionRow.device_id == device_id)
    return int((await s.execute(q)).scalar_one())


# --- portal sessions --------------------------------------------------------


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


# --- recovery codes ---------------------------------------------------------


async def replace_recovery_codes(s: AsyncSession, user_id: str, hashes: list[str]) -> None:
    await s.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == user_id))
    s.add_all(RecoveryCodeRow(user_id=user_id, code_hash=h) for h in hashes)


async def use_recovery_code(s: AsyncSession, user_id: str, code_hash: str, now: datetime) -> bool:
    result = await s.execute(
        update(RecoveryCodeRow)
        .where(RecoveryCodeRow.user_id == user_id, RecoveryCodeRow.code_hash == code_hash,
               RecoveryCodeRow.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- API tokens -------------------------------------------------------------


async def add_api_token(s: AsyncSession, row: ApiTokenRow) -> None:
    s.add(row)
    await s.flush()


async def find_api_token(s: AsyncSession, token_hash: str) -> ApiTokenRow | None:
    return (await s.execute(
        select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)
    )).scalar_one_or_none()


async def list_api_tokens(s: AsyncSession, user_id: str) -> list[ApiTokenRow]:
    return list((await s.execute(
        select(ApiTokenRow).where(ApiTokenRow.user_id == user_id).order_by(ApiTokenRow.created_at)
    )).scalars().all())


# --- SSO --------------------------------------------------------------------


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


# --- invitations ------------------------------------------------------------


async def add_invitation(s: AsyncSession, row: InvitationRow) -> None:
    s.add(row)
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


# --- customer approvals -----------------------------------------------------


async def add_approval(s: AsyncSession, row: ApprovalRow) -> None:
    s.add(row)
    await s.flush()


async def get_approval(s: AsyncSession, approval_id: str) -> ApprovalRow | None:
    return await s.get(ApprovalRow, approval_id)


async def pending_approval(s: AsyncSession, user_id: str, device_id: str) -> ApprovalRow | None:
    return (await s.execute(
        select(ApprovalRow).where(ApprovalRow.user_id == user_id,
                                  ApprovalRow.device_id == device_id,
                                  ApprovalRow.status == "pending").limit(1)
    )).scalar_one_or_none()


async def list_approvals_of_customer(s: AsyncSession, customer_id: str) -> list[ApprovalRow]:
    return list((await s.execute(
        select(ApprovalRow).where(ApprovalRow.customer_id == customer_id)
        .order_by(ApprovalRow.requested_at.desc()).limit(200)
    )).scalars().all())


async def list_approvals_of_user(s: AsyncSession, user_id: str) -> list[ApprovalRow]:
    return list((await s.execute(
        select(ApprovalRow).where(ApprovalRow.user_id == user_id)
        .order_by(ApprovalRow.requested_at.desc()).limit(50)
    )).scalars().all())


async def active_approval_until(
    s: AsyncSession, user_id: str, device_id: str, now: datetime
) -> datetime | None:
    """Expiry of the newest approval still valid for ``user`` on ``device``
    (``policy.Context.approved_until``), or None."""
    return (await s.execute(
        select(func.max(ApprovalRow.approved_until)).where(
            ApprovalRow.user_id == user_id, ApprovalRow.device_id == device_id,
            ApprovalRow.status == "approved", ApprovalRow.approved_until > now)
    )).scalar_one_or_none()


async def live_dwa_session_ids_of_user(s: AsyncSession, user_id: str) -> list[str]:
    result = await s.execute(
        select(DwaSessionRow.id).where(DwaSessionRow.user_id == user_id,
                                       DwaSessionRow.state.not_in(["closed", "denied", "failed"]))
        .order_by(DwaSessionRow.created_at.desc())
    )
    return list(result.scalars().all())


# --- tenant administration (RBAC pages) -------------------------------------


async def list_customers_of_dealer(s: AsyncSession, dealer_id: str) -> list[CustomerRow]:
    return list((await s.execute(
        select(CustomerRow).where(CustomerRow.dealer_id == dealer_id).order_by(CustomerRow.name)
    )).scalars().all())


async def list_sites_of_customers(s: AsyncSession, customer_ids: list[str]) -> list[SiteRow]:
    if not customer_ids:
        return []
    return list((await s.execute(
        select(SiteRow).where(SiteRow.customer_id.in_(customer_ids)).order_by(SiteRow.name)
    )).scalars().all())


async def get_customer_row(s: AsyncSession, customer_id: str) -> CustomerRow | None:
    return await s.get(CustomerRow, customer_id)
