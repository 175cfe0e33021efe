"""The readings contract at the edge: an uploaded batch becomes checked domain readings.

Version 2 (``ReadingsBatch.readings``, typed protobuf) and version 1 (older agents:
``payload_json``, UTF-8 JSON ``{"readings": [Reading.to_dict(), ...]}``) are both read.
A batch as a whole is refused (``ReadingsPayloadInvalid``, nothing stored, the agent keeps
it) only when it cannot be read at all: no batch id, too big, not JSON, an unknown version.
Each reading is then checked on its own: a bad one is refused with a reason (the agent sees
it in the acknowledgement) and the others are stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from printgate.domain import (
    CounterValue,
    PrinterAlert,
    PrinterStatus,
    Reading,
    ReadingKind,
    SupplyLevel,
    SupplyState,
)
from printgate.errors import ReadingsPayloadInvalid
from printgate.store.readings import BIGINT_MAX, COLUMN_LIMITS, INTEGER_MAX
from printgate.wire import MAX_MESSAGE_BYTES
from printgate.wire import agent_pb2 as pb
from printgate.wire.convert import EPOCH, micros, reading_from_wire

MAX_PAYLOAD_BYTES = MAX_MESSAGE_BYTES  # what the channel transports at most
MAX_READINGS = 10_000
MAX_ID = 64
MAX_TEXT = 1024
MAX_ITEMS = 512  # counters, supplies or alerts of one reading
MAX_VALUES = 200_000  # counters + supplies + alerts over a whole batch (each becomes Python objects)
MAX_COUNTER = BIGINT_MAX
LIMITS = COLUMN_LIMITS
MAX_FUTURE_SKEW = timedelta(minutes=10)  # a reading ahead of the cloud's clock by more is refused
MAX_AGE = timedelta(days=5 * 365)  # ... and one older than this (a clock reset to 1970, say)
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
    content_hash: str | None = None  # SHA-256 of what was sent: a reused batch id with other content is refused
    positions: list[int] = field(default_factory=list)  # each reading's place in the batch (empty: in order)

    def position_of(self, i: int) -> int:
        return self.positions[i] if i < len(self.positions) else i

    @property
    def received(self) -> int:
        return len(self.readings) + len(self.rejected)


def printable(text: str) -> str:
    """``text`` as valid UTF-8 (a lone surrogate written as its escape): anything a reading sent
    that is echoed back in an acknowledgement, which protobuf refuses to build otherwise."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse(batch_id: str, why: str) -> ReadingsPayloadInvalid:
    return ReadingsPayloadInvalid(
        f"readings batch {batch_id[:64]!r} refused, nothing stored: {why}; the agent must send "
        "ReadingsBatch version 2 (typed readings) or version 1 (UTF-8 JSON {\"readings\": [...]})"
    )


def decode_batch(batch: pb.ReadingsBatch, *, now: datetime | None = None) -> DecodedBatch:
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
        values = sum(len(m.counters) + len(m.supplies) + len(m.alerts) for m in batch.readings)
        if values > MAX_VALUES:
            raise _refuse(batch.batch_id, f"{values} values (counters, supplies, alerts) exceed the limit of "
                                          f"{MAX_VALUES} per batch: split it into smaller batches")
        out = _Collector(batch.batch_id, 2, now, _digest(batch.SerializeToString(deterministic=True)))
        now_us = micros(out.now)
        lo_us, hi_us = now_us - _MAX_AGE_US, now_us + _MAX_SKEW_US
        for n, msg in enumerate(batch.readings):
            fast = clean_reading(msg, lo_us, hi_us)  # a clean reading: converted and checked in one pass
            if fast is not None and fast.id not in out.ids:
                out.ids.add(fast.id)
                out.readings.append(fast)
                out.positions.append(n)
                continue
            try:  # anything the fast pass does not vouch for: the full checks, for the reason
                reading = reading_from_wire(msg)
            except (ValueError, TypeError, OverflowError) as exc:
                out.reject(n, msg.id, f"is malformed ({exc})")
                continue
            out.add(n, reading)
        return out.result()
    if batch.readings:
        raise _refuse(batch.batch_id, "a version 1 batch carries payload_json, not typed readings")
    return decode_v1(batch.batch_id, batch.payload_json, now=now,
                     content_hash=_digest(batch.SerializeToString(deterministic=True)))


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def decode_v1(batch_id: str, payload: bytes, *, now: datetime | None = None,
              content_hash: str | None = None) -> DecodedBatch:
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
    except RecursionError:  # arrays or objects nested thousands deep: no reading looks like that
        raise _refuse(batch_id, "JSON nested too deep") from None
    if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
        raise _refuse(batch_id, 'top level must be an object with a "readings" list')
    items = body["readings"]
    if len(items) > MAX_READINGS:
        raise _refuse(batch_id, f"{len(items)} readings exceed the limit of {MAX_READINGS} per batch")
    out = _Collector(batch_id, 1, now, content_hash or _digest(payload))
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            out.reject(n, "", "is not an object")
            continue
        raw_problem = _v1_problem(item)
        if raw_problem is not None:  # what Reading.from_dict would coerce (str(), int()) is refused first
            out.reject(n, item["id"] if isinstance(item.get("id"), str) else "", raw_problem)
            continue
        try:
            reading = Reading.from_dict(item)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            out.reject(n, str(item.get("id", ""))[:MAX_ID], f"is malformed ({type(exc).__name__}: {exc})")
            continue
        out.add(n, reading)
    return out.result()


def _v1_problem(item: dict[str, object]) -> str | None:
    """A version 1 JSON reading's raw types, before ``Reading.from_dict`` (which would turn
    ``true`` or ``"12"`` into a counter value, an object into its text)."""
    for key in ("id", "ip", "taken_at"):
        if not isinstance(item.get(key), str):
            return f"has {key} of type {type(item.get(key)).__name__} (text expected)"
    if item.get("serial") is not None and not isinstance(item.get("serial"), str):
        return f"has serial of type {type(item.get('serial')).__name__} (text expected)"
    for key in ("kinds", "counters", "supplies", "alerts", "errors"):
        if not isinstance(item.get(key), list):
            return f"has {key} that is not a list"
    if not all(isinstance(k, str) for k in item["kinds"]):  # type: ignore[attr-defined]
        return "has a reading kind that is not text"
    for c in item["counters"]:  # type: ignore[attr-defined]
        if not (isinstance(c, list) and len(c) == 3):
            return "has a counter that is not [name, value, unit]"
        if isinstance(c[1], bool) or not isinstance(c[1], int):
            return f"has counter {str(c[0])[:64]!r} = {json.dumps(c[1])[:32]} (an integer expected)"
    for sp in item["supplies"]:  # type: ignore[attr-defined]
        if not (isinstance(sp, list) and len(sp) == 8):
            return "has a supply that is not a list of 8 values"
    for a in item["alerts"]:  # type: ignore[attr-defined]
        if not (isinstance(a, list) and len(a) == 6):
            return "has an alert that is not a list of 6 values"
    st = item.get("status")
    if st and not (isinstance(st, list) and len(st) == 3 and isinstance(st[1], list)):
        return "has a malformed status"
    return None


class _Collector:
    def __init__(self, batch_id: str, version: int, now: datetime | None, content_hash: str | None) -> None:
        self.batch_id, self.version, self.content_hash = batch_id, version, content_hash
        self.now = now or datetime.now(UTC)
        self.readings: list[Reading] = []
        self.rejected: list[Rejection] = []
        self.ids: set[str] = set()
        self.positions: list[int] = []

    def reject(self, n: int, reading_id: str, why: str) -> None:
        self.rejected.append(Rejection(n, printable(reading_id[:MAX_ID]), printable(f"reading #{n} {why}"[:500])))

    def add(self, n: int, reading: Reading) -> None:
        problem = problem_of(reading, now=self.now)
        if problem is None and reading.id in self.ids:
            problem = f"repeats id {reading.id!r}"
        if problem is not None:
            self.reject(n, reading.id, problem)
            return
        self.ids.add(reading.id)
        self.readings.append(reading)
        self.positions.append(n)

    def result(self) -> DecodedBatch:
        return DecodedBatch(self.batch_id, self.version, self.readings, self.rejected, self.content_hash,
                            self.positions)


def _text_problem(what: str, v: object, limit: int, *, optional: bool = False) -> str | None:
    """Why ``v`` cannot be stored as text of at most ``limit`` characters, or None."""
    if v is None and optional:
        return None
    if not isinstance(v, str):
        return f"has {what} of type {type(v).__name__} (text expected)"
    if len(v) > limit:
        return f"has {what} of {len(v)} characters (at most {limit})"
    if "\x00" in v:
        return f"has {what} containing a NUL character"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return f"has {what} that is not valid Unicode (a lone surrogate)"
    return None


def _int_problem(what: str, v: object, low: int, high: int, *, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int):  # a JSON true is an int in Python
        return f"has {what} of type {type(v).__name__} (an integer expected)"
    if not low <= v <= high:
        return f"has {what} {v} (allowed {low}..{high})"
    return None


def problem_of(r: Reading, *, now: datetime | None = None) -> str | None:
    """What makes a decoded reading unfit to store, or None: every field is checked against the
    column it lands in (``COLUMN_LIMITS``, derived from the models) and against plausibility
    (time within ``MAX_FUTURE_SKEW`` / ``MAX_AGE`` of ``now``, levels within capacity)."""
    return _first(_problems(r, now or datetime.now(UTC)))


def _first(problems: Iterator[str | None]) -> str | None:
    return next((p for p in problems if p is not None), None)


def _problems(r: Reading, now: datetime) -> Iterator[str | None]:
    if not isinstance(r.id, str) or not r.id:
        yield "has an id of 0 characters (1..64 allowed)"
        return
    if len(r.id) > MAX_ID:
        yield f"has an id of {len(r.id)} characters (1..{MAX_ID} allowed)"
    yield _text_problem("an id", r.id, LIMITS["id"])
    if not r.ip:
        yield "has no usable ip"
    yield _text_problem("an ip", r.ip, LIMITS["ip"])
    if not isinstance(r.taken_at, datetime) or r.taken_at.tzinfo is None:
        yield "has taken_at without a time zone"
        return
    if r.taken_at > now + MAX_FUTURE_SKEW:
        yield (f"was taken at {r.taken_at.isoformat()}, more than {MAX_FUTURE_SKEW} ahead of the cloud's clock "
               f"({now.isoformat(timespec='seconds')}): check the agent host's clock")
    if r.taken_at < now - MAX_AGE:
        yield f"was taken at {r.taken_at.isoformat()}, more than {MAX_AGE.days} days ago: check the agent host's clock"
    if r.serial is not None and isinstance(r.serial, str) and len(r.serial) > LIMITS["serial"]:
        yield f"has a serial longer than {LIMITS['serial']} characters"
    yield _text_problem("a serial", r.serial, LIMITS["serial"], optional=True)
    if not r.kinds:
        yield "names no reading kinds"
    if len(set(r.kinds)) != len(r.kinds):
        yield "names a reading kind more than once"
    for field_name, values in (("counters", r.counters), ("supplies", r.supplies), ("alerts", r.alerts),
                               ("errors", r.errors)):
        if not isinstance(values, tuple):
            yield f"has a malformed {field_name} list"
            return
        if len(values) > MAX_ITEMS:
            yield f"has {len(values)} {field_name} (at most {MAX_ITEMS})"
            return
    for e in r.errors:
        yield _text_problem("an error text", e, MAX_TEXT)
    for c in r.counters:
        if not isinstance(c.name, str) or not isinstance(c.unit, str) or not c.name or len(c.name) > 128:
            yield f"has a malformed counter {str(c.name)[:64]!r}"
            return
        yield _text_problem(f"counter {c.name[:64]!r} name", c.name, 128)
        yield _text_problem(f"counter {c.name[:64]!r} unit", c.unit, 64)
        if isinstance(c.value, bool) or not isinstance(c.value, int) or not 0 <= c.value <= BIGINT_MAX:
            yield f"has counter {c.name[:64]!r} = {c.value!r} (a lifetime counter is 0..2^63-1)"
    for sp in r.supplies:
        if isinstance(sp.index, bool) or not isinstance(sp.index, int) or not isinstance(sp.description, str) \
                or len(sp.description) > MAX_TEXT:
            yield f"has a malformed supply #{str(sp.index)[:32]}"
            return
        yield _int_problem("a supply index", sp.index, 0, INTEGER_MAX)
        for part in ("description", "type", "unit"):
            yield _text_problem(f"supply #{sp.index} {part}", getattr(sp, part), LIMITS[f"supply.{part}"])
        yield _text_problem(f"supply #{sp.index} colour", sp.colour, LIMITS["supply.colour"], optional=True)
        for name, v in (("level", sp.level), ("capacity", sp.max_capacity)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                yield f"has a non-integer {name} for supply #{sp.index}"
                return
            if v is not None and not -3 <= v <= INTEGER_MAX:
                yield f"has supply #{sp.index} {name} {v} (RFC 3805: -3..2^31-1)"
        if sp.level is not None and sp.max_capacity is not None and sp.max_capacity > 0 and sp.level > sp.max_capacity:
            yield (f"has supply #{sp.index} level {sp.level} above its capacity {sp.max_capacity} "
                   "(an implausible value; not stored)")
    for a in r.alerts:
        if isinstance(a.index, bool) or not isinstance(a.index, int) or not all(
            isinstance(v, str) for v in (a.severity, a.group, a.code, a.description)
        ):
            yield f"has a malformed alert #{str(a.index)[:32]}"
            return
        yield _int_problem("an alert index", a.index, 0, INTEGER_MAX)
        for part in ("severity", "group", "code", "description"):
            yield _text_problem(f"alert #{a.index} {part}", getattr(a, part), LIMITS[f"alert.{part}"])
        yield _text_problem(f"alert #{a.index} training level", a.training_level, LIMITS["alert.training_level"],
                            optional=True)
    if r.status is not None:
        yield _text_problem("a printer status", r.status.status, LIMITS["status.status"], optional=True)
        yield _text_problem("a device status", r.status.device_status, LIMITS["status.device_status"],
                            optional=True)
        if not isinstance(r.status.errors, tuple) or len(r.status.errors) > 64:
            yield "has a malformed list of detected error states"
            return
        for e in r.status.errors:
            yield _text_problem("a detected error state", e, 64)


# ---- the fast pass (version 2) -------------------------------------------------------------------
# ``clean_reading`` converts a wire reading and checks it in one pass over its fields, with the
# limits of ``problem_of``; it only vouches for a reading that is clean. Whatever it does not
# vouch for (None) goes through ``reading_from_wire`` and ``problem_of``, which name the problem:
# so the reasons stay those of the full checks, and the fast pass only has to be no more lenient
# (tests/unit/fleet/test_decode.py compares both on mutated readings).

_MAX_AGE_US = int(MAX_AGE.total_seconds()) * 1_000_000
_MAX_SKEW_US = int(MAX_FUTURE_SKEW.total_seconds()) * 1_000_000
_KINDS = {str(k): k for k in ReadingKind}
_STATES = {str(s): s for s in SupplyState}
_L_ID = min(MAX_ID, LIMITS["id"])
_L_IP, _L_SERIAL = LIMITS["ip"], LIMITS["serial"]
_L_SDESC = min(MAX_TEXT, LIMITS["supply.description"])
_L_STYPE, _L_SCOLOUR, _L_SUNIT = LIMITS["supply.type"], LIMITS["supply.colour"], LIMITS["supply.unit"]
_L_ASEV, _L_AGROUP, _L_ACODE = LIMITS["alert.severity"], LIMITS["alert.group"], LIMITS["alert.code"]
_L_ADESC, _L_ATRAIN = LIMITS["alert.description"], LIMITS["alert.training_level"]
_L_STATUS, _L_DSTATUS = LIMITS["status.status"], LIMITS["status.device_status"]


def _clean_texts(texts: list[str]) -> bool:
    """No NUL and no lone surrogate in any of them (one pass over their concatenation)."""
    joined = "".join(texts)
    if "\x00" in joined:
        return False
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_reading(m: pb.Reading, lo_us: int, hi_us: int) -> Reading | None:
    """The domain reading of ``m`` when every field is within the limits of ``problem_of``
    (``taken_at_us`` within ``lo_us..hi_us``), else None (not a verdict: check it fully)."""
    rid, ip, at_us = m.id, m.ip, m.taken_at_us
    if not (0 < len(rid) <= _L_ID and 0 < len(ip) <= _L_IP and lo_us <= at_us <= hi_us):
        return None
    names = m.kinds
    if not 0 < len(names) <= len(_KINDS) or len(set(names)) != len(names):
        return None
    try:
        kinds = tuple(_KINDS[k] for k in names)
    except KeyError:
        return None
    serial = m.serial if m.HasField("serial") else None
    texts = [rid, ip]
    if serial is not None:
        if len(serial) > _L_SERIAL:
            return None
        texts.append(serial)
    wc, ws, wa, we = m.counters, m.supplies, m.alerts, m.errors
    if len(wc) > MAX_ITEMS or len(ws) > MAX_ITEMS or len(wa) > MAX_ITEMS or len(we) > MAX_ITEMS:
        return None
    errors = tuple(we)
    if errors:
        if max(map(len, errors)) > MAX_TEXT:
            return None
        texts.extend(errors)
    counters = []
    for c in wc:
        name, unit, value = c.name, c.unit, c.value
        if not (0 < len(name) <= 128 and len(unit) <= 64 and value >= 0):
            return None
        texts += (name, unit)
        counters.append(CounterValue(name, value, unit))
    supplies = []
    for sp in ws:
        index, desc, typ, unit = sp.index, sp.description, sp.type, sp.unit
        colour = sp.colour if sp.HasField("colour") else None
        cap = sp.max_capacity if sp.HasField("max_capacity") else None
        level = sp.level if sp.HasField("level") else None
        state = _STATES.get(sp.state)
        if (state is None or index < 0 or len(desc) > _L_SDESC or len(typ) > _L_STYPE or len(unit) > _L_SUNIT
                or (colour is not None and len(colour) > _L_SCOLOUR)
                or (cap is not None and not -3 <= cap <= INTEGER_MAX)
                or (level is not None and not -3 <= level <= INTEGER_MAX)
                or (level is not None and cap is not None and cap > 0 and level > cap)):
            return None
        texts += (desc, typ, unit)
        if colour is not None:
            texts.append(colour)
        supplies.append(SupplyLevel(index, desc, typ, colour, unit, cap, level, state))
    alerts = []
    for a in wa:
        index, sev, group, code, desc = a.index, a.severity, a.group, a.code, a.description
        training = a.training_level if a.HasField("training_level") else None
        if (index < 0 or len(sev) > _L_ASEV or len(group) > _L_AGROUP or len(code) > _L_ACODE
                or len(desc) > _L_ADESC or (training is not None and len(training) > _L_ATRAIN)):
            return None
        texts += (sev, group, code, desc)
        if training is not None:
            texts.append(training)
        alerts.append(PrinterAlert(index, sev, group, code, desc, training))
    status = None
    if m.HasField("status"):
        st = m.status
        s_status = st.status if st.HasField("status") else None
        s_device = st.device_status if st.HasField("device_status") else None
        s_errors = tuple(st.errors)
        if ((s_status is not None and len(s_status) > _L_STATUS)
                or (s_device is not None and len(s_device) > _L_DSTATUS)
                or len(s_errors) > 64 or (s_errors and max(map(len, s_errors)) > 64)):
            return None
        texts += (s_status or "", s_device or "", *s_errors)
        status = PrinterStatus(s_status, s_errors, s_device)
    if not _clean_texts(texts):
        return None
    return Reading(id=rid, ip=ip, taken_at=EPOCH + timedelta(microseconds=at_us), kinds=kinds, serial=serial,
                   counters=tuple(counters), supplies=tuple(supplies), alerts=tuple(alerts), status=status,
                   errors=errors)
