"""Exports of the audit log: JSONL with checkpoints/proofs (``audit.stream``
format) and ArcSight CEF; verification of a live store.

A full export is the whole chain with every signed checkpoint placed right
after its last record, and the witnesses' cosignatures right after the
header. A subset export (one dealer's or customer's records)
carries, per record, an RFC 6962 inclusion proof against the newest signed
checkpoint that covers it, so a tenant can verify its share without seeing
anyone else's events, and the witnesses' cosignatures, each with a
consistency proof from the checkpoint it cosigned to the export's.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.cosignature import Cosignature, WitnessVerifier
from audit.keyset import AuditKeySet
from audit.merkle import MerkleTree, leaf_hash
from audit.query import AuditFilter, row_to_record, search_all
from audit.stream import (
    checkpoint_line,
    consistency_line,
    cosignature_line,
    header_line,
    personal_line,
    proof_line,
    read_export,
    tombstone_line,
)
from audit.verify import Damage, Problem, VerifyReport, verify_items
from printgate.domain import AuditRecord
from printgate.errors import AuditIntegrityError
from printgate.store import audit as store
from printgate.store.db import Database


@dataclass(frozen=True, slots=True)
class ExportSummary:
    records: int
    checkpoints: int
    path: str


def _cp(row: Any) -> Checkpoint:
    return Checkpoint(int(row.tree_size), row.root, row.head, row.at, row.key_id, row.signature)


def cosignature_of(row: Any) -> Cosignature:
    cp = Checkpoint(int(row.tree_size), row.root, row.head, row.checkpoint_at, row.key_id,
                    row.checkpoint_signature)
    return Cosignature(cp, row.witness, row.witness_public_key, row.cosigned_at, row.signature)


def _key_ids(cps: Sequence[Checkpoint], cosigs: Sequence[Cosignature]) -> list[str]:
    """The ids of the checkpoint keys a verifier needs for this export (its key set must hold them)."""
    return sorted({cp.key_id for cp in cps} | {c.checkpoint.key_id for c in cosigs})


async def _rows(db: Database) -> AsyncIterator[Any]:
    async for batch in store.iter_records(db):
        for row in batch:
            yield row


async def write_full(db: Database, out: IO[bytes], *, with_personal: bool = False) -> tuple[int, int]:
    """Write the whole chain as JSONL; returns (records, checkpoints)."""
    cps = [_cp(r) for r in await store.checkpoints(db)]
    cosigs = [cosignature_of(c) for c in await store.cosignatures(db)]
    out.write(header_line({"subset": False, "with_personal": with_personal,
                           "key_ids": _key_ids(cps, cosigs)}) + b"\n")
    for cosig in cosigs:
        out.write(cosignature_line(cosig) + b"\n")
    i = n = 0
    async for batch in store.iter_records(db):
        personal = (await store.personal_range(db, batch[0].seq, batch[-1].seq)
                    if with_personal else {})
        lines: list[bytes] = []
        for row in batch:
            if row.entry is None:
                lines.append(tombstone_line(row.seq, row.hash, row.prev, int(row.pruned_by or 0)))
            else:
                lines.append(row.entry.encode("utf-8"))
                if row.seq in personal:
                    lines.append(personal_line(row.seq, personal[row.seq]))
            n += 1
            while i < len(cps) and cps[i].tree_size <= row.seq:
                lines.append(checkpoint_line(cps[i]))
                i += 1
        out.write(b"\n".join(lines) + b"\n")
    for cp in cps[i:]:
        out.write(checkpoint_line(cp) + b"\n")
    return n, len(cps)


async def write_subset(
    db: Database, out: IO[bytes], f: AuditFilter, *, with_personal: bool = False
) -> tuple[int, int]:
    """Records matching ``f`` with inclusion proofs to the newest checkpoint."""
    cps = [_cp(r) for r in await store.checkpoints(db)]
    if not cps:
        raise AuditIntegrityError(
            "no signed checkpoint yet: run `printgate audit checkpoint --key KEY` before a tenant export"
        )
    cp = cps[-1]
    leaves: list[bytes] = []
    async for batch in store.iter_records(db):
        for row in batch:
            if row.seq > cp.tree_size:
                break
            leaves.append(leaf_hash(bytes.fromhex(row.hash)))
    tree = MerkleTree(leaves)
    cosigs = [cosignature_of(c) for c in await store.cosignatures(db)]
    out.write(header_line({"subset": True, "with_personal": with_personal,
                           "filter": {"dealer_id": f.dealer_id, "customer_id": f.customer_id},
                           "key_ids": _key_ids([cp], cosigs)}) + b"\n")
    out.write(checkpoint_line(cp) + b"\n")
    for cosig in cosigs:
        out.write(cosignature_line(cosig) + b"\n")
        size = cosig.checkpoint.tree_size
        if size < cp.tree_size == tree.size:
            out.write(consistency_line(size, cp.tree_size, tree.consistency_proof(size, cp.tree_size)) + b"\n")
    records = await search_all(db, f)
    n = 0
    async for batch in store.iter_records(db, seqs=[r.seq for r in records if r.seq <= cp.tree_size]):
        personal = await store.personal_for(db, [r.seq for r in batch]) if with_personal else {}
        for row in batch:
            if row.entry is None:
                continue
            out.write(row.entry.encode("utf-8") + b"\n")
            out.write(proof_line(row.seq, cp.tree_size, tree.inclusion_proof(row.seq - 1, cp.tree_size)) + b"\n")
            if row.seq in personal:
                out.write(personal_line(row.seq, personal[row.seq]) + b"\n")
            n += 1
    return n, 1


async def export_jsonl(
    db: Database, path: Path | str, *, subset: AuditFilter | None = None, with_personal: bool = False
) -> ExportSummary:
    # writes are buffered to a local file; opening is the only call that may block long
    out = await asyncio.to_thread(Path(path).open, "wb")
    with out:
        if subset is None:
            n, c = await write_full(db, out, with_personal=with_personal)
        else:
            n, c = await write_subset(db, out, subset, with_personal=with_personal)
    return ExportSummary(n, c, str(path))


# --- CEF -------------------------------------------------------------------

_SEVERITY = {"success": 3, "failure": 6, "denied": 7, "blocked": 7}


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_ext(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n"))


def cef_line(rec: AuditRecord, *, version: str = "0.1.0") -> str:
    """One ArcSight CEF:0 line for ``rec`` (seq and hash in custom strings)."""
    ext: list[tuple[str, str]] = [
        ("rt", str(int(rec.at.timestamp() * 1000))),
        ("outcome", rec.outcome),
        ("cs1Label", "seq"), ("cs1", str(rec.seq)),
        ("cs2Label", "hash"), ("cs2", rec.hash),
    ]
    if rec.actor is not None:
        ext.append(("suser", rec.actor))
    if rec.source_ip is not None:
        ext.append(("src", rec.source_ip))
    for key, label, value in (("cs3", "dealer", rec.dealer_id), ("cs4", "customer", rec.customer_id),
                              ("cs5", "device", rec.device_id), ("cs6", "session", rec.session_id)):
        if value is not None:
            ext += [(f"{key}Label", label), (key, value)]
    if rec.details:
        ext.append(("msg", json.dumps(rec.details, sort_keys=True, separators=(",", ":"))))
    head = "|".join(_cef_header(x) for x in (
        "printgate", "printgate", version, rec.type, rec.type, str(_SEVERITY.get(rec.outcome, 5))))
    return f"CEF:0|{head}|" + " ".join(f"{k}={_cef_ext(v)}" for k, v in ext)


async def export_cef(db: Database, path: Path | str, f: AuditFilter) -> ExportSummary:
    records = await search_all(db, f)
    text = "".join(cef_line(rec) + "\n" for rec in records)
    await asyncio.to_thread(Path(path).write_text, text, encoding="utf-8")
    return ExportSummary(len(records), 0, str(path))


# --- verifying a live store -------------------------------------------------

async def _column_problem(db: Database) -> Problem | None:
    """First record whose queryable columns disagree with its sealed entry."""
    async for batch in store.iter_records(db):
        for prow in await store.personal_rows(db, batch[0].seq, batch[-1].seq):
            for name in store.SEARCHABLE_PERSONAL:
                sealed = (prow.fields or {}).get(name)
                if getattr(prow, name) != (sealed[0] if sealed else None):
                    return Problem(Damage.CHANGED, prow.seq, None,
                                   f"searchable personal column {name} of record {prow.seq} was altered")
        for row in batch:
            if row.entry is None:
                continue
            try:
                e = json.loads(row.entry)
            except ValueError:
                return Problem(Damage.MALFORMED, row.seq, None, "entry is not JSON")
            rec = row_to_record(row)
            for name in ("type", "outcome", "dealer_id", "customer_id", "device_id", "session_id"):
                if e.get(name) != getattr(rec, name):
                    return Problem(Damage.CHANGED, row.seq, None,
                                   f"column {name} of record {row.seq} was altered "
                                   f"({getattr(rec, name)!r}, sealed {e.get(name)!r})")
            if e.get("seq") == row.seq and e.get("at") != row.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"):
                return Problem(Damage.CHANGED, row.seq, None, f"column at of record {row.seq} was altered")
    return None


async def verify_store(
    db: Database, verifier: CheckpointVerifier | AuditKeySet | None, *, anchors: Sequence[Checkpoint] = (),
    witnesses: Sequence[WitnessVerifier] = (), cosignatures: Sequence[Cosignature] = (),
) -> VerifyReport:
    """Verify the live store: chain, checkpoints, personal values, columns, head row
    (and that it still holds the history signed by ``anchors`` and cosigned by ``witnesses``)."""
    fd, tmp = tempfile.mkstemp(prefix="printgate-audit-", suffix=".jsonl")
    try:
        with os.fdopen(fd, "wb") as out:
            await write_full(db, out, with_personal=True)
        report = verify_items(read_export(tmp), verifier, anchors=anchors, witnesses=witnesses,
                              cosignatures=cosignatures)
    finally:
        os.unlink(tmp)
    column = await _column_problem(db)
    problem = report.problem
    if column is not None and (problem is None or (problem.seq or 0) >= (column.seq or 0)):
        problem = column
    if problem is None:
        head_seq, head_hash = await store.read_head(db)
        last = report.records + report.tombstones
        if head_seq > last:
            problem = Problem(Damage.DELETED, last + 1, None,
                              f"the chain head says {head_seq} records but only {last} are stored")
        elif head_seq < last or head_hash != report.head:
            problem = Problem(Damage.INSERTED, head_seq + 1, None,
                              f"records after {head_seq} were added without the chain lock")
    if problem is report.problem:
        return report
    return replace(report, ok=False, problem=problem)
