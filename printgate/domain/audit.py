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


# ---- the log as stored (what printgate.store.audit reads back; issue 16: no ORM row above the store) ----


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One row of the chain as stored: the sealed ``entry`` (RFC 8785 text, None once pruned by
    retention), its ``hash``/``prev`` link and the queryable projections of its fields."""

    seq: int
    at: datetime
    schema_version: int
    type: str
    outcome: str
    dealer_id: str | None
    customer_id: str | None
    device_id: str | None
    session_id: str | None
    entry: str | None
    hash: str
    prev: str
    pruned_by: int | None


@dataclass(frozen=True, slots=True)
class StoredPersonal:
    """The clear personal values of one record: ``fields`` = {name: [value, salt hex]}."""

    seq: int
    actor: str | None
    source_ip: str | None
    fields: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed tree head as stored, with the Merkle ``frontier`` to extend it."""

    tree_size: int
    root: str
    head: str
    at: str
    key_id: str
    signature: str
    frontier: list[str]


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    """A witness's cosignature with the checkpoint as the witness saw it."""

    witness: str
    tree_size: int
    witness_public_key: str
    cosigned_at: str
    signature: str
    root: str
    head: str
    checkpoint_at: str
    key_id: str
    checkpoint_signature: str
    received_at: datetime
