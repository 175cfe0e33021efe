"""MFA recovery codes (hashes only), each usable once.

Secrets never reach this module in clear: callers pass hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.store.models.identity import RecoveryCodeRow


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
