"""Canonical serialisation of audit entries: RFC 8785 (JSON Canonicalization Scheme).

Every hashed or signed byte string in the audit trail is the RFC 8785 form of
a JSON value: UTF-8, no insignificant whitespace, object members sorted by
the UTF-16 code units of their names, strings with only ``"``, ``\\`` and the
C0 controls escaped (``\\b \\t \\n \\f \\r`` short forms, others ``\\u00xx``),
numbers in the ECMAScript shortest form (integers within +-2**53).

``canonical_bytes`` takes a fast path through the C ``json`` encoder when the
value holds no floats, only BMP object keys and safe integers -- for those
inputs ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
produces exactly the RFC 8785 bytes (a property test checks this against the
``rfc8785`` reference package); anything else goes through ``rfc8785.dumps``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

import rfc8785

from audit.errors import NotCanonicalisable

_SAFE_INT = 2**53 - 1


def _fast_path_ok(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None or v is True or v is False or type(v) is str:
            continue
        if type(v) is int:
            if -_SAFE_INT <= v <= _SAFE_INT:
                continue
            return False
        if type(v) is dict:
            for k, item in v.items():
                if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                    return False
                stack.append(item)
            continue
        if type(v) is list:
            stack.extend(v)
            continue
        return False
    return True


def fast_path_ok(value: Any) -> bool:
    """Whether ``json.dumps`` yields the RFC 8785 bytes of ``value``."""
    return _fast_path_ok(value)


def canonical_bytes(value: Any, *, known_fast: bool = False) -> bytes:
    """The RFC 8785 bytes of ``value`` (dicts, lists, str, int, float, bool, None).

    ``known_fast`` skips the walk when the caller already checked ``fast_path_ok``.
    """
    if known_fast or _fast_path_ok(value):
        try:
            return json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise NotCanonicalisable(f"audit value holds a lone surrogate: {exc}") from exc
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise NotCanonicalisable(
            f"audit value cannot be canonicalised (RFC 8785): {exc}; "
            "use str, int within +-2**53, finite float, bool, None, list or dict"
        ) from exc


def to_json_value(value: Any) -> Any:
    """Normalise a caller's value into plain JSON types (tuples/sets -> lists, enums,
    datetimes and other scalars -> str). Mapping keys become strings."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, enum.Enum):
        return to_json_value(value.value)
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_json_value(v) for v in value), key=repr)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
