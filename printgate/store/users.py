"""Users' sign-in columns (password hash, TOTP) and user lists.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import Role, User
from printgate.store.models.core import UserRow
from printgate.store.tenants import user_from_row


async def get_user_row(s: AsyncSession, user_id: str) -> UserRow | None:
    return await s.get(UserRow, user_id)


async def get_user_by_email(s: AsyncSession, email: str) -> User | None:
    row = (await s.execute(
        select(UserRow).where(UserRow.email == email.strip().lower())
    )).scalar_one_or_none()
    return user_from_row(row) if row is not None else None


async def get_totp_secret(s: AsyncSession, user_id: str) -> str | None:
    """The user's TOTP secret (None when no authenticator is enrolled or no such user)."""
    row = await s.get(UserRow, user_id)
    return row.totp_secret if row is not None and row.totp_secret else None


async def set_roles(s: AsyncSession, user_id: str, roles: frozenset[Role]) -> None:
    """Replace the user's roles, written with the request's transaction (unit of work, flushed
    at commit; an early UPDATE would hold SQLite's write lock for the whole request)."""
    row = await s.get(UserRow, user_id)
    if row is not None:
        row.roles = sorted(r.value for r in roles)


async def set_disabled(s: AsyncSession, user_id: str, disabled: bool) -> None:
    """Disable (or enable) the user, with the request's transaction (unit of work)."""
    row = await s.get(UserRow, user_id)
    if row is not None:
        row.disabled = disabled


async def reset_password(s: AsyncSession, user_id: str, password_hash: str) -> None:
    """A new password hash and no lock-out, with the request's transaction (unit of work)."""
    row = await s.get(UserRow, user_id)
    if row is not None:
        row.password_hash = password_hash
        row.failed_logins, row.locked_until = 0, None


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
