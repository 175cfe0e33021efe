"""The hash chain: how an event becomes a sealed, chained entry (pure).

Entry (schema version 1) -- a JSON object serialised with RFC 8785
(``audit.canonical``)::

    {"at": "2026-11-25T15:49:59.794833Z",  # UTC, microseconds, assigned under the chain lock
     "customer_id": str|null, "dealer_id": str|null, "device_id": str|null,
     "session_id": str|null, "type": str, "outcome": str,
     "details": {...},                      # free JSON, must not hold personal data
     "personal": {"actor": hex, "source_ip": hex, ...},   # salted commitments only
     "prev": hex,                           # hash of entry seq-1 (64 zeros for seq 1)
     "seq": int,                            # 1, 2, 3, ... gap-free
     "v": 1}

``hash = SHA-256(entry bytes)`` in lower-case hex. The Merkle leaf of entry
``seq`` is ``SHA-256(0x00 || bytes.fromhex(hash))`` at index ``seq - 1``.

Personal fields (GDPR): each clear value is committed as
``SHA-256(salt || field || 0x00 || value)`` with a fresh random 16-byte salt
per record and field; the clear value and salt live in a separate table and
may be erased -- the chain still verifies, the commitment reveals nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.canonical import canonical_bytes, fast_path_ok, to_json_value
from audit.errors import NotCanonicalisable
from printgate.domain import AuditEventIn, event_types

SCHEMA_VERSION = 1
GENESIS = "0" * 64
PERSONAL_FIELDS = ("actor", "source_ip")
SALT_BYTES = 16
RETENTION_EVENT = event_types.AUDIT_RETENTION_PRUNED
ERASURE_EVENT = event_types.AUDIT_PERSONAL_ERASED  # its details.seq_ranges name the records erased

# The top-level "prev" is the last `,"prev":"` in an entry: only "seq",
# "session_id", "type" and "v" follow it, and bare quotes cannot occur inside
# JSON strings.
ENTRY_TAIL = re.compile(rb',"prev":"([0-9a-f]{64})","seq":(\d+),"session_id":')


def format_at(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def commit_personal(field: str, value: str, salt: bytes) -> str:
    return hashlib.sha256(salt + field.encode() + b"\x00" + value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event normalised and committed, waiting for its place in the chain."""

    type: str
    outcome: str
    dealer_id: str | None
    customer_id: str | None
    device_id: str | None
    session_id: str | None
    details: dict[str, Any]
    personal: dict[str, tuple[str, bytes]]  # field -> (clear value, salt)
    fast: bool = False  # every part serialises canonically through json.dumps

    def commitments(self) -> dict[str, str]:
        return {f: commit_personal(f, v, s) for f, (v, s) in self.personal.items()}


def prepare(event: AuditEventIn, salt: Callable[[int], bytes]) -> PreparedEvent:
    """Normalise ``event`` (JSON-only details, salted personal fields)."""
    if not event.type:
        raise NotCanonicalisable("an audit event needs a type, e.g. 'dwa.session.opened'")
    clear: dict[str, str] = {}
    for name in PERSONAL_FIELDS:
        value = getattr(event, name)
        if value is not None:
            clear[name] = str(value)
    for name, value in event.personal.items():
        if name in ("prev", "seq") or not name:
            raise NotCanonicalisable(f"personal field name {name!r} is reserved")
        if value is not None:
            clear[str(name)] = str(value)
    details: dict[str, Any] = dict(event.details)
    fast = fast_path_ok(details)  # plain JSON already: no normalising walk needed
    if not fast:
        details = to_json_value(details)
        fast = fast_path_ok(details)
        if not fast:
            canonical_bytes(details)  # fail early, outside the chain lock
    return PreparedEvent(
        type=event.type, outcome=str(event.outcome), dealer_id=event.dealer_id,
        customer_id=event.customer_id, device_id=event.device_id,
        session_id=event.session_id, details=details,
        personal={f: (v, salt(SALT_BYTES)) for f, v in clear.items()},
        fast=fast and fast_path_ok(dict.fromkeys(clear)),
    )


def build_entry(p: PreparedEvent, *, seq: int, at: str, prev: str) -> dict[str, Any]:
    return {
        "at": at, "customer_id": p.customer_id, "dealer_id": p.dealer_id,
        "details": p.details, "device_id": p.device_id, "outcome": p.outcome,
        "personal": p.commitments(), "prev": prev, "seq": seq,
        "session_id": p.session_id, "type": p.type, "v": SCHEMA_VERSION,
    }


def seal(entry: Mapping[str, Any], *, known_fast: bool = False) -> tuple[bytes, str]:
    """The entry's canonical bytes and its hash (hex)."""
    data = canonical_bytes(entry, known_fast=known_fast)
    return data, hashlib.sha256(data).hexdigest()


def entry_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def link_of(data: bytes) -> tuple[str, int] | None:
    """``(prev, seq)`` of canonical entry bytes without parsing the whole JSON."""
    i = data.rfind(b',"prev":"')
    if i < 0:
        return None
    m = ENTRY_TAIL.match(data, i)
    if m is None:
        return None
    return m.group(1).decode(), int(m.group(2))
