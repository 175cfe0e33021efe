"""Policy decisions per second for a tenant with 1,000 rules (issue 7).

Reference in the same run: a trivial baseline (a plain dict lookup of
"may this (user, device) open?", what a hard-coded ACL costs). Prints the
ratio and writes benchmarks/results/policy.json. One process = one core.
Numbers are noisy: the machine has 2 cores shared with other test runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script is itself named policy.py: make `import policy` find the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

from policy import Action, Context, Resource, Subject, evaluate, load_policy  # noqa: E402
from printgate.domain import DeviceIdentity, Role  # noqa: E402
from printgate.testing.policy_inputs import (  # noqa: E402
    NOW,
    make_context,
    make_device,
    make_resource,
    make_subject,
    make_user,
)

RULES = 1000
CUSTOMERS = 250
DECISIONS = 200_000
OUT = Path(__file__).parent / "results" / "policy.json"


def tenant_rules() -> dict:
    rng = random.Random(7)
    rules: list[dict] = []
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]
    for i in range(RULES):
        c = f"c{i % CUSTOMERS}"
        kind = i % 4
        if kind == 0:
            rules.append({"kind": "time_window", "id": f"r{i}", "timezone": rng.choice(zones),
                          "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                          "start": "00:00", "end": "23:59", "scope": {"customer_id": c}})
        elif kind == 1:
            rules.append({"kind": "source_ip", "id": f"r{i}", "cidrs": ["10.0.0.0/8", "192.168.0.0/16"],
                          "scope": {"customer_id": c}})
        elif kind == 2:
            rules.append({"kind": "device_labels", "id": f"r{i}", "forbid": ["finance"],
                          "scope": {"site_id": f"s{i % CUSTOMERS}"}})
        else:
            rules.append({"kind": "device_model", "id": f"r{i}", "allow": ["hp *", "canon *"],
                          "scope": {"customer_id": c}})
    return {"dealer_id": "d1", "version": 1, "rules": rules}


def workload() -> list[tuple[Subject, Resource, Context]]:
    rng = random.Random(11)
    user = make_user(Role.TECHNICIAN, email="t@example.org")
    cases = []
    for i in range(1000):
        n = rng.randrange(CUSTOMERS)
        device = make_device(id=f"dev{i}", site_id=f"s{n}", agent_id="a", name="",
                             identity=DeviceIdentity(model=rng.choice(["HP M404", "Canon iR", "Brother X"])),
                             labels=frozenset(rng.sample(["a", "finance", "b"], 1)))
        res = make_resource(device, customer=f"c{n}", site=f"s{n}")
        subject = make_subject(user, ip=rng.choice(["10.1.2.3", "192.168.1.1", "203.0.113.5"]), mfa_age=60.0)
        cases.append((subject, res, make_context(now=NOW)))
    return cases


async def open_overhead(runs: int = 300) -> dict[str, float]:
    """Latency the policy step adds to opening a session: facts from the store
    (SQLite), rule set loaded (compiled once per version, as a broker caches it),
    decision, and the audit append; reference: the audit append alone."""
    import statistics
    import tempfile

    from audit.log import AuditLog
    from printgate.domain import AuditEventIn
    from printgate.store import approvals, rule_sets, sessions
    from printgate.store.db import Database, migrate
    from printgate.store.devices import get_device
    from printgate.store.tenants import tenant_of_site
    from printgate.testing.tenancy import Tenancy

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await migrate(url)
        now = NOW
        async with Database(url) as db:
            await (Tenancy().dealer("d1", "D").customer("c1", "d1", "C").site("s1", "c1", "S")
                   .agent("a1", "s1", name="A", online=True)
                   .device("x", "s1", "a1", "127.0.20.1", DeviceIdentity(model="HP M404"))
                   .save(db, now=now))
            async with db.transaction() as s:
                await rule_sets.save_ruleset(s, "d1", tenant_rules(), actor="bench", now=now)
            sink = AuditLog(db, None)  # the real chained log (no checkpoint signing)
            user = make_user(Role.TECHNICIAN, email="t@example.org")
            cache: dict[tuple[str, int], object] = {}

            async def decide_and_audit() -> None:
                from policy import evaluate_dwa_open
                async with db.session() as s:
                    device = await get_device(s, "x")
                    assert device is not None
                    found = await tenant_of_site(s, device.site_id)
                    assert found is not None
                    customer, site = found
                    body = await rule_sets.load_ruleset(s, "d1")
                    assert body is not None
                    key = ("d1", int(body["version"]))
                    compiled = cache.get(key) or cache.setdefault(key, load_policy(body))
                    n_user = await sessions.count_live_dwa_sessions(s, user_id=user.id)
                    n_dev = await sessions.count_live_dwa_sessions(s, device_id=device.id)
                    approved = await approvals.active_approval_until(s, user.id, device.id, now)
                decision = evaluate_dwa_open(
                    compiled, user=user, device=device, dealer_id="d1", customer_id=customer.id,  # type: ignore[arg-type]
                    site_id=site.id, remote_access=customer.remote_access, agent_online=True,
                    agent_enrolled=True, source_ip="10.1.2.3", mfa_age_seconds=30, now=now,
                    user_live_sessions=n_user, device_live_sessions=n_dev, approved_until=approved)
                await sink.append(AuditEventIn(type="policy.decision", actor=user.email,
                                               details={"allow": decision.allow,
                                                        "reasons": [r.code for r in decision.reasons]}))

            async def audit_only() -> None:
                await sink.append(AuditEventIn(type="policy.decision", actor=user.email,
                                               details={"allow": True, "reasons": ["x"]}))

            async def timed(fn) -> list[float]:  # type: ignore[no-untyped-def]
                await fn()
                out = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    await fn()
                    out.append((time.perf_counter() - t0) * 1000)
                return out

            full = await timed(decide_and_audit)
            base = await timed(audit_only)
    q = statistics.quantiles
    return {"policy_plus_audit_p50_ms": round(statistics.median(full), 3),
            "policy_plus_audit_p95_ms": round(q(full, n=20)[18], 3),
            "audit_append_only_p50_ms": round(statistics.median(base), 3),
            "audit_append_only_p95_ms": round(q(base, n=20)[18], 3),
            "added_by_policy_p50_ms": round(statistics.median(full) - statistics.median(base), 3),
            "runs": runs, "store": "sqlite (file, WAL)"}


def main() -> None:
    import asyncio

    policy = load_policy(tenant_rules())
    cases = workload()
    n = len(cases)
    # warm-up
    allowed = sum(evaluate(policy, *cases[i % n][:1], Action.DWA_OPEN, *cases[i % n][1:]).allow for i in range(5000))

    t0 = time.perf_counter()
    for i in range(DECISIONS):
        s, r, c = cases[i % n]
        evaluate(policy, s, Action.DWA_OPEN, r, c)
    engine_s = time.perf_counter() - t0

    acl = {(s.user.id, r.device.id): True for s, r, _ in cases}
    t0 = time.perf_counter()
    for i in range(DECISIONS):
        s, r, c = cases[i % n]
        acl.get((s.user.id, r.device.id), False)
    base_s = time.perf_counter() - t0

    engine_rate = DECISIONS / engine_s
    base_rate = DECISIONS / base_s
    result = {
        "benchmark": "policy",
        "rules_in_tenant": RULES,
        "decisions": DECISIONS,
        "engine_decisions_per_s": round(engine_rate),
        "engine_us_per_decision": round(1e6 / engine_rate, 2),
        "baseline_dict_lookup_per_s": round(base_rate),
        "ratio_baseline_over_engine": round(base_rate / engine_rate, 1),
        "target_per_s": 50_000,
        "meets_target": engine_rate >= 50_000,
        "allow_share_in_warmup": round(allowed / 5000, 2),
        "python": platform.python_version(),
        "note": "single process (one core); 2-core machine shared with other runs, numbers are noisy",
    }
    overhead = asyncio.run(open_overhead())
    result["open_session_overhead"] = overhead
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"policy engine: {engine_rate:,.0f} decisions/s ({1e6 / engine_rate:.1f} us) "
          f"with {RULES} rules; dict-lookup baseline {base_rate:,.0f}/s; "
          f"baseline is {base_rate / engine_rate:.1f}x faster; target 50,000/s "
          f"{'met' if engine_rate >= 50_000 else 'NOT met'}")
    print(f"open-session overhead (store facts + decision + audit, SQLite): "
          f"p50 {overhead['policy_plus_audit_p50_ms']} ms, p95 {overhead['policy_plus_audit_p95_ms']} ms; "
          f"audit append alone p50 {overhead['audit_append_only_p50_ms']} ms")


if __name__ == "__main__":
    main()
