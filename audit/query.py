"""Searching the audit log: filters, tenant scopes, rows -> ``AuditRecord``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from audit.chain import PERSONAL_FIELDS
from printgate.domain import AuditRecord, Role, User
from printgate.errors import AccessDenied
from printgate.store import audit as store
from printgate.store.db import Database


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every given criterion must match; ``None`` means any."""

    dealer_id: str | None = None
    customer_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    device_id: str | None = None
    session_id: str | None = None
    types: tuple[str, ...] = ()
    outcome: str | None = None
    after_seq: int = 0
    limit: int = 500


def scope_for(user: User, wanted: AuditFilter) -> AuditFilter:
    """Narrow ``wanted`` to what ``user`` may see: an auditor of a customer sees
    only that customer's events, a dealer's auditor only that dealer's."""
    if Role.AUDITOR not in user.roles or user.disabled:
        raise AccessDenied(f"{user.email} lacks the auditor role needed to read the audit log")
    if user.customer_id is not None:
        if wanted.customer_id not in (None, user.customer_id):
            raise AccessDenied("auditors of a customer can only read that customer's events")
        return replace(wanted, customer_id=user.customer_id)
    if user.dealer_id is not None:
        if wanted.dealer_id not in (None, user.dealer_id):
            raise AccessDenied("auditors of a dealer can only read that dealer's events")
        return replace(wanted, dealer_id=user.dealer_id)
    raise AccessDenied(f"{user.email} belongs to no tenant; no audit scope")


def row_to_record(row: Any, personal: dict[str, tuple[str, str]] | None = None) -> AuditRecord:
    entry = json.loads(row.entry) if row.entry else {}
    clear = {k: v for k, (v, _) in (personal or {}).items()}
    return AuditRecord(
        seq=int(row.seq), at=row.at, schema_version=int(row.schema_version), type=row.type,
        outcome=row.outcome, prev_hash=row.prev, hash=row.hash, dealer_id=row.dealer_id,
        customer_id=row.customer_id, device_id=row.device_id, session_id=row.session_id,
        actor=clear.get("actor"), source_ip=clear.get("source_ip"),
        details=entry.get("details", {}),
        personal={k: v for k, v in clear.items() if k not in PERSONAL_FIELDS},
    )


async def search(db: Database, f: AuditFilter) -> list[AuditRecord]:
    rows = await store.query_records(
        db, dealer_id=f.dealer_id, customer_id=f.customer_id, since=f.since, until=f.until,
        types=f.types, outcome=f.outcome, device_id=f.device_id, session_id=f.session_id,
        personal_field="actor" if f.actor is not None else None, personal_value=f.actor,
        after_seq=f.after_seq, limit=f.limit,
    )
    personal = await store.personal_for(db, [r.seq for r in rows])
    return [row_to_record(r, personal.get(r.seq)) for r in rows]


async def search_all(db: Database, f: AuditFilter, *, page: int = 2000) -> list[AuditRecord]:
    """Every match (paged internally); ``f.limit`` caps the total."""
    out: list[AuditRecord] = []
    after = f.after_seq
    while len(out) < f.limit:
        batch = await search(db, replace(f, after_seq=after, limit=min(page, f.limit - len(out))))
        if not batch:
            break
        out.extend(batch)
        after = batch[-1].seq
        if len(batch) < page:  # the last page: no need to ask for an empty one
            break
    return out


def story_order(records: Sequence[AuditRecord]) -> list[AuditRecord]:
    return sorted(records, key=lambda r: r.seq)
