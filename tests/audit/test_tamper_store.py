"""Tampering with the live store (as a database administrator would) is detected."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from audit.checkpoint import Checkpoint, Signer
from audit.export import verify_store
from audit.log import AuditLog
from audit.verify import Damage
from printgate.store import audit as store
from printgate.store.db import Database
from tests.audit.conftest import BuiltLog, sample_events


def tamper(path: Path, kind: str, seq: int, other: int) -> set[Damage]:
    """Apply one mutation with plain SQL; return the damage kinds that name it."""
    c = sqlite3.connect(path)
    try:
        if kind == "change_entry":
            c.execute("UPDATE audit_records SET entry = replace(entry, '\"status\":200', '\"status\":201') WHERE seq = ?", (seq,))
            return {Damage.CHANGED}
        if kind == "change_column":
            c.execute("UPDATE audit_records SET customer_id = 'cust-evil' WHERE seq = ?", (seq,))
            return {Damage.CHANGED}
        if kind == "change_personal":
            if seq % 2:
                c.execute("UPDATE audit_personal SET fields = json_set(fields, '$.actor[0]', 'intruder@example') WHERE seq = ?", (seq,))
            else:
                c.execute("UPDATE audit_personal SET actor = 'intruder@example' WHERE seq = ?", (seq,))
            return {Damage.CHANGED}
        if kind == "delete":
            c.execute("DELETE FROM audit_records WHERE seq = ?", (seq,))
            return {Damage.DELETED}
        if kind == "reorder":
            c.execute("UPDATE audit_records SET seq = -1 WHERE seq = ?", (seq,))
            c.execute("UPDATE audit_records SET seq = ? WHERE seq = ?", (seq, other))
            c.execute("UPDATE audit_records SET seq = ? WHERE seq = -1", (other,))
            return {Damage.REORDERED, Damage.CHANGED}
        if kind == "prune_without_retention":
            c.execute("UPDATE audit_records SET entry = NULL, pruned_by = 60 WHERE seq = ?", (seq,))
            return {Damage.DELETED}
        if kind == "insert_tail":
            row = c.execute("SELECT at, schema_version, type, outcome, entry, hash FROM audit_records WHERE seq = 60").fetchone()
            c.execute(
                "INSERT INTO audit_records (seq, at, schema_version, type, outcome, entry, hash, prev) "
                "VALUES (61, ?, ?, ?, ?, replace(?, '\"seq\":60', '\"seq\":61'), ?, ?)",
                (row[0], row[1], row[2], row[3], row[4], "ab" * 32, row[5]),
            )
            return {Damage.INSERTED, Damage.CHANGED}
        raise AssertionError(kind)
    finally:
        c.commit()
        c.close()


KINDS = ["change_entry", "change_column", "change_personal", "delete", "reorder",
         "prune_without_retention", "insert_tail"]


async def test_an_untouched_store_verifies(copied_db: tuple[Database, Path], signer: Signer) -> None:
    db, _ = copied_db
    report = await verify_store(db, signer.verifier())
    assert report.ok, report.problem
    assert report.records == 60 and report.anchored == 60


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), seq=st.integers(min_value=1, max_value=60), other=st.integers(min_value=1, max_value=60))
async def test_any_single_store_mutation_is_detected_and_named(
    built_log: BuiltLog, signer: Signer, tmp_path_factory: pytest.TempPathFactory,
    kind: str, seq: int, other: int,
) -> None:
    if kind == "reorder" and seq == other:
        other = seq % 60 + 1
    path = tmp_path_factory.mktemp("tamper") / "t.db"
    shutil.copy(built_log.db_file, path)
    expected = tamper(path, kind, seq, other)
    async with Database(f"sqlite+aiosqlite:///{path}") as db:
        report = await verify_store(db, signer.verifier())
    assert not report.ok
    assert report.problem is not None
    assert report.problem.kind in expected, report.problem
    if kind in ("change_entry", "change_column", "change_personal", "delete"):
        assert report.problem.seq == seq, report.problem


@pytest.mark.parametrize("mutation", ["UPDATE audit_records SET entry = replace(entry, '\"status\"\\:200', '\"status\"\\:201') WHERE seq = 5",
                                      "DELETE FROM audit_records WHERE seq = 5",
                                      "UPDATE audit_records SET dealer_id = 'dealer-9' WHERE seq = 5"])
async def test_store_tampering_is_detected_on_both_backends(db: Database, signer: Signer, mutation: str) -> None:
    log = AuditLog(db, signer, checkpoint_every=4)
    await log.append_many(sample_events(12))
    assert (await verify_store(db, signer.verifier())).ok
    async with db.transaction() as s:
        await s.execute(text(mutation))
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None
    assert report.problem.seq == 5
    assert report.problem.kind in (Damage.CHANGED, Damage.DELETED)


async def test_truncating_the_newest_records_with_their_checkpoints_fails_against_a_kept_checkpoint(
    copied_db: tuple[Database, Path], signer: Signer
) -> None:
    db, path = copied_db
    kept = next(c for c in await store.checkpoints(db) if c.tree_size == 60)
    anchor = Checkpoint(60, kept.root, kept.head, kept.at, kept.key_id, kept.signature)
    c = sqlite3.connect(path)
    head = c.execute("SELECT hash FROM audit_records WHERE seq = 50").fetchone()[0]
    c.execute("DELETE FROM audit_records WHERE seq > 50")
    c.execute("DELETE FROM audit_personal WHERE seq > 50")
    c.execute("DELETE FROM audit_checkpoints WHERE tree_size > 50")
    c.execute("UPDATE audit_head SET seq = 50, hash = ?", (head,))
    c.commit()
    c.close()
    assert (await verify_store(db, signer.verifier())).ok  # a consistent truncation on its own
    report = await verify_store(db, signer.verifier(), anchors=[anchor])
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (Damage.DELETED, 51)
    assert "known checkpoint 60" in report.problem.message


async def test_a_checkpoint_row_forged_without_the_key_is_reported(copied_db: tuple[Database, Path], signer: Signer) -> None:
    db, path = copied_db
    c = sqlite3.connect(path)
    c.execute("UPDATE audit_checkpoints SET root = ? WHERE tree_size = 32", ("11" * 32,))
    c.commit()
    c.close()
    report = await verify_store(db, signer.verifier())
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (Damage.FORGED_CHECKPOINT, 32)
