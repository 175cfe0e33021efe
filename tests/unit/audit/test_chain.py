"""The hash chain alone: entries link to their predecessor, personal values only as salted commitments."""

import hashlib
import json
from datetime import UTC, datetime

import pytest
import rfc8785

from audit.chain import (
    GENESIS,
    build_entry,
    commit_personal,
    format_at,
    link_of,
    parse_at,
    prepare,
    seal,
)
from audit.errors import NotCanonicalisable
from printgate.domain import AuditEventIn, Outcome


def _salt(n: int) -> bytes:
    return b"s" * n


def _sealed(event: AuditEventIn, seq: int, prev: str) -> tuple[bytes, str]:
    p = prepare(event, _salt)
    return seal(build_entry(p, seq=seq, at=format_at(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)), prev=prev))


def test_an_entry_is_its_rfc8785_bytes_and_links_to_its_predecessor() -> None:
    first_bytes, first_hash = _sealed(AuditEventIn(type="dwa.session.opened", session_id="s1"), 1, GENESIS)
    second_bytes, second_hash = _sealed(AuditEventIn(type="dwa.session.closed", session_id="s1"), 2, first_hash)
    assert first_bytes == rfc8785.dumps(json.loads(first_bytes))
    assert first_hash == hashlib.sha256(first_bytes).hexdigest()
    assert link_of(first_bytes) == (GENESIS, 1)
    assert link_of(second_bytes) == (first_hash, 2)
    assert second_hash != first_hash


def test_personal_values_are_committed_not_stored() -> None:
    data, _ = _sealed(AuditEventIn(type="auth.login", outcome=Outcome.FAILURE, actor="alice@example.org",
                                   source_ip="127.0.0.9"), 1, GENESIS)
    entry = json.loads(data)
    assert b"alice" not in data and b"127.0.0.9" not in data
    assert entry["personal"]["actor"] == commit_personal("actor", "alice@example.org", _salt(16))


def test_times_round_trip_in_utc_microseconds() -> None:
    at = datetime(2026, 11, 25, 15, 49, 59, 794833, tzinfo=UTC)
    assert format_at(at) == "2026-11-25T15:49:59.794833Z" and parse_at(format_at(at)) == at


def test_an_event_without_a_type_or_with_a_reserved_personal_field_is_refused() -> None:
    with pytest.raises(NotCanonicalisable):
        prepare(AuditEventIn(type=""), _salt)
    with pytest.raises(NotCanonicalisable):
        prepare(AuditEventIn(type="x", personal={"seq": "1"}), _salt)
