from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alerting.engine import Engine
from printgate.domain import AuditRecord

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def failed(seq: int, *, at: datetime, ip: str = "203.0.113.9", actor: str = "victim@acme.example",
           customer: str | None = "c1") -> AuditRecord:
    return AuditRecord(seq=seq, at=at, schema_version=1, type="auth.login", outcome="failure",
                       prev_hash="", hash="", actor=actor, source_ip=ip, dealer_id="d1",
                       customer_id=customer, details={"reason": "bad_credentials"})


def test_a_storm_of_500_failed_sign_ins_gives_one_alert_and_one_summary() -> None:
    engine = Engine()
    out = []
    for i in range(500):
        out += engine.feed(failed(i + 1, at=T0 + timedelta(milliseconds=100 * i)))
    assert len(out) == 1
    first = out[0]
    assert first.rule == "signin.burst.source" and first.count == 10 and first.kind == "alert"
    assert "203.0.113.9" in first.title and "victim@acme.example" in first.text
    assert (first.dealer_id, first.customer_id) == ("d1", "c1")
    assert engine.tick(T0 + timedelta(minutes=5)) == []  # still within the quiet window
    [summary] = engine.tick(T0 + timedelta(minutes=11))
    assert summary.kind == "summary" and summary.count == 490
    assert "490 more for 203.0.113.9 in the last 10 minutes" in summary.text
    # the storm is over: the next window closes without a message and the key is forgotten
    assert engine.tick(T0 + timedelta(minutes=30)) == []
    assert engine.to_state()["active"] == {}


def test_below_the_threshold_or_spread_out_nothing_is_raised() -> None:
    engine = Engine()
    out = []
    for i in range(30):  # one attempt every 40 s: never 10 within 5 minutes
        out += engine.feed(failed(i + 1, at=T0 + timedelta(seconds=40 * i)))
    assert out == []


def test_a_distributed_attack_on_one_account_is_raised_per_account() -> None:
    engine = Engine()
    out = []
    for i in range(12):
        out += engine.feed(failed(i + 1, at=T0 + timedelta(seconds=i), ip=f"198.51.100.{i}"))
    assert [a.rule for a in out] == ["signin.burst.user"]
    assert out[0].subject == "victim@acme.example" and "198.51.100.0" in out[0].text


def test_tenants_and_keys_are_counted_apart() -> None:
    engine = Engine()
    out = []
    for i in range(10):
        out += engine.feed(failed(2 * i + 1, at=T0 + timedelta(seconds=i), customer="c1"))
        out += engine.feed(failed(2 * i + 2, at=T0 + timedelta(seconds=i), customer="c2"))
    assert sorted(a.customer_id or "" for a in out) == ["c1", "c2"]


def test_the_state_round_trips_through_json_mid_storm() -> None:
    straight, resumed = Engine(), Engine()
    records = [failed(i + 1, at=T0 + timedelta(seconds=i)) for i in range(40)]
    a = [x for r in records for x in straight.feed(r)]
    b = [x for r in records[:15] for x in resumed.feed(r)]
    resumed = Engine.from_state(json.loads(json.dumps(resumed.to_state())))
    b += [x for r in records[15:] for x in resumed.feed(r)]
    later = T0 + timedelta(minutes=11)
    assert [x.id for x in a + straight.tick(later)] == [x.id for x in b + resumed.tick(later)]


def test_a_continuing_storm_gives_one_summary_per_window() -> None:
    engine = Engine()
    out = []
    for i in range(0, 35 * 60, 2):  # 35 minutes, one failure every 2 s
        out += engine.feed(failed(i + 1, at=T0 + timedelta(seconds=i)))
    kinds = [a.kind for a in out]
    assert kinds == ["alert", "summary", "summary", "summary"]  # at 10, 20, 30 minutes
    out += engine.tick(T0 + timedelta(hours=2))
    assert sum(a.count for a in out) == 35 * 30  # every occurrence reported once, none twice
    assert len({a.id for a in out}) == len(out) == 5  # the last window summarised once it went quiet


def test_an_aggregated_record_is_one_alert_with_its_count() -> None:
    engine = Engine()
    r = AuditRecord(seq=5, at=T0, schema_version=1, type="relay.connections.refused", outcome="denied",
                    prev_hash="", hash="", source_ip="198.51.100.7", details={"refused": 1234})
    [alert] = engine.feed(r)
    assert alert.count == 1234 and "1,234" in alert.text and alert.platform


def test_a_relay_spray_summary_counts_the_other_sources_record() -> None:
    """The relay names its 20 busiest sources per window and folds the rest into one record
    (``other_sources``, once on the refused and once on the failed-login record): the summary
    counts them all, each window's overflow once."""
    engine = Engine()
    seq = 0

    def relay(at: datetime, *, ip: str | None, kind: str = "relay.connections.refused",
              **details: object) -> AuditRecord:
        nonlocal seq
        seq += 1
        base = {"refused": 1} if kind == "relay.connections.refused" else {"count": 1}
        return AuditRecord(seq=seq, at=at, schema_version=1, type=kind, outcome="denied", prev_hash="",
                           hash="", source_ip=ip, details={**base, **details})

    out = []
    for window, at in enumerate((T0, T0 + timedelta(minutes=1))):
        start = at.isoformat()
        for i in range(20):
            out += engine.feed(relay(at, ip=f"198.51.{100 + window}.{i + 1}", window_start=start))
        out += engine.feed(relay(at, ip=None, refused=180, window_start=start, other_sources=180))
        out += engine.feed(relay(at, ip=None, kind="relay.auth.failed", count=180, window_start=start,
                                 other_sources=180))
    assert [a.kind for a in out] == ["alert"]
    engine = Engine.from_state(json.loads(json.dumps(engine.to_state())))  # the count survives a restart
    [summary] = engine.tick(T0 + timedelta(minutes=11))
    # 39 named sources (the first alert's one is not in the summary) + 2 x 180 others
    assert "from 399 source addresses" in summary.text, summary.text
    assert summary.details["sources"] == 399


def test_ids_are_stable_for_the_same_records() -> None:
    def run() -> list[str]:
        e = Engine()
        return [a.id for i in range(20) for a in e.feed(failed(i + 1, at=T0 + timedelta(seconds=i)))]
    assert run() == run() and len(run()) == 1


def test_the_payload_round_trips() -> None:
    from alerting.engine import from_payload, to_payload
    e = Engine()
    [a] = [x for i in range(10) for x in e.feed(failed(i + 1, at=T0 + timedelta(seconds=i)))]
    p = json.loads(json.dumps(to_payload(a)))
    assert p["severity"] == "high" and p["count"] == 10 and p["source_ip"] == "203.0.113.9"
    assert from_payload(p) == a
