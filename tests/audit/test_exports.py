"""Tenant (subset) exports with inclusion proofs, pseudonymised exports, CEF."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.canonical import canonical_bytes
from audit.checkpoint import Signer
from audit.export import cef_line, export_jsonl
from audit.query import AuditFilter
from audit.stream import parse_line, read_export
from audit.verify import Damage, verify_items
from printgate.domain import AuditRecord
from printgate.store.db import Database
from tests.audit.conftest import BuiltLog


@pytest.fixture
async def subset_lines(copied_db: tuple[Database, Path], tmp_path: Path) -> list[bytes]:
    db, _ = copied_db
    await export_jsonl(db, tmp_path / "c1.jsonl", subset=AuditFilter(customer_id="cust-1", limit=10**6))
    return (tmp_path / "c1.jsonl").read_bytes().splitlines()


def verify(lines: list[bytes], signer: Signer):  # type: ignore[no-untyped-def]
    return verify_items((parse_line(r, n) for n, r in enumerate(lines, 1)), signer.verifier())


def test_a_customer_export_holds_only_its_records_and_verifies_by_proofs(subset_lines: list[bytes], signer: Signer) -> None:
    records = [json.loads(r) for r in subset_lines if r.startswith(b'{"at":')]
    assert len(records) == 20 and {r["customer_id"] for r in records} == {"cust-1"}
    report = verify(subset_lines, signer)
    assert report.ok, report.problem
    assert report.records == 20 and report.anchored == 20


def test_a_changed_record_in_a_customer_export_fails_its_proof(subset_lines: list[bytes], signer: Signer) -> None:
    lines = list(subset_lines)
    pos = [i for i, r in enumerate(lines) if r.startswith(b'{"at":')][5]
    entry = json.loads(lines[pos])
    entry["outcome"] = "success" if entry["outcome"] != "success" else "denied"
    lines[pos] = canonical_bytes(entry)
    report = verify(lines, signer)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (Damage.CHANGED, entry["seq"])


def test_reordered_records_in_a_customer_export_are_detected(subset_lines: list[bytes], signer: Signer) -> None:
    lines = list(subset_lines)
    recs = [i for i, r in enumerate(lines) if r.startswith(b'{"at":')]
    a, b = recs[2], recs[3]
    lines[a:a + 2], lines[b:b + 2] = lines[b:b + 2], lines[a:a + 2]
    report = verify(lines, signer)
    assert report.problem is not None and report.problem.kind is Damage.REORDERED


async def test_a_default_export_is_pseudonymised_and_still_verifies(
    copied_db: tuple[Database, Path], tmp_path: Path, signer: Signer
) -> None:
    db, _ = copied_db
    await export_jsonl(db, tmp_path / "p.jsonl")
    text = (tmp_path / "p.jsonl").read_text()
    assert "@dealer.example" not in text and "127.0.0." not in text
    report = verify_items(read_export(tmp_path / "p.jsonl"), signer.verifier())
    assert report.ok and report.personal_checked == 0


def test_the_full_export_fixture_reveals_personal_values_only_when_asked(built_log: BuiltLog) -> None:
    assert any(b"@dealer.example" in r for r in built_log.export_lines)


def test_cef_lines_escape_separators_and_keep_seq_and_hash() -> None:
    rec = AuditRecord(seq=7, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), schema_version=1,
                      type="dwa|request", outcome="blocked", prev_hash="0" * 64, hash="ab" * 32,
                      actor="eve=x\\y", source_ip="127.0.0.2", details={"why": "upload\nblocked"})
    line = cef_line(rec)
    assert line.startswith("CEF:0|printgate|printgate|0.1.0|dwa\\|request|dwa\\|request|7|")
    assert "suser=eve\\=x\\\\y" in line and "src=127.0.0.2" in line
    assert "cs1Label=seq cs1=7" in line and f"cs2={'ab' * 32}" in line
    assert "\n" not in line and "rt=1767323045000" in line
