from __future__ import annotations

import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_bytes, to_json_value
from audit.errors import NotCanonicalisable

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_bytes_equal_the_rfc8785_reference(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_bytes(value).index("\U0001f600".encode()) < canonical_bytes(value).index("\ufb01".encode())


def test_unrepresentable_values_are_refused_with_a_reason() -> None:
    with pytest.raises(NotCanonicalisable, match="RFC 8785"):
        canonical_bytes({"x": math.nan})
    with pytest.raises(NotCanonicalisable):
        canonical_bytes({"x": 2**60})


def test_caller_values_are_normalised_to_plain_json() -> None:
    import datetime as dt
    import enum

    class Colour(enum.StrEnum):
        RED = "red"

    value = to_json_value({"c": Colour.RED, "t": (1, 2), "s": {3}, "d": dt.date(2026, 1, 2), 5: None})
    assert value == {"c": "red", "t": [1, 2], "s": [3], "d": "2026-01-02", "5": None}
    assert canonical_bytes(value) == rfc8785.dumps(value)
