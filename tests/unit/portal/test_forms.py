"""The filter-form parser shared by the audit page and the device list."""

from __future__ import annotations

from dataclasses import dataclass

from portal.auditing.form import AuditForm
from portal.device_list import DeviceFilter
from portal.forms import known_fields, one_of


@dataclass(frozen=True)
class _Form:
    a: str = ""
    b: str = ""


def test_known_fields_strips_bounds_and_drops_unknown_keys() -> None:
    assert known_fields(_Form, {"a": "  x  ", "b": "y" * 50, "evil": "1"}, max_length=10) == {
        "a": "x", "b": "y" * 10}


def test_one_of_falls_back_to_the_default() -> None:
    assert one_of("site", {"customer", "site"}, "customer") == "site"
    assert one_of("sites", {"customer", "site"}, "customer") == "customer"
    assert one_of("x", {"a"}) == ""


def test_both_filters_read_through_it() -> None:
    form = AuditForm.of({"actor": " tech@example.org ", "session_id": "s" * 400, "page": "2"})
    assert form.actor == "tech@example.org" and len(form.session_id) == 320
    flt = DeviceFilter.of(q="  printer ", status="bogus", alert="open", group="everything")
    assert (flt.q, flt.status, flt.alert, flt.group) == ("printer", "", "open", "customer")
