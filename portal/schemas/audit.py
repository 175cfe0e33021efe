"""What the audit API answers: events as an auditor may see them, pages of them, a session's story."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from printgate.domain import AuditRecord


class AuditEventPublic(BaseModel):
    seq: int
    at: datetime
    type: str
    outcome: str
    actor: str | None
    source_ip: str | None
    dealer_id: str | None
    customer_id: str | None
    device_id: str | None
    session_id: str | None
    details: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, r: AuditRecord) -> AuditEventPublic:
        return cls(seq=r.seq, at=r.at, type=r.type, outcome=r.outcome, actor=r.actor,
                   source_ip=r.source_ip, dealer_id=r.dealer_id, customer_id=r.customer_id,
                   device_id=r.device_id, session_id=r.session_id, details=dict(r.details), hash=r.hash)


class AuditPage(BaseModel):
    events: list[AuditEventPublic]
    next_after_seq: int | None


class SessionStory(BaseModel):
    session_id: str
    device_id: str | None
    actors: list[str]
    started: datetime | None
    ended: datetime | None
    events: list[AuditEventPublic]
