from __future__ import annotations

from datetime import UTC, datetime

from alerting.cef import cef_severity, extension
from alerting.engine import Alert
from integrations.syslog import format_cef
from printgate import __version__

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def alert(**kw) -> Alert:
    base = dict(id="abc", rule="signin.burst.source", category="sign_in", severity=3, kind="alert",
                title="Burst | of failed sign-ins", text="12 tries a=b\nnext \\ line", dealer_id="d1",
                customer_id="c1", key="source:1.2.3.4", subject="1.2.3.4", count=12, first_seq=1,
                last_seq=12, first_at=AT, last_at=AT, source_ip="1.2.3.4",
                details={"device_id": "dev1"})
    base.update(kw)
    return Alert(**base)


def test_the_extension_names_count_source_tenant_and_sequence_range() -> None:
    ext = extension(alert())
    assert ext["cnt"] == "12" and ext["src"] == "1.2.3.4" and ext["externalId"] == "abc"
    assert (ext["cs1Label"], ext["cs1"], ext["cs2Label"], ext["cs2"]) == ("dealer", "d1", "customer", "c1")
    assert (ext["cn1"], ext["cn2"], ext["deviceExternalId"]) == ("1", "12", "dev1")
    assert ext["rt"] == str(int(AT.timestamp() * 1000))
    assert "src" not in extension(alert(source_ip=None))


def test_severities_map_onto_the_cef_scale() -> None:
    assert [cef_severity(alert(severity=s)) for s in (1, 2, 3, 4)] == [3, 5, 8, 10]


def test_the_line_is_escaped_per_the_cef_rules() -> None:
    a = alert()
    line = format_cef(signature_id=a.rule, name=a.title, severity=cef_severity(a), extensions=extension(a))
    assert line.startswith(f"CEF:0|printgate|printgate|{__version__}|signin.burst.source|")
    assert "|signin.burst.source|Burst \\| of failed sign-ins|8|" in line
    assert "msg=12 tries a\\=b\\nnext \\\\ line" in line and "\n" not in line
