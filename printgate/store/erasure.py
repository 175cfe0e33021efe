"""GDPR erasure outside the audit tables: the person's own account row, and
making sure deleted bytes do not linger in the database files.

``pseudonymise_user`` replaces the e-mail address and name of the account
with neutral values, disables sign-in and removes every secret that could
sign in (password hash, TOTP secret, recovery codes, browser sessions, API
tokens). Security alerts keep the e-mail addresses and names they are about
(subjects, texts, samples, delivery targets): ``audit.pseudonymise`` has
``printgate.store.security_subscriptions.erase_person`` replace them in the
same transaction. ``purge_freed_pages`` then makes the deletion physical where the
backend allows it:

* SQLite runs with ``PRAGMA secure_delete=ON`` (``printgate.store.db``), so
  deleted cells and freed pages are overwritten with zeros; the old page
  images still in the write-ahead log are dropped by a
  ``wal_checkpoint(TRUNCATE)``.
* PostgreSQL keeps deleted row versions until VACUUM reclaims them; a plain
  VACUUM of the touched tables runs here. It makes the space reusable but
  does not overwrite it, and old versions also stay in WAL segments and
  backups until those are recycled (see ``docs/audit-witness.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.db import Database
from printgate.store.models.core import UserRow
from printgate.store.models.identity import (
    ApiTokenRow,
    InvitationRow,
    PortalSessionRow,
    RecoveryCodeRow,
)

ERASED_NAME = "erased user"
ERASED_VALUE = "[erased]"
TOUCHED_TABLES = ("audit_personal", "users", "mfa_recovery_codes", "portal_sessions", "invitations",
                  "security_alerts", "security_alert_deliveries", "security_subscriptions",
                  "security_alert_cursor")


def pseudonym_email(user_id: str) -> str:
    return f"erased-{user_id}@erased.invalid"


async def display_name_of(s: AsyncSession, email: str) -> str | None:
    """The name of the account with ``email`` (before ``pseudonymise_user`` replaces it)."""
    return (await s.execute(select(UserRow.display_name)
                            .where(UserRow.email == email.strip().lower()))).scalar_one_or_none()


async def pseudonymise_user(s: AsyncSession, email: str, *, now: datetime) -> str | None:
    """Pseudonymise the account with ``email``; its id, or None when there is none."""
    row = (await s.execute(select(UserRow).where(UserRow.email == email.strip().lower()))).scalar_one_or_none()
    await s.execute(delete(InvitationRow).where(InvitationRow.email == email.strip().lower()))
    if row is None:
        return None
    row.email = pseudonym_email(row.id)
    row.display_name = ERASED_NAME
    row.password_hash = None
    row.totp_secret = None
    row.totp_last_step = None
    row.disabled = True
    await s.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.user_id == row.id))
    await s.execute(delete(PortalSessionRow).where(PortalSessionRow.user_id == row.id))
    await s.execute(update(ApiTokenRow).where(ApiTokenRow.user_id == row.id, ApiTokenRow.revoked_at.is_(None))
                    .values(revoked_at=now))
    return row.id


@dataclass(frozen=True, slots=True)
class Purge:
    complete: bool  # False: a reader kept old pages alive (SQLite) -- run the erasure again later
    detail: str


async def purge_freed_pages(db: Database) -> Purge:
    """Make deleted bytes unreadable where the backend allows it (see module doc)."""
    async with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            busy, frames, done = (await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
            if busy:
                return Purge(False, f"write-ahead log busy: {done} of {frames} frames copied; "
                                    "old pages stay in the -wal file until the next checkpoint")
            return Purge(True, "secure_delete zeroed the deleted cells; write-ahead log truncated")
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in TOUCHED_TABLES:
            await auto.execute(text(f"VACUUM {table}"))
        return Purge(True, "VACUUM reclaimed the deleted row versions (PostgreSQL does not overwrite them; "
                           "WAL segments and backups keep them until recycled)")
