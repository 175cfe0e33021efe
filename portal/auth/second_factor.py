"""Checking a second factor: a TOTP code (replay refused) or a recovery code."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth import totp
from printgate.domain import Role
from printgate.store import recovery_codes, users

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


def mfa_required(roles: frozenset[Role], totp_enrolled: bool) -> bool:
    return totp_enrolled or bool(MFA_ROLES & roles)


async def check_code(s: AsyncSession, user_id: str, code: str, now: datetime) -> FactorResult:
    totp_secret = await users.get_totp_secret(s, user_id)
    if not totp_secret:
        return FactorResult.NOT_ENROLLED
    code = code.strip()
    if "-" in code:
        used = await recovery_codes.use_recovery_code(s, user_id, totp.hash_recovery_code(code), now)
        return FactorResult.RECOVERY_CODE if used else FactorResult.WRONG
    step = totp.matching_step(totp_secret, code, now)
    if step is None:
        return FactorResult.WRONG
    if not await users.accept_totp_step(s, user_id, step):
        return FactorResult.REPLAYED
    return FactorResult.TOTP
