"""``AuditLog``: the appending sink of the tamper-evident audit trail.

Appends are atomic and totally ordered: each batch runs in one transaction
that first locks the chain head (``printgate.store.audit.lock_head``), so
several processes on one PostgreSQL (or one SQLite file) still produce one
gap-free chain. Every ``checkpoint_every`` records a signed tree head is
stored in the same transaction when a ``Signer`` is configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from audit.chain import (
    SCHEMA_VERSION,
    PreparedEvent,
    build_entry,
    format_at,
    parse_at,
    prepare,
    seal,
)
from audit.checkpoint import Checkpoint, Signer
from audit.merkle import Frontier, leaf_hash
from printgate.domain import AuditEventIn, AuditRecord
from printgate.errors import AuditIntegrityError
from printgate.logs import get_logger
from printgate.store import audit as store
from printgate.store.db import Database

log = get_logger("audit.log")


class AuditLog:
    """Hash-chained, checkpointed audit log (implements ``AuditSink``)."""

    def __init__(
        self,
        db: Database,
        signer: Signer | None,
        *,
        checkpoint_every: int = 1000,
        clock: Callable[[], datetime] | None = None,
        salt: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self.db = db
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self._clock = clock or (lambda: datetime.now(UTC))
        self._salt = salt

    async def append(self, event: AuditEventIn) -> AuditRecord:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[AuditEventIn]) -> list[AuditRecord]:
        """Append ``events`` in order, atomically, as consecutive records."""
        prepared = [prepare(e, self._salt) for e in events]
        if not prepared:
            return []
        async with self.db.transaction() as s:
            return await self._append_locked(s, prepared)

    async def append_in(self, s: AsyncSession, events: Sequence[AuditEventIn]) -> list[AuditRecord]:
        """Append inside the caller's transaction ``s`` (locks the chain head)."""
        return await self._append_locked(s, [prepare(e, self._salt) for e in events])

    async def _append_locked(self, s: AsyncSession, prepared: Sequence[PreparedEvent]) -> list[AuditRecord]:
        last_seq, last_hash = await store.lock_head(s)
        at_dt = self._clock()
        at = format_at(at_dt)
        at_dt = parse_at(at)
        rows: list[dict[str, Any]] = []
        personal_rows: list[dict[str, Any]] = []
        records: list[AuditRecord] = []
        prev = last_hash
        seq = last_seq
        for p in prepared:
            seq += 1
            entry = build_entry(p, seq=seq, at=at, prev=prev)
            data, h = seal(entry, known_fast=p.fast)
            rows.append({
                "seq": seq, "at": at_dt, "schema_version": SCHEMA_VERSION, "type": p.type,
                "outcome": p.outcome, "dealer_id": p.dealer_id, "customer_id": p.customer_id,
                "device_id": p.device_id, "session_id": p.session_id,
                "entry": data.decode("utf-8"), "hash": h, "prev": prev, "pruned_by": None,
            })
            if p.personal:
                personal_rows.append({
                    "seq": seq,
                    "actor": p.personal["actor"][0] if "actor" in p.personal else None,
                    "source_ip": p.personal["source_ip"][0] if "source_ip" in p.personal else None,
                    "fields": {f: [v, salt.hex()] for f, (v, salt) in p.personal.items()},
                })
            extra = {f: v for f, (v, _) in p.personal.items() if f not in ("actor", "source_ip")}
            records.append(AuditRecord(
                seq=seq, at=at_dt, schema_version=SCHEMA_VERSION, type=p.type, outcome=p.outcome,
                prev_hash=prev, hash=h, dealer_id=p.dealer_id, customer_id=p.customer_id,
                device_id=p.device_id, session_id=p.session_id,
                actor=p.personal["actor"][0] if "actor" in p.personal else None,
                source_ip=p.personal["source_ip"][0] if "source_ip" in p.personal else None,
                details=p.details, personal=extra,
            ))
            prev = h
        await store.insert_records(s, rows)
        await store.insert_personal(s, personal_rows)
        await store.set_head(s, seq, prev)
        if self.signer is not None:
            n = self.checkpoint_every
            for boundary in range((last_seq // n + 1) * n, seq + 1, n):
                await self._checkpoint_locked(s, boundary, at)
        return records

    async def checkpoint(self) -> Checkpoint | None:
        """Sign a tree head over every record so far (None without a signer or records)."""
        if self.signer is None:
            return None
        async with self.db.transaction() as s:
            seq, _ = await store.lock_head(s)
            if seq == 0:
                return None
            existing = await store.latest_checkpoint(s, at_most=seq)
            if existing is not None and existing.tree_size == seq:
                return _from_row(existing)
            return await self._checkpoint_locked(s, seq, format_at(self._clock()))

    async def _checkpoint_locked(self, s: AsyncSession, size: int, at: str) -> Checkpoint:
        if self.signer is None:
            raise AuditIntegrityError("checkpoints need a signing key (printgate audit keygen)")
        base = await store.latest_checkpoint(s, at_most=size)
        if base is not None and base.tree_size == size:
            return _from_row(base)
        frontier = (Frontier(base.tree_size, [bytes.fromhex(h) for h in base.frontier])
                    if base is not None else Frontier())
        hashes = await store.record_hashes(s, frontier.size + 1, size)
        if len(hashes) != size - frontier.size:
            raise AuditIntegrityError(
                f"audit chain has gaps below record {size}: run `printgate audit verify`")
        for h in hashes:
            frontier.append(leaf_hash(bytes.fromhex(h)))
        head = hashes[-1] if hashes else str(base.head if base else "")
        cp = self.signer.sign(tree_size=size, root=frontier.root(), head=head, at=at)
        await store.insert_checkpoint(s, {
            "tree_size": size, "root": cp.root, "head": cp.head, "at": cp.at,
            "key_id": cp.key_id, "signature": cp.signature,
            "frontier": [h.hex() for h in frontier.hashes()],
        })
        log.info("audit.checkpoint", tree_size=size, key_id=cp.key_id)
        return cp


def _from_row(row: Any) -> Checkpoint:
    return Checkpoint(int(row.tree_size), row.root, row.head, row.at, row.key_id, row.signature)
