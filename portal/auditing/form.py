"""The auditor's /audit filter form: raw query-string values -> ``AuditFilter``.

HTML forms send every field, empty ones as ``""``, and ``datetime-local``
inputs without a zone; this parses them (times are UTC), reports what is
wrong in words, and rebuilds query strings for the pager and the downloads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from audit.query import AuditFilter
from portal.forms import known_fields
from printgate.domain import Outcome


@dataclass(frozen=True, slots=True)
class AuditForm:
    """What the form asked for, as typed (all strings; empty means any)."""

    since: str = ""
    until: str = ""
    actor: str = ""
    customer_id: str = ""
    device_id: str = ""
    session_id: str = ""
    type: str = ""
    outcome: str = ""
    before_seq: str = ""

    @classmethod
    def of(cls, values: dict[str, str]) -> AuditForm:
        return cls(**known_fields(cls, values, max_length=320))

    def to_filter(self) -> AuditFilter:
        """The filter asked for; ``ValueError`` with a message a person can act on."""
        if self.outcome and self.outcome not in {o.value for o in Outcome}:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(o.value for o in Outcome)}")
        since, until = _instant(self.since, "from"), _instant(self.until, "until")
        if since and until and since >= until:
            raise ValueError("the 'from' time must be before the 'until' time")
        return AuditFilter(
            since=since, until=until, actor=self.actor or None, customer_id=self.customer_id or None,
            device_id=self.device_id or None, session_id=self.session_id or None,
            types=(self.type,) if self.type else (), outcome=self.outcome or None,
        )

    def before(self) -> int | None:
        return int(self.before_seq) if self.before_seq.isdigit() else None

    def query(self, **override: str) -> str:
        """This form as a query string (non-empty fields), with ``override`` applied."""
        form = replace(self, **override)
        return urlencode({f.name: getattr(form, f.name) for f in fields(form) if getattr(form, f.name)})


def api_query(f: AuditFilter, *, limit: int | None = None) -> str:
    """The query string of the JSON/CSV/JSONL API for the same filtered set."""
    params: list[tuple[str, str]] = []
    for name, value in (("since", f.since), ("until", f.until)):
        if value is not None:
            params.append((name, value.isoformat()))
    for name, text in (("actor", f.actor), ("dealer_id", f.dealer_id), ("customer_id", f.customer_id),
                       ("device_id", f.device_id), ("session_id", f.session_id), ("outcome", f.outcome)):
        if text:
            params.append((name, text))
    params.extend(("type", t) for t in f.types)
    if limit is not None:
        params.append(("limit", str(limit)))
    return urlencode(params)


def _instant(text: str, label: str) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"the '{label}' time {text!r} is not a date and time like 2025-01-31T14:00") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
