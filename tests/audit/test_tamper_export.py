"""Any single change, deletion, insertion or reorder of an export is detected."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_bytes
from audit.checkpoint import Signer
from audit.stream import parse_line
from audit.verify import Damage, VerifyReport, verify_items
from tests.audit.conftest import BuiltLog

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def verify_lines(lines: list[bytes], signer: Signer) -> VerifyReport:
    return verify_items((parse_line(raw, n) for n, raw in enumerate(lines, 1)), signer.verifier())


def record_positions(lines: list[bytes]) -> list[int]:
    return [i for i, raw in enumerate(lines) if raw.startswith(b'{"at":')]


def seq_of(raw: bytes) -> int:
    return int(json.loads(raw)["seq"])


def test_an_untouched_export_verifies_with_every_record_anchored(built_log: BuiltLog, signer: Signer) -> None:
    report = verify_lines(built_log.export_lines, signer)
    assert report.ok, report.problem
    assert report.records == built_log.records
    assert report.anchored == built_log.records
    assert report.checkpoints == 4  # 16, 32, 48 and the head (60)
    assert report.personal_checked == built_log.records * 2


def test_verification_needs_the_right_public_key(built_log: BuiltLog) -> None:
    report = verify_lines(built_log.export_lines, Signer.generate())
    assert report.problem is not None and report.problem.kind is Damage.FORGED_CHECKPOINT


@PROPS
@given(data=st.data())
def test_any_changed_record_is_named(built_log: BuiltLog, signer: Signer, data: st.DataObject) -> None:
    lines = list(built_log.export_lines)
    pos = data.draw(st.sampled_from(record_positions(lines)))
    entry = json.loads(lines[pos])
    field = data.draw(st.sampled_from(["details", "outcome", "type", "customer_id", "at", "personal"]))
    entry[field] = {"tampered": True} if field in ("details", "personal") else "tampered"
    lines[pos] = canonical_bytes(entry)
    report = verify_lines(lines, signer)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.kind is Damage.CHANGED
    assert report.problem.seq == entry["seq"]


@PROPS
@given(data=st.data())
def test_any_flipped_byte_is_detected(built_log: BuiltLog, signer: Signer, data: st.DataObject) -> None:
    lines = list(built_log.export_lines)
    pos = data.draw(st.integers(min_value=1, max_value=len(lines) - 1))
    raw = bytearray(lines[pos])
    at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    new = data.draw(st.sampled_from(b"0123456789abcdefxyz\"{}:,"))
    if raw[at] == new:
        new = ord("q") if new != ord("q") else ord("r")
    raw[at] = new
    lines[pos] = bytes(raw)
    assert not verify_lines(lines, signer).ok


@PROPS
@given(data=st.data())
def test_any_deleted_record_is_named(built_log: BuiltLog, signer: Signer, data: st.DataObject) -> None:
    lines = list(built_log.export_lines)
    pos = data.draw(st.sampled_from(record_positions(lines)))
    seq = seq_of(lines[pos])
    del lines[pos]
    if pos < len(lines) and lines[pos].startswith(b'{"@personal"'):
        del lines[pos]
    report = verify_lines(lines, signer)
    assert report.problem is not None
    assert report.problem.kind is Damage.DELETED
    assert report.problem.seq == seq


@PROPS
@given(data=st.data())
def test_any_inserted_record_is_detected(built_log: BuiltLog, signer: Signer, data: st.DataObject) -> None:
    lines = list(built_log.export_lines)
    records = record_positions(lines)
    src = data.draw(st.sampled_from(records))
    dst = data.draw(st.sampled_from([*records, len(lines)]))
    forged = json.loads(lines[src])
    if data.draw(st.booleans()):
        forged["details"] = {"forged": True}
    lines.insert(dst, canonical_bytes(forged))
    report = verify_lines(lines, signer)
    assert report.problem is not None
    assert report.problem.kind in (Damage.INSERTED, Damage.CHANGED, Damage.REORDERED)


@PROPS
@given(data=st.data())
def test_any_reordered_pair_of_records_is_detected(built_log: BuiltLog, signer: Signer, data: st.DataObject) -> None:
    lines = list(built_log.export_lines)
    records = record_positions(lines)
    i, j = data.draw(st.lists(st.sampled_from(records), min_size=2, max_size=2, unique=True))
    lines[i], lines[j] = lines[j], lines[i]
    report = verify_lines(lines, signer)
    assert report.problem is not None
    assert report.problem.kind is Damage.REORDERED
    assert report.problem.seq == max(seq_of(lines[min(i, j)]), seq_of(lines[max(i, j)]))


def test_a_changed_clear_personal_value_is_detected(built_log: BuiltLog, signer: Signer) -> None:
    lines = list(built_log.export_lines)
    pos = next(i for i, raw in enumerate(lines) if raw.startswith(b'{"@personal"'))
    body = json.loads(lines[pos])
    body["@personal"]["fields"]["actor"]["value"] = "someone-else@example"
    lines[pos] = canonical_bytes(body)
    report = verify_lines(lines, signer)
    assert report.problem is not None and report.problem.kind is Damage.CHANGED
    assert "personal" in report.problem.message


def test_a_checkpoint_with_a_rewritten_root_is_reported_as_forged(built_log: BuiltLog, signer: Signer) -> None:
    lines = list(built_log.export_lines)
    pos = next(i for i, raw in enumerate(lines) if raw.startswith(b'{"@checkpoint"'))
    body = json.loads(lines[pos])
    body["@checkpoint"]["root"] = "00" * 32
    lines[pos] = canonical_bytes(body)
    report = verify_lines(lines, signer)
    assert report.problem is not None and report.problem.kind is Damage.FORGED_CHECKPOINT


def test_a_consistently_rechained_history_contradicts_the_signed_checkpoint(
    built_log: BuiltLog, signer: Signer
) -> None:
    from audit.chain import seal

    lines = list(built_log.export_lines)
    prev = None
    for pos in record_positions(lines):
        entry = json.loads(lines[pos])
        if prev is not None:
            entry["prev"] = prev
        if entry["seq"] == 20:
            entry["details"] = {"rewritten": True}
        data, prev = seal(entry)
        lines[pos] = data if entry["seq"] >= 20 else lines[pos]
        if entry["seq"] < 20:
            prev = None if entry["seq"] < 19 else prev
    report = verify_lines(lines, signer)
    assert report.problem is not None
    assert report.problem.kind is Damage.REWRITTEN
    assert report.problem.seq == 17
