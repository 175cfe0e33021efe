"""Portal (browser) sign-in sessions: who, at which stage, how and when the second factor was shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from printgate.domain.ids import UserId


@dataclass(frozen=True, slots=True)
class PortalSession:
    """``id`` is the SHA-256 of the cookie token (never the token); ``stage`` is ``password``
    (awaiting the second factor) or ``full``."""

    id: str
    user_id: UserId
    stage: str
    created_at: datetime
    last_seen_at: datetime
    csrf_secret: str
    auth_method: str = "password"
    source_ip: str = ""
    mfa_at: datetime | None = None
    mfa_method: str | None = None
