"""Checking an agent's readings upload before anything is stored.

The payload is UTF-8 JSON ``{"readings": [Reading.to_dict(), ...]}``. Every
reading must parse completely, or the whole batch is refused (the agent keeps
it queued), so a bad upload never half-lands.
"""

from __future__ import annotations

import json

from printgate.domain import Reading
from printgate.errors import ReadingsPayloadInvalid

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_READINGS = 10_000
MAX_ID = 64


def _refuse(batch_id: str, why: str) -> ReadingsPayloadInvalid:
    return ReadingsPayloadInvalid(
        f"readings batch {batch_id[:64]!r} refused, nothing stored: {why}; "
        "the agent must send UTF-8 JSON {\"readings\": [Reading.to_dict(), ...]}"
    )


def parse_payload(batch_id: str, payload: bytes) -> list[Reading]:
    """The readings of ``payload``; raises ``ReadingsPayloadInvalid`` naming the first problem."""
    if not batch_id or len(batch_id) > MAX_ID:
        raise _refuse(batch_id, f"batch id must be 1..{MAX_ID} characters")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _refuse(batch_id, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _refuse(batch_id, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _refuse(batch_id, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
        raise _refuse(batch_id, 'top level must be an object with a "readings" list')
    items = body["readings"]
    if len(items) > MAX_READINGS:
        raise _refuse(batch_id, f"{len(items)} readings exceed the limit of {MAX_READINGS} per batch")
    readings: list[Reading] = []
    ids: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise _refuse(batch_id, f"reading #{n} is not an object")
        try:
            reading = Reading.from_dict(item)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _refuse(batch_id, f"reading #{n} is malformed ({type(exc).__name__}: {exc})") from None
        problem = _problem_of(reading)
        if problem:
            raise _refuse(batch_id, f"reading #{n} {problem}")
        if reading.id in ids:
            raise _refuse(batch_id, f"reading #{n} repeats id {reading.id!r}")
        ids.add(reading.id)
        readings.append(reading)
    return readings


def _problem_of(r: Reading) -> str | None:
    if not r.id or len(r.id) > MAX_ID:
        return f"has an id of {len(r.id)} characters (1..{MAX_ID} allowed)"
    if not r.ip or len(r.ip) > 64:
        return "has no usable ip"
    if r.taken_at.tzinfo is None:
        return "has taken_at without a time zone"
    if r.serial is not None and len(r.serial) > 128:
        return "has a serial longer than 128 characters"
    if not r.kinds:
        return "names no reading kinds"
    for field_name, values in (("counters", r.counters), ("supplies", r.supplies), ("alerts", r.alerts)):
        if not isinstance(values, tuple):
            return f"has a malformed {field_name} list"
    for c in r.counters:
        if not isinstance(c.name, str) or not isinstance(c.unit, str):
            return f"has a malformed counter {c.name!r}"
    for s in r.supplies:
        if not isinstance(s.index, int) or not isinstance(s.description, str):
            return f"has a malformed supply #{s.index!r}"
        if s.level is not None and not isinstance(s.level, int):
            return f"has a non-integer level for supply #{s.index}"
        if s.max_capacity is not None and not isinstance(s.max_capacity, int):
            return f"has a non-integer capacity for supply #{s.index}"
    for a in r.alerts:
        if not isinstance(a.index, int) or not all(
            isinstance(v, str) for v in (a.severity, a.group, a.code, a.description)
        ):
            return f"has a malformed alert #{a.index!r}"
    return None
