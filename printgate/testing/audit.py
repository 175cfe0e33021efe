"""Audit sinks for tests: one in memory, and the real chained log with a way to read it back."""

from __future__ import annotations

import asyncio

from audit.log import AuditLog
from audit.query import row_to_record
from printgate.domain import AuditEventIn, AuditRecord
from printgate.store import audit as audit_store
from printgate.store.db import Database


class RecordingAuditSink:
    """An ``AuditSink`` that keeps every appended event in memory, in order."""

    def __init__(self) -> None:
        self.events: list[AuditEventIn] = []

    async def append(self, event: AuditEventIn) -> None:
        self.events.append(event)

    def of(self, type_: str, session_id: str | None = None) -> list[AuditEventIn]:
        """The events of one type (and session, if given)."""
        return [e for e in self.events
                if e.type == type_ and (session_id is None or e.session_id == session_id)]

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    async def wait_for(self, type_: str, session_id: str | None = None, timeout: float = 5.0,
                       **details: object) -> AuditEventIn:
        """The first event of ``type_`` whose details include ``details``; waits up to ``timeout``."""
        for _ in range(max(1, int(timeout / 0.05))):
            for e in self.of(type_, session_id):
                if all(e.details.get(k) == v for k, v in details.items()):
                    return e
            await asyncio.sleep(0.05)
        raise AssertionError(f"no audit event {type_} {details} for {session_id}: {self.events[-5:]}")


async def stored_records(db: Database, *, session_id: str | None = None) -> list[AuditRecord]:
    """What the real ``AuditLog`` sealed into ``db``, in order (one session's, if given)."""
    out: list[AuditRecord] = []
    async for batch in audit_store.iter_records(db):
        out.extend(r for r in map(row_to_record, batch) if session_id is None or r.session_id == session_id)
    return out


class ReadableAuditLog(AuditLog):
    """The real ``AuditLog`` (no checkpoint signing unless given a signer), plus ``events()``."""

    async def events(self, *, session_id: str | None = None) -> list[AuditRecord]:
        return await stored_records(self.db, session_id=session_id)
