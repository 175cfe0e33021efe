"""API tokens for automation: what a token may do and until when (its secret is never kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from printgate.domain.ids import UserId


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    user_id: UserId
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
