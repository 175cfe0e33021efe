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
from datetime import UTC, datetime  # noqa: E402

from policy import Action, Context, Resource, Subject, evaluate, load_policy  # noqa: E402
from printgate.domain import (  # noqa: E402
    AgentId,
    CustomerId,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    RemoteAccessMode,
    Role,
    SiteId,
    User,
    UserId,
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
    user = User(UserId("u1"), "t@example.org", "T", frozenset({Role.TECHNICIAN}), DealerId("d1"))
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    cases = []
    for i in range(1000):
        n = rng.randrange(CUSTOMERS)
        device = Device(DeviceId(f"dev{i}"), SiteId(f"s{n}"), AgentId("a"), "127.0.20.1",
                        DeviceIdentity(model=rng.choice(["HP M404", "Canon iR", "Brother X"])),
                        labels=frozenset(rng.sample(["a", "finance", "b"], 1)))
        res = Resource(device, DealerId("d1"), CustomerId(f"c{n}"), SiteId(f"s{n}"),
                       RemoteAccessMode.OPEN, True, True)
        subject = Subject(user, rng.choice(["10.1.2.3", "192.168.1.1", "203.0.113.5"]), 60.0)
        cases.append((subject, res, Context(now, 0, 0, None)))
    return cases


def main() -> None:
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"policy engine: {engine_rate:,.0f} decisions/s ({1e6 / engine_rate:.1f} us) "
          f"with {RULES} rules; dict-lookup baseline {base_rate:,.0f}/s; "
          f"baseline is {base_rate / engine_rate:.1f}x faster; target 50,000/s "
          f"{'met' if engine_rate >= 50_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
