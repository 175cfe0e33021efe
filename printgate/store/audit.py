"""Persistence of the hash-chained audit log (no hashing or signing here).

``audit.log.AuditLog`` seals entries and calls these functions inside one
transaction. ``lock_head`` serialises appenders on every backend: its first
statement is an UPDATE of the single head row, which takes the row lock on
PostgreSQL (like ``SELECT ... FOR UPDATE``) and the database write lock on
SQLite (like ``BEGIN IMMEDIATE``: the write comes first, so no reader can
upgrade into a deadlock and the snapshot is the newest one).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import JSON, Dialect, Table, Text, delete, func, insert, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from printgate.domain.audit import StoredCheckpoint, StoredCosignature, StoredPersonal, StoredRecord
from printgate.errors import AuditIntegrityError
from printgate.store.db import Database
from printgate.store.models.audit import (
    AuditCheckpointRow,
    AuditCosignatureRow,
    AuditHeadRow,
    AuditPersonalRow,
    AuditRecordRow,
)

HEAD_ID = 1
# Core tables for bulk inserts (skips the ORM unit of work: ~2x faster batches)
_RECORDS = cast(Table, AuditRecordRow.__table__)
_PERSONAL = cast(Table, AuditPersonalRow.__table__)


_LOCK_HEAD = (update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID)
              .values(seq=AuditHeadRow.seq).returning(AuditHeadRow.seq, AuditHeadRow.hash))
_CHECKPOINTS = cast(Table, AuditCheckpointRow.__table__)


def _head_of(row: Any) -> tuple[int, str]:
    if row is None:
        raise AuditIntegrityError(
            "the audit chain head row is missing: run `printgate db upgrade` (migration 0002_audit)"
        )
    return int(row[0]), str(row[1])


async def lock_head(s: AsyncSession) -> tuple[int, str]:
    """Lock the chain head for this transaction; return ``(last seq, last hash)``."""
    return _head_of((await s.execute(_LOCK_HEAD)).one_or_none())


# --- the same appends on a plain sqlite3 connection (``audit.log.SqliteAuditWriter``: a batch is
# one call in the writer's thread instead of a round trip per statement, and no SQL compilation:
# ~0.1 ms instead of ~0.8 ms). Same tables, same locking (the head row first), and every value
# converted by the column's own SQLAlchemy type for SQLite, so the rows are the ones the async
# path writes ------------------------------------------------------------------------------------
class SqliteAppends:
    """The statements of an append on a ``sqlite3.Connection`` (caller runs BEGIN/COMMIT)."""

    def __init__(self, dialect: Dialect) -> None:
        self._records = _Columns(_RECORDS, dialect)
        self._personal = _Columns(_PERSONAL, dialect)
        self._checkpoints = _Columns(_CHECKPOINTS, dialect)
        frontier_type = _CHECKPOINTS.c.frontier.type
        self._frontier = frontier_type.dialect_impl(dialect).result_processor(dialect, None)

    @staticmethod
    def lock_head(conn: sqlite3.Connection) -> tuple[int, str]:
        return _head_of(conn.execute(
            "UPDATE audit_head SET seq = seq WHERE id = ? RETURNING seq, hash", (HEAD_ID,)).fetchone())

    @staticmethod
    def set_head(conn: sqlite3.Connection, seq: int, hash_: str) -> None:
        conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = ?", (seq, hash_, HEAD_ID))

    def insert_rows(self, conn: sqlite3.Connection, records: Sequence[dict[str, Any]],
                    personal: Sequence[dict[str, Any]]) -> None:
        self._records.insert(conn, records)
        self._personal.insert(conn, personal)

    def latest_checkpoint(self, conn: sqlite3.Connection, *, at_most: int) -> SimpleNamespace | None:
        names = [c.name for c in _CHECKPOINTS.columns]
        row = conn.execute(
            f"SELECT {', '.join(names)} FROM audit_checkpoints WHERE tree_size <= ? "  # noqa: S608
            "ORDER BY tree_size DESC LIMIT 1", (at_most,)).fetchone()
        if row is None:
            return None
        found = dict(zip(names, row, strict=True))
        if self._frontier is not None:
            found["frontier"] = self._frontier(found["frontier"])
        return SimpleNamespace(**found)

    @staticmethod
    def record_hashes(conn: sqlite3.Connection, first: int, last: int) -> list[str]:
        return [str(r[0]) for r in conn.execute(
            "SELECT hash FROM audit_records WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))]

    def insert_checkpoint(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        self._checkpoints.insert(conn, [row])


class _Columns:
    """One table's INSERT on sqlite3, values bound through each column's SQLAlchemy type."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table.name
        self.bind = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns}
        self._sql: dict[tuple[str, ...], str] = {}

    def insert(self, conn: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        names = tuple(rows[0])
        sql = self._sql.get(names)
        if sql is None:
            unknown = [n for n in names if n not in self.bind]
            if unknown:
                raise ValueError(f"{self.table} has no column(s) {unknown}")
            sql = self._sql[names] = (f"INSERT INTO {self.table} ({', '.join(names)}) "  # noqa: S608
                                      f"VALUES ({', '.join('?' * len(names))})")
        procs = [self.bind[n] for n in names]
        conn.executemany(sql, [tuple(v if proc is None else proc(v)
                                     for proc, v in zip(procs, (row[n] for n in names), strict=True))
                               for row in rows])


async def set_head(s: AsyncSession, seq: int, hash_: str) -> None:
    await s.execute(update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).values(seq=seq, hash=hash_))


async def read_head(db: Database) -> tuple[int, str]:
    async with db.session() as s:
        row = (await s.execute(select(AuditHeadRow.seq, AuditHeadRow.hash))).one_or_none()
    if row is None:
        raise AuditIntegrityError("the audit chain head row is missing")
    return int(row[0]), str(row[1])


COPY_THRESHOLD = 64  # PostgreSQL batches at least this big go through COPY


async def _insert(s: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if len(rows) >= COPY_THRESHOLD and s.get_bind().dialect.name == "postgresql":
        conn = await s.connection()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        if hasattr(driver, "copy_records_to_table"):  # asyncpg: COPY inside this transaction
            columns = list(rows[0].keys())
            json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
            records = [tuple(json.dumps(r[c]) if c in json_cols else r[c] for c in columns) for r in rows]
            await driver.copy_records_to_table(table.name, records=records, columns=columns)
            return
    await s.execute(insert(table), list(rows))


async def insert_records(s: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await _insert(s, _RECORDS, rows)


async def insert_personal(s: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await _insert(s, _PERSONAL, rows)


async def insert_checkpoint(s: AsyncSession, row: dict[str, Any]) -> None:
    await s.execute(insert(AuditCheckpointRow), [row])


def _checkpoint(row: AuditCheckpointRow) -> StoredCheckpoint:
    return StoredCheckpoint(tree_size=row.tree_size, root=row.root, head=row.head, at=row.at, key_id=row.key_id,
                            signature=row.signature, frontier=list(row.frontier or []))


def _cosignature(row: AuditCosignatureRow) -> StoredCosignature:
    return StoredCosignature(
        witness=row.witness, tree_size=row.tree_size, witness_public_key=row.witness_public_key,
        cosigned_at=row.cosigned_at, signature=row.signature, root=row.root, head=row.head,
        checkpoint_at=row.checkpoint_at, key_id=row.key_id, checkpoint_signature=row.checkpoint_signature,
        received_at=row.received_at,
    )


def _record(row: AuditRecordRow) -> StoredRecord:
    return StoredRecord(
        seq=row.seq, at=row.at, schema_version=row.schema_version, type=row.type, outcome=row.outcome,
        dealer_id=row.dealer_id, customer_id=row.customer_id, device_id=row.device_id,
        session_id=row.session_id, entry=row.entry, hash=row.hash, prev=row.prev, pruned_by=row.pruned_by,
    )


def _personal(row: AuditPersonalRow) -> StoredPersonal:
    return StoredPersonal(seq=row.seq, actor=row.actor, source_ip=row.source_ip, fields=dict(row.fields or {}))


async def latest_checkpoint(s: AsyncSession, *, at_most: int | None = None) -> StoredCheckpoint | None:
    q = select(AuditCheckpointRow).order_by(AuditCheckpointRow.tree_size.desc()).limit(1)
    if at_most is not None:
        q = q.where(AuditCheckpointRow.tree_size <= at_most)
    row = (await s.execute(q)).scalars().first()
    return _checkpoint(row) if row is not None else None


async def checkpoints(db: Database) -> list[StoredCheckpoint]:
    async with db.session() as s:
        q = select(AuditCheckpointRow).order_by(AuditCheckpointRow.tree_size)
        return [_checkpoint(r) for r in (await s.execute(q)).scalars().all()]


async def checkpoint_of_size(db: Database, tree_size: int) -> StoredCheckpoint | None:
    async with db.session() as s:
        row = await s.get(AuditCheckpointRow, tree_size)
        return _checkpoint(row) if row is not None else None


async def insert_cosignature(s: AsyncSession, row: dict[str, Any]) -> bool:
    """Store a witness's cosignature; False when that witness already cosigned that size."""
    if await s.get(AuditCosignatureRow, (row["witness"], row["tree_size"])) is not None:
        return False
    await s.execute(insert(AuditCosignatureRow), [row])
    return True


async def cosignatures(db: Database) -> list[StoredCosignature]:
    """Every stored cosignature, by tree size."""
    async with db.session() as s:
        q = select(AuditCosignatureRow).order_by(AuditCosignatureRow.tree_size, AuditCosignatureRow.witness)
        return [_cosignature(r) for r in (await s.execute(q)).scalars().all()]


async def record_hashes(s: AsyncSession, first: int, last: int) -> list[str]:
    """Hashes of records ``first..last`` (inclusive), in order."""
    q = (select(AuditRecordRow.hash).where(AuditRecordRow.seq.between(first, last))
         .order_by(AuditRecordRow.seq))
    return [str(h) for h in (await s.execute(q)).scalars().all()]


async def iter_records(
    db: Database, *, first: int = 1, batch: int = 5000, seqs: Iterable[int] | None = None
) -> AsyncIterator[list[StoredRecord]]:
    """All records in seq order (keyset pagination), ``batch`` rows at a time."""
    if seqs is not None:
        wanted = sorted(set(seqs))
        for i in range(0, len(wanted), batch):
            async with db.session() as s:
                q = (select(AuditRecordRow).where(AuditRecordRow.seq.in_(wanted[i:i + batch]))
                     .order_by(AuditRecordRow.seq))
                yield [_record(r) for r in (await s.execute(q)).scalars().all()]
        return
    after = first - 1
    while True:
        async with db.session() as s:
            q = (select(AuditRecordRow).where(AuditRecordRow.seq > after)
                 .order_by(AuditRecordRow.seq).limit(batch))
            rows = [_record(r) for r in (await s.execute(q)).scalars().all()]
        if not rows:
            return
        yield rows
        after = rows[-1].seq


SEARCHABLE_PERSONAL = ("actor", "source_ip")


def _fields(row: AuditPersonalRow) -> dict[str, tuple[str, str]]:
    return {name: (str(v[0]), str(v[1])) for name, v in (row.fields or {}).items()}


async def personal_for(db: Database, seqs: Sequence[int]) -> dict[int, dict[str, tuple[str, str]]]:
    """Clear personal values ``{seq: {field: (value, salt hex)}}`` still on file."""
    out: dict[int, dict[str, tuple[str, str]]] = {}
    if not seqs:
        return out
    async with db.session() as s:
        for i in range(0, len(seqs), 5000):
            chunk = list(seqs[i:i + 5000])
            q = select(AuditPersonalRow).where(AuditPersonalRow.seq.in_(chunk))
            for r in (await s.execute(q)).scalars():
                out[r.seq] = _fields(r)
    return out


async def personal_range(db: Database, first: int, last: int) -> dict[int, dict[str, tuple[str, str]]]:
    async with db.session() as s:
        q = select(AuditPersonalRow).where(AuditPersonalRow.seq.between(first, last))
        return {r.seq: _fields(r) for r in (await s.execute(q)).scalars()}


async def personal_rows(db: Database, first: int, last: int) -> list[StoredPersonal]:
    async with db.session() as s:
        q = (select(AuditPersonalRow).where(AuditPersonalRow.seq.between(first, last))
             .order_by(AuditPersonalRow.seq))
        return [_personal(r) for r in (await s.execute(q)).scalars().all()]


def _personal_column(field: str) -> Any:
    if field not in SEARCHABLE_PERSONAL:
        raise ValueError(f"personal field {field!r} is not searchable; use one of {SEARCHABLE_PERSONAL}")
    return getattr(AuditPersonalRow, field)


async def query_records(
    db: Database,
    *,
    dealer_id: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    types: Sequence[str] = (),
    outcome: str | None = None,
    device_id: str | None = None,
    session_id: str | None = None,
    personal_field: str | None = None,
    personal_value: str | None = None,
    after_seq: int = 0,
    before_seq: int | None = None,
    newest_first: bool = False,
    limit: int = 500,
) -> list[StoredRecord]:
    """Records matching every given criterion (pruned ones excluded), in seq order,
    or newest first for people paging back through the log (``before_seq``)."""
    conds: list[Any] = [AuditRecordRow.seq > after_seq, AuditRecordRow.entry.is_not(None)]
    if before_seq is not None:
        conds.append(AuditRecordRow.seq < before_seq)
    for col, value in ((AuditRecordRow.dealer_id, dealer_id), (AuditRecordRow.customer_id, customer_id),
                       (AuditRecordRow.outcome, outcome), (AuditRecordRow.device_id, device_id),
                       (AuditRecordRow.session_id, session_id)):
        if value is not None:
            conds.append(col == value)
    if since is not None:
        conds.append(AuditRecordRow.at >= since)
    if until is not None:
        conds.append(AuditRecordRow.at < until)
    if types:
        conds.append(AuditRecordRow.type.in_(list(types)))
    if personal_field is not None and personal_value is not None:
        conds.append(AuditRecordRow.seq.in_(
            select(AuditPersonalRow.seq).where(_personal_column(personal_field) == personal_value)
        ))
    async with db.session() as s:
        order = AuditRecordRow.seq.desc() if newest_first else AuditRecordRow.seq
        q = select(AuditRecordRow).where(*conds).order_by(order).limit(limit)
        return [_record(r) for r in (await s.execute(q)).scalars().all()]


async def erase_personal(s: AsyncSession, *, field: str, value: str, any_field: bool = False) -> list[int]:
    """Delete every clear ``field`` = ``value`` (and the other personal values of
    those records) in transaction ``s``; returns the seqs of the records affected.
    ``any_field``: also records where another personal field (e.g. the ``subject``
    of an administrator's action) holds ``value``."""
    column = _personal_column(field)
    found = set((await s.execute(select(AuditPersonalRow.seq).where(column == value))).scalars())
    if any_field:  # coarse text match on the JSON, then an exact check
        q = select(AuditPersonalRow).where(
            sql_cast(AuditPersonalRow.fields, Text).contains(json.dumps(value), autoescape=True))
        for row in (await s.execute(q)).scalars():
            if any(v[0] == value for v in (row.fields or {}).values()):
                found.add(row.seq)
    seqs = sorted(int(x) for x in found)
    for i in range(0, len(seqs), 5000):
        await s.execute(delete(AuditPersonalRow).where(AuditPersonalRow.seq.in_(seqs[i:i + 5000])))
    return seqs


async def prunable(
    s: AsyncSession, *, before: datetime, up_to_seq: int,
    dealer_id: str | None, customer_id: str | None,
) -> list[int]:
    conds: list[Any] = [AuditRecordRow.at < before, AuditRecordRow.seq <= up_to_seq,
                        AuditRecordRow.entry.is_not(None)]
    if customer_id is not None:
        conds.append(AuditRecordRow.customer_id == customer_id)
    elif dealer_id is not None:
        conds.append(AuditRecordRow.dealer_id == dealer_id)
    q = select(AuditRecordRow.seq).where(*conds).order_by(AuditRecordRow.seq)
    return [int(x) for x in (await s.execute(q)).scalars().all()]


async def tombstone(s: AsyncSession, seqs: Sequence[int], *, pruned_by: int) -> None:
    """Drop the content of records ``seqs`` (hash and prev stay) and their personal values."""
    for i in range(0, len(seqs), 5000):
        chunk = list(seqs[i:i + 5000])
        await s.execute(update(AuditRecordRow).where(AuditRecordRow.seq.in_(chunk))
                        .values(entry=None, pruned_by=pruned_by))
        await s.execute(delete(AuditPersonalRow).where(AuditPersonalRow.seq.in_(chunk)))


async def count_records(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(AuditRecordRow))).scalar_one())


async def tenant_in_log(s: AsyncSession, *, dealer_id: str | None = None, customer_id: str | None = None) -> bool:
    """Whether the audit log holds records of this dealer (or customer) id: a tenant deleted since
    still has its records (``printgate audit export --dealer``)."""
    column = AuditRecordRow.dealer_id if dealer_id is not None else AuditRecordRow.customer_id
    found = await s.scalar(select(AuditRecordRow.seq).where(column == (dealer_id or customer_id)).limit(1))
    return found is not None
