"""The agent channel: agent certificates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from printgate.domain.ids import AgentId, SiteId


@dataclass(frozen=True, slots=True)
class AgentCertificate:
    """An X.509 client certificate the agent CA issued to an agent."""

    serial: str  # hex
    agent_id: AgentId
    site_id: SiteId
    fingerprint: str  # sha256 hex of the DER
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    def is_valid(self, now: datetime) -> bool:
        return self.revoked_at is None and self.not_before <= now < self.not_after
