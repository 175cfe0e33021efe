"""Strings made valid for the audit trail: escaped bytes become %XX, valid text is untouched."""

from __future__ import annotations

from audit.canonical import canonical_bytes
from gateway.proxy.audit_safe import safe_event, safe_text, safe_value
from printgate.domain import AuditEventIn


def test_escaped_bytes_and_other_surrogates_are_percent_escaped():
    assert safe_text("/\udcff") == "/%FF"
    assert safe_text("/\udced\udca0\udc80") == "/%ED%A0%80"
    assert safe_text("a\ud800b") == "a%uD800b"


def test_valid_text_is_returned_as_it_is():
    for text in ("/status", "Drucker Büro", "打印机", "%FF"):
        assert safe_text(text) is text


def test_nested_values_and_keys_become_canonicalisable():
    value = {"path": "/\udcff", "refused_data": {"headers": {"names": ["x-\udcfe"]}}, "\udcfa": 1, "n": 3}
    out = safe_value(value)
    assert out == {"path": "/%FF", "refused_data": {"headers": {"names": ["x-%FE"]}}, "%FA": 1, "n": 3}
    canonical_bytes(out)


def test_an_event_is_copied_only_when_something_changed():
    clean = AuditEventIn(type="dwa.request", details={"path": "/"})
    assert safe_event(clean) is clean
    dirty = AuditEventIn(type="dwa.request", details={"path": "/\udcff"}, personal={"login": "\udcc3"})
    fixed = safe_event(dirty)
    assert fixed.details == {"path": "/%FF"} and fixed.personal == {"login": "%C3"}
