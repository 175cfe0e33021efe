"""argon2id password hashes and the lockout/back-off rule against guessing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
_DUMMY = _HASHER.hash("printgate-dummy-password")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-ish time check; an absent hash still costs one verification."""
    try:
        return _HASHER.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


@dataclass(frozen=True, slots=True)
class Lockout:
    """After ``free_attempts`` failures, lock for ``base`` doubling up to ``cap``."""

    free_attempts: int = 5
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)

    def locked_until(self, failures: int, now: datetime) -> datetime | None:
        if failures < self.free_attempts:
            return None
        delay = self.base * (2 ** min(failures - self.free_attempts, 16))
        return now + min(delay, self.cap)


MIN_PASSWORD_LENGTH = 12


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    return None
