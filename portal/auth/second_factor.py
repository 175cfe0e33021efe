"""Checking a second factor: a TOTP code (replay refused) or a recovery code."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth import totp
from printgate.domain import Role
from printgate.store import recovery_codes, users
from printgate.store.models.core import UserRow

# roles that can open devices must use a second factor (unless the IdP asserted MFA)
MFA_ROLES = frozenset({Role.TECHNICIAN, Role.DEALER_ADMIN})


class FactorResult(enum.StrEnum):
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    WRONG = "wrong"
    REPLAYED = "replayed"
    NOT_ENROLLED = "not_enrolled"

    @property
    def ok(self) -> bool:
        return self in (FactorResult.TOTP, FactorResult.RECOVERY_CODE)


def mfa_required(row: UserRow) -> bool:
    return bool(row.totp_secret) or bool(MFA_ROLES & {Role(r) for r in row.roles})


async def check_code(s: AsyncSession, row: UserRow, code: str, now: datetime) -> FactorResult:
    if not row.totp_secret:
        return FactorResult.NOT_ENROLLED
    code = code.strip()
    if "-" in code:
        used = await recovery_codes.use_recovery_code(s, row.id, totp.hash_recovery_code(code), now)
        return FactorResult.RECOVERY_CODE if used else FactorResult.WRONG
    step = totp.matching_step(row.totp_secret, code, now)
    if step is None:
        return FactorResult.WRONG
    if not await users.accept_totp_step(s, row.id, step):
        return FactorResult.REPLAYED
    return FactorResult.TOTP
