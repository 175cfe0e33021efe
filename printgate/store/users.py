"""Users' sign-in columns (password hash, TOTP) and user lists.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain import Role, SignInRecord, User
from printgate.store.models.core import UserRow
from printgate.store.tenants import user_from_row


async def _row_by_email(s: AsyncSession, email: str) -> UserRow | None:
    return (await s.execute(
        select(UserRow).where(UserRow.email == email.strip().lower())
    )).scalar_one_or_none()


async def get_user_by_email(s: AsyncSession, email: str) -> User | None:
    row = await _row_by_email(s, email)
    return user_from_row(row) if row is not None else None


async def get_sign_in(s: AsyncSession, email: str) -> SignInRecord | None:
    """The user with this e-mail (case and blanks ignored) with the password hash and lock-out state."""
    row = await _row_by_email(s, email)
    if row is None:
        return None
    return SignInRecord(user=user_from_row(row), password_hash=row.password_hash,
                        totp_enrolled=bool(row.totp_secret), failed_logins=row.failed_logins,
                        locked_until=row.locked_until)


async def record_failed_login(s: AsyncSession, user_id: str, *,
                              lock_until: Callable[[int], datetime | None]) -> int:
    """One more failed password, counted in the database (``failed_logins + 1``: guesses sent in
    parallel each count), and the lock-out ``lock_until(count)`` set unless a later one is already
    set; the new count (0 when there is no such user)."""
    failures = (await s.execute(
        update(UserRow).where(UserRow.id == user_id)
        .values(failed_logins=UserRow.failed_logins + 1).returning(UserRow.failed_logins)
    )).scalar_one_or_none()
    if failures is None:
        return 0
    until = lock_until(failures)
    if until is not None:
        await s.execute(
            update(UserRow)
            .where(UserRow.id == user_id, or_(UserRow.locked_until.is_(None), UserRow.locked_until < until))
            .values(locked_until=until)
        )
    return int(failures)


async def record_successful_login(s: AsyncSession, user_id: str) -> None:
    """A right password: the failure count and lock-out are cleared (unit of work)."""
    row = await s.get(UserRow, user_id)
    if row is not None:
        row.failed_logins, row.locked_until = 0, None


async def set_password_hash(s: AsyncSession, user_id: str, password_hash: str) -> None:
    """Replace the stored hash (e.g. re-hashed with current parameters), lock-out state untouched."""
    row = await s.get(UserRow, user_id)
    if row is not None:
        row.password_hash = password_hash


async def enrol_totp(s: AsyncSession, user_id: str, secret: str, *, used_step: int | None) -> None:
    """A new authenticator: its secret, and the step its confirming code used (None: none used yet),
    so that code cannot be replayed (unit of work)."""
    row = await s.get(UserRow, user_id)
    if row is not None:
        row.totp_secret, row.totp_last_step = secret, used_step


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


async def display_names_of(s: AsyncSession, emails: set[str]) -> dict[str, str]:
    """{e-mail: display name} of the accounts with these e-mails (pages show names, e-mails on hover)."""
    wanted = sorted({e.strip().lower() for e in emails if e})
    if not wanted:
        return {}
    rows = (await s.execute(select(UserRow.email, UserRow.display_name).where(UserRow.email.in_(wanted)))).all()
    return {email: name or email for email, name in rows}
