"""A stored invitation of a new user (or a password-reset link): who, which roles, until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    """An invitation as stored (only the token's hash is kept, never the token)."""

    id: str
    email: str
    roles: tuple[str, ...]
    dealer_id: str | None
    customer_id: str | None
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None
