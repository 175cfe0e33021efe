"""Audit events as appended and as sealed in the hash-chained log."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class AuditEventIn:
    """An event to append to the audit trail (the caller's view)."""

    type: str
    outcome: Outcome = Outcome.SUCCESS
    actor: str | None = None
    dealer_id: str | None = None
    customer_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    source_ip: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    # further identifying fields (e.g. a login name tried); stored like actor/source_ip
    personal: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An event as sealed in the hash-chained audit log (schema ``schema_version``).

    ``actor``/``source_ip``/``personal`` are the clear personal values when
    known (``None`` once erased); the chain commits only to salted hashes.
    """

    seq: int
    at: datetime
    schema_version: int
    type: str
    outcome: str
    prev_hash: str
    hash: str
    dealer_id: str | None = None
    customer_id: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    actor: str | None = None
    source_ip: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    personal: dict[str, str] = field(default_factory=dict)
