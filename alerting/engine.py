"""Thresholds, de-duplication and rate limiting: audit records in, a few clear alerts out.

Pure (no I/O; time comes from the records and from ``tick(now)``), with a state
that round-trips through JSON (``to_state``/``from_state``) so the follower can
persist it with its cursor and a restart neither loses nor repeats an alert.

Per (rule, tenant, key):

- a rule with a threshold counts occurrences in a sliding window of
  ``window_s``; when the count reaches the threshold, one alert is raised;
- once an alert is raised, further occurrences are *folded* for ``quiet_s``
  seconds: no new message, only a count;
- when that window ends with folded occurrences, one summary ("... and 1,234
  more in the last 10 minutes") is raised and a new quiet window starts; a window
  that ends with nothing folded ends the storm.

A failed sign-in already folded into an active per-address alert is not counted
again for the per-account rule: one attacker, one alert.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerting.rules import (
    RELAY_REFUSED,
    SIGN_IN_BY_SOURCE,
    SIGN_IN_BY_USER,
    Hit,
    Rule,
    rule_named,
    sign_in_hits,
    simple_hits,
)
from printgate.domain import AuditRecord

MAX_KEYS = 5000  # counting windows kept at most (a spray of sources cannot grow the state without bound)
MAX_SAMPLES = 10  # subjects named per alert
MAX_SOURCES = 1000  # distinct sources counted per quiet window (relay spray), then "1,000+"
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to deliver: a first alert (``kind="alert"``) or a storm's summary."""

    id: str  # stable: the same records always give the same id (receivers may de-duplicate on it)
    rule: str
    category: str
    severity: int
    kind: str  # "alert" | "summary"
    title: str
    text: str
    dealer_id: str | None
    customer_id: str | None
    key: str
    subject: str
    count: int  # occurrences this message reports
    first_seq: int
    last_seq: int
    first_at: datetime
    last_at: datetime
    source_ip: str | None = None
    samples: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> bool:
        """About no tenant: goes to the operators' subscriptions only."""
        return self.dealer_id is None and self.customer_id is None


def _ts(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _minutes(seconds: float) -> str:
    if seconds >= 120:
        return f"{round(seconds / 60)} minutes"
    n = max(1, round(seconds))
    return f"{n} second{'s' if n != 1 else ''}"


def _alert_id(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass
class _Pending:
    """Occurrences being counted towards a threshold (bounded to the threshold)."""

    times: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)


@dataclass
class _Active:
    """An alert was raised; occurrences are folded until ``until``."""

    until: float
    started: float
    folded: int = 0
    first_seq: int = 0
    last_seq: int = 0
    last_at: float = 0.0
    samples: list[str] = field(default_factory=list)
    subject: str = ""
    source_ip: str | None = None
    sources: list[str] = field(default_factory=list)  # distinct source addresses (relay), bounded
    # the relay's "N other sources" records (no source_ip): the largest N per relay window
    other_sources: dict[str, int] = field(default_factory=dict)


def _key(rule: Rule, dealer: str | None, customer: str | None, key: str) -> str:
    return "\x1f".join((rule.name, dealer or "", customer or "", key))


def _split(k: str) -> tuple[Rule, str | None, str | None, str]:
    name, dealer, customer, key = k.split("\x1f", 3)
    return rule_named(name), dealer or None, customer or None, key


class Engine:
    """``alerts = engine.feed(record)`` for every record in sequence; ``engine.tick(now)`` now and
    then for the summaries of storms that went quiet."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._active: dict[str, _Active] = {}

    # -- the stream ------------------------------------------------------------------
    def feed(self, record: AuditRecord) -> list[Alert]:
        now = _ts(record.at)
        out = self.tick(record.at)
        for hit in simple_hits(record):
            out += self._occur(hit, now, threshold=hit.rule.threshold)
        for hit in sign_in_hits(record):
            if hit.rule is SIGN_IN_BY_USER and record.source_ip:
                by_source = _key(SIGN_IN_BY_SOURCE, record.dealer_id, record.customer_id,
                                 f"source:{record.source_ip}")
                if by_source in self._active:
                    continue  # already told as the address's burst
            out += self._occur(hit, now, threshold=hit.rule.threshold)
        return out

    def tick(self, now: datetime) -> list[Alert]:
        """Close the quiet windows that ended before ``now``: a summary for each that folded
        occurrences (and a new window for it), nothing for the others."""
        ts = _ts(now)
        out: list[Alert] = []
        for k in [k for k, a in self._active.items() if a.until <= ts]:
            active = self._active[k]
            if active.folded == 0:
                del self._active[k]
                continue
            out.append(self._summary(k, active))
            self._active[k] = _Active(until=active.until + _split(k)[0].quiet_s, started=active.until,
                                      first_seq=active.last_seq, last_seq=active.last_seq,
                                      last_at=active.last_at, subject=active.subject,
                                      source_ip=active.source_ip)
        for k in [k for k, p in self._pending.items() if p.times and p.times[-1] < ts - _split(k)[0].window_s]:
            del self._pending[k]
        return out

    # -- one occurrence --------------------------------------------------------------
    def _occur(self, hit: Hit, now: float, *, threshold: int) -> list[Alert]:
        r = hit.record
        k = _key(hit.rule, hit.dealer_id, hit.customer_id, hit.key)
        sample = _sample(hit)
        active = self._active.get(k)
        if active is not None:
            active.folded += hit.count
            active.last_seq = r.seq
            active.last_at = now
            if sample and sample not in active.samples and len(active.samples) < MAX_SAMPLES:
                active.samples.append(sample)
            if hit.rule is RELAY_REFUSED:
                _count_sources(active, r, sample)
            return []
        pending = self._pending.get(k)
        if pending is None:
            if len(self._pending) >= MAX_KEYS:
                oldest = min(self._pending, key=lambda x: self._pending[x].times[-1] if self._pending[x].times else 0)
                del self._pending[oldest]
            pending = self._pending[k] = _Pending()
        pending.times.append(now)
        pending.counts.append(hit.count)
        pending.seqs.append(r.seq)
        if sample and sample not in pending.samples and len(pending.samples) < MAX_SAMPLES:
            pending.samples.append(sample)
        # the sliding window: only occurrences within window_s of this one count
        while pending.times and pending.times[0] <= now - hit.rule.window_s:
            pending.times.pop(0)
            pending.counts.pop(0)
            pending.seqs.pop(0)
        total = sum(pending.counts)
        if total < threshold:
            if len(pending.times) > threshold:  # bounded: older ones can never matter more
                del pending.times[0], pending.counts[0], pending.seqs[0]
            return []
        del self._pending[k]
        self._active[k] = _Active(until=now + hit.rule.quiet_s, started=now, first_seq=r.seq,
                                  last_seq=r.seq, last_at=now, subject=hit.subject, source_ip=r.source_ip)
        first = _dt(pending.times[0])
        return [self._first(hit, total, pending.seqs[0], first, pending.samples)]

    def _first(self, hit: Hit, total: int, first_seq: int, first_at: datetime, samples: list[str]) -> Alert:
        rule, r = hit.rule, hit.record
        span = (r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)) - first_at
        if rule.threshold > 1:
            text = f"{total:,} occurrences for {hit.subject} within {_minutes(max(span.total_seconds(), 1))}"
        elif hit.count > 1:
            text = f"{hit.count:,} occurrences for {hit.subject}"
        else:
            text = f"1 occurrence ({r.type}, {r.outcome})"
        if samples and rule.threshold > 1:
            text += f" ({_sample_label(rule)}: {', '.join(samples)})"
        text += f"; further occurrences are summarised every {_minutes(rule.quiet_s)}."
        return Alert(
            id=_alert_id(rule.name, hit.dealer_id, hit.customer_id, hit.key, r.seq, "alert"),
            rule=rule.name, category=rule.category.value, severity=int(rule.severity), kind="alert",
            title=f"{rule.title}: {hit.subject}", text=text, dealer_id=hit.dealer_id,
            customer_id=hit.customer_id, key=hit.key, subject=hit.subject, count=total,
            first_seq=first_seq, last_seq=r.seq, first_at=first_at, last_at=r.at,
            source_ip=r.source_ip, samples=tuple(samples),
            details={"type": r.type, "outcome": r.outcome, "device_id": r.device_id,
                     "session_id": r.session_id, "reason": r.details.get("reason")},
        )

    def _summary(self, k: str, a: _Active) -> Alert:
        rule, dealer, customer, key = _split(k)
        spread = ""
        many = len(a.sources) + sum(a.other_sources.values())
        if rule is RELAY_REFUSED and many:
            spread = f" from {many:,}{'+' if len(a.sources) >= MAX_SOURCES else ''} source addresses"
        text = (f"... and {a.folded:,} more for {a.subject}{spread} in the last {_minutes(a.until - a.started)}"
                + (f" ({_sample_label(rule)}: {', '.join(a.samples)})" if a.samples else ""))
        return Alert(
            id=_alert_id(rule.name, dealer, customer, key, a.first_seq, "summary", a.until),
            rule=rule.name, category=rule.category.value, severity=int(rule.severity), kind="summary",
            title=f"{rule.title}: {a.subject} (continuing)", text=text, dealer_id=dealer,
            customer_id=customer, key=key, subject=a.subject, count=a.folded, first_seq=a.first_seq,
            last_seq=a.last_seq, first_at=_dt(a.started), last_at=_dt(a.last_at),
            source_ip=a.source_ip, samples=tuple(a.samples),
            details={"window_s": rule.quiet_s, **({"sources": many} if rule is RELAY_REFUSED and many else {})},
        )

    # -- persistence -----------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "pending": {k: [p.times, p.counts, p.seqs, p.samples] for k, p in self._pending.items()},
            "active": {k: [a.until, a.started, a.folded, a.first_seq, a.last_seq, a.last_at, a.samples,
                           a.subject, a.source_ip, a.sources, a.other_sources]
                       for k, a in self._active.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Engine:
        engine = cls()
        if not state or state.get("version") != STATE_VERSION:
            return engine
        for k, (times, counts, seqs, samples) in state.get("pending", {}).items():
            if _known(k):
                engine._pending[k] = _Pending(list(times), list(counts), list(seqs), list(samples))
        for k, v in state.get("active", {}).items():
            if _known(k):
                until, started, folded, first_seq, last_seq, last_at, samples, subject, source_ip = v[:9]
                engine._active[k] = _Active(until, started, folded, first_seq, last_seq, last_at,
                                            list(samples), subject, source_ip, list(v[9]) if len(v) > 9 else [],
                                            dict(v[10]) if len(v) > 10 else {})
        return engine


def _known(k: str) -> bool:
    try:
        _split(k)
    except (KeyError, ValueError):
        return False  # a rule that no longer exists: its window is dropped
    return True


MAX_RELAY_WINDOWS = 1000  # relay windows whose "other sources" count is kept per quiet window


def _count_sources(active: _Active, r: AuditRecord, sample: str) -> None:
    """Count a relay record's sources: a named ``source_ip`` once; the relay's overflow record
    (``details.other_sources``: the sources it did not name in that window) by its number, once per
    relay window (its refused and its failed-login records carry the same number)."""
    if sample:
        if len(active.sources) < MAX_SOURCES and sample not in active.sources:
            active.sources.append(sample)
        return
    others = r.details.get("other_sources")
    if isinstance(others, int) and not isinstance(others, bool) and others > 0:
        window = str(r.details.get("window_start") or r.seq)
        if window in active.other_sources or len(active.other_sources) < MAX_RELAY_WINDOWS:
            active.other_sources[window] = max(active.other_sources.get(window, 0), min(others, 10**9))


def _sample(hit: Hit) -> str:
    """The other side of a counted occurrence: accounts tried from an address, addresses an
    account was tried from."""
    r = hit.record
    if hit.rule is SIGN_IN_BY_SOURCE:
        return r.actor or ""
    if hit.rule is SIGN_IN_BY_USER:
        return r.source_ip or ""
    return r.source_ip or ""


def _sample_label(rule: Rule) -> str:
    return "accounts" if rule is SIGN_IN_BY_SOURCE else "from"


SEVERITY_NAMES = {1: "low", 2: "medium", 3: "high", 4: "critical"}


def to_payload(alert: Alert) -> dict[str, Any]:
    """The alert as JSON (webhook body, stored with the alert; docs/security-alerting.md)."""
    return {
        "event": "security.alert", "id": alert.id, "rule": alert.rule, "category": alert.category,
        "severity": SEVERITY_NAMES.get(alert.severity, str(alert.severity)), "severity_level": alert.severity,
        "kind": alert.kind, "title": alert.title, "text": alert.text, "count": alert.count,
        "dealer_id": alert.dealer_id, "customer_id": alert.customer_id, "key": alert.key,
        "subject": alert.subject, "source_ip": alert.source_ip, "samples": list(alert.samples),
        "first_seq": alert.first_seq, "last_seq": alert.last_seq,
        "first_at": alert.first_at.isoformat(), "last_at": alert.last_at.isoformat(),
        "details": alert.details,
    }


def from_payload(p: dict[str, Any]) -> Alert:
    return Alert(
        id=p["id"], rule=p["rule"], category=p["category"], severity=int(p["severity_level"]), kind=p["kind"],
        title=p["title"], text=p["text"], dealer_id=p.get("dealer_id"), customer_id=p.get("customer_id"),
        key=p.get("key", ""), subject=p.get("subject", ""), count=int(p["count"]),
        first_seq=int(p["first_seq"]), last_seq=int(p["last_seq"]),
        first_at=datetime.fromisoformat(p["first_at"]), last_at=datetime.fromisoformat(p["last_at"]),
        source_ip=p.get("source_ip"), samples=tuple(p.get("samples", ())), details=dict(p.get("details", {})),
    )
