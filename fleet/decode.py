"""The readings contract at the edge: an uploaded batch becomes checked domain readings.

Version 2 (``ReadingsBatch.readings``, typed protobuf) and version 1 (older agents:
``payload_json``, UTF-8 JSON ``{"readings": [Reading.to_dict(), ...]}``) are both read.
A batch as a whole is refused (``ReadingsPayloadInvalid``, nothing stored, the agent keeps
it) only when it cannot be read at all: no batch id, too big, not JSON, an unknown version.
Each reading is then checked on its own: a bad one is refused with a reason (the agent sees
it in the acknowledgement) and the others are stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from printgate.domain import Reading
from printgate.errors import ReadingsPayloadInvalid
from printgate.wire import agent_pb2 as pb
from printgate.wire.convert import reading_from_wire

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_READINGS = 10_000
MAX_ID = 64
MAX_TEXT = 1024
MAX_ITEMS = 512  # counters, supplies or alerts of one reading
MAX_COUNTER = 2**63 - 1
SUPPORTED_VERSIONS = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A reading refused on its own: its place in the batch, its id (as sent) and why."""

    position: int
    reading_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    batch_id: str
    version: int
    readings: list[Reading] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.readings) + len(self.rejected)


def _refuse(batch_id: str, why: str) -> ReadingsPayloadInvalid:
    return ReadingsPayloadInvalid(
        f"readings batch {batch_id[:64]!r} refused, nothing stored: {why}; the agent must send "
        "ReadingsBatch version 2 (typed readings) or version 1 (UTF-8 JSON {\"readings\": [...]})"
    )


def decode_batch(batch: pb.ReadingsBatch) -> DecodedBatch:
    """The checked readings of an upload; raises ``ReadingsPayloadInvalid`` for an unreadable batch."""
    if not batch.batch_id or len(batch.batch_id) > MAX_ID:
        raise _refuse(batch.batch_id, f"batch id must be 1..{MAX_ID} characters")
    if batch.version not in SUPPORTED_VERSIONS:
        raise _refuse(batch.batch_id, f"unknown readings version {batch.version} (this cloud reads 1 and 2)")
    if batch.version == 2:
        if batch.payload_json:
            raise _refuse(batch.batch_id, "a version 2 batch carries typed readings, not payload_json")
        if len(batch.readings) > MAX_READINGS:
            raise _refuse(batch.batch_id, f"{len(batch.readings)} readings exceed the limit of {MAX_READINGS}")
        out = _Collector(batch.batch_id, 2)
        for n, msg in enumerate(batch.readings):
            try:
                reading = reading_from_wire(msg)
            except (ValueError, TypeError, OverflowError) as exc:
                out.reject(n, msg.id, f"is malformed ({exc})")
                continue
            out.add(n, reading)
        return out.result()
    if batch.readings:
        raise _refuse(batch.batch_id, "a version 1 batch carries payload_json, not typed readings")
    return decode_v1(batch.batch_id, batch.payload_json)


def decode_v1(batch_id: str, payload: bytes) -> DecodedBatch:
    """A version 1 upload (JSON), as agents before issue 17 send it."""
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
    out = _Collector(batch_id, 1)
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            out.reject(n, "", "is not an object")
            continue
        try:
            reading = Reading.from_dict(item)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            out.reject(n, str(item.get("id", ""))[:MAX_ID], f"is malformed ({type(exc).__name__}: {exc})")
            continue
        out.add(n, reading)
    return out.result()


class _Collector:
    def __init__(self, batch_id: str, version: int) -> None:
        self.batch_id, self.version = batch_id, version
        self.readings: list[Reading] = []
        self.rejected: list[Rejection] = []
        self._ids: set[str] = set()

    def reject(self, n: int, reading_id: str, why: str) -> None:
        self.rejected.append(Rejection(n, reading_id[:MAX_ID], f"reading #{n} {why}"[:500]))

    def add(self, n: int, reading: Reading) -> None:
        problem = problem_of(reading)
        if problem is None and reading.id in self._ids:
            problem = f"repeats id {reading.id!r}"
        if problem is not None:
            self.reject(n, reading.id, problem)
            return
        self._ids.add(reading.id)
        self.readings.append(reading)

    def result(self) -> DecodedBatch:
        return DecodedBatch(self.batch_id, self.version, self.readings, self.rejected)


def problem_of(r: Reading) -> str | None:
    """What makes a decoded reading unfit to store, or None."""
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
        if len(values) > MAX_ITEMS:
            return f"has {len(values)} {field_name} (at most {MAX_ITEMS})"
    for c in r.counters:
        if not isinstance(c.name, str) or not isinstance(c.unit, str) or not c.name or len(c.name) > 128:
            return f"has a malformed counter {str(c.name)[:64]!r}"
        if not isinstance(c.value, int) or not 0 <= c.value <= MAX_COUNTER:
            return f"has counter {c.name[:64]!r} = {c.value!r} (a lifetime counter is 0..2^63-1)"
    for s in r.supplies:
        if not isinstance(s.index, int) or not isinstance(s.description, str) or len(s.description) > MAX_TEXT:
            return f"has a malformed supply #{s.index!r}"
        if s.level is not None and not isinstance(s.level, int):
            return f"has a non-integer level for supply #{s.index}"
        if s.max_capacity is not None and not isinstance(s.max_capacity, int):
            return f"has a non-integer capacity for supply #{s.index}"
        for name, v in (("level", s.level), ("capacity", s.max_capacity)):
            if v is not None and not -3 <= v <= 2**31 - 1:
                return f"has supply #{s.index} {name} {v} (RFC 3805: -3..2^31-1)"
    for a in r.alerts:
        if not isinstance(a.index, int) or not all(
            isinstance(v, str) for v in (a.severity, a.group, a.code, a.description)
        ):
            return f"has a malformed alert #{a.index!r}"
    return None
