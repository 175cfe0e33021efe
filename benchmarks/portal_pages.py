"""Server time of every portal page with 50 devices, 10,000 audit events and 100 sessions,
on SQLite and PostgreSQL (issue 15, target: 200 ms per page).

Each page is requested 30 times (after 2 untimed warm-up requests) by a signed-in client on
loopback (the portal served by uvicorn, the real hash-chained audit log, the policy-backed test broker); the time of one
request is the server's time plus a loopback round trip. Reference in the same run: the
portal's own ``/healthz`` (the same stack, no database work); the ratio page / reference is
printed. The seeded database is ANALYZEd (current planner statistics, as on a live database).
Writes benchmarks/results/portal_pages.json. Noisy: 2 cores shared with other runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pydantic import SecretStr

from audit.checkpoint import Signer
from audit.log import AuditLog
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import (
    AgentId,
    AuditEventIn,
    DeviceId,
    DeviceIdentity,
    DwaSession,
    DwaState,
    DwaTarget,
    Outcome,
    RemoteAccessMode,
    Role,
    SessionId,
    UserId,
)
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.store.sessions import save_session
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import create_pg_database, drop_pg_database, migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, served, sign_in
from printgate.testing.tenancy import Tenancy

DEVICES, EVENTS, SESSIONS, ROUNDS, WARM_UP = 50, 10_000, 100, 30, 2
TARGET_MS = 200.0
OUT = Path(__file__).parent / "results" / "portal_pages.json"


async def seed(db: Database) -> dict[str, str]:
    t = Tenancy().dealer("d1", "Bench Print Services")
    for c in range(5):
        t.customer(f"c{c}", "d1", f"Customer {c}", RemoteAccessMode.OPEN).site(f"s{c}", f"c{c}", f"Site {c}")
        t.agent(f"a{c}", f"s{c}", online=True)
    for i in range(DEVICES):
        c = i % 5
        t.device(f"dev{i}", f"s{c}", f"a{c}", f"10.0.{c}.{i + 10}",
                 DeviceIdentity(serial=f"SN{i:05d}", model=f"Model {i % 7}"), name=f"Printer {i}")
    await t.save(db)
    tech, _ = await create_user(db, Role.TECHNICIAN, dealer="d1", totp=False)
    now = datetime.now(UTC)
    async with db.transaction() as s:
        for i in range(SESSIONS):
            start = now - timedelta(minutes=30 * (SESSIONS - i))
            session = DwaSession(SessionId(f"sess{i:04d}"), UserId(tech.id), DeviceId(f"dev{i % DEVICES}"),
                                 AgentId(f"a{i % 5}"), DwaTarget(f"10.0.0.{i % 200}", 80, "http"), start,
                                 start + timedelta(minutes=20))
            session = session.transition(DwaState.AUTHORISED, at=start, reason="policy allowed")
            session = session.transition(DwaState.CLOSED, at=start + timedelta(minutes=5), reason="ended by user")
            await save_session(s, session)
    log = AuditLog(db, Signer.generate(), checkpoint_every=1_000_000)
    batch: list[AuditEventIn] = []
    for i in range(EVENTS):
        sid = f"sess{i % SESSIONS:04d}"
        batch.append(AuditEventIn(
            type="dwa.request" if i % 10 else "policy.decision", actor=tech.email, dealer_id="d1",
            customer_id=f"c{i % 5}", device_id=f"dev{i % DEVICES}", session_id=sid, source_ip="192.0.2.9",
            outcome=Outcome.BLOCKED if i % 97 == 0 else Outcome.SUCCESS,
            details={"method": "GET", "path": f"/page/{i}", "status": 200}))
        if len(batch) == 1000:
            await log.append_many(batch)
            batch = []
    await log.checkpoint()
    await analyze(db)
    return {"tech": tech.email}


async def analyze(db: Database) -> None:
    """Planner statistics after the bulk seed, as autovacuum (PostgreSQL) keeps them on a live
    database; without them the first plans over the 10,000 fresh audit rows are guesses (e.g. a
    bitmap AND of two indexes and a sort for the newest-first audit page: ~14 ms instead of
    ~0.05 ms on PostgreSQL)."""
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE")


PAGES: dict[str, tuple[str, ...]] = {
    "technician": ("/devices", "/devices?q=printer+1&group=site", "/sessions", "/fleet", "/fleet/dev7",
                   "/approvals", "/tokens"),
    "dealer_admin": ("/admin/policy", "/admin/policy?preview_user=USER&preview_device=dev3", "/admin/users",
                     "/admin/tenants", "/agents"),
    "auditor": ("/audit", "/audit?customer_id=c2", "/audit?session_id=sess0042",
                "/audit/sessions/sess0042/view"),
    "customer_admin": ("/approvals",),
}


async def time_page(client: httpx.AsyncClient, path: str) -> list[float]:
    for _ in range(WARM_UP):  # first renders compile the page's templates: not timed
        assert (await client.get(path)).status_code == 200, path
    out = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        r = await client.get(path)
        out.append((time.perf_counter() - began) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1), "max_ms": round(ordered[-1], 1)}


async def run_backend(kind: str, url: str) -> dict[str, object]:
    async with migrated(url) as db:
        await seed(db)
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        clock = Clock()
        log = AuditLog(db, None)
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=SecretStr(secrets.token_urlsafe(32)))
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, log), audit=log, clock=clock)
        users = {
            "technician": await create_user(db, Role.TECHNICIAN, dealer="d1"),
            "dealer_admin": await create_user(db, Role.DEALER_ADMIN, dealer="d1"),
            "auditor": await create_user(db, Role.AUDITOR, dealer="d1"),
            "customer_admin": await create_user(db, Role.CUSTOMER_ADMIN, dealer=None, customer="c1", totp=False),
        }
        results: dict[str, object] = {}
        async with served(app, port):
            async with httpx.AsyncClient(base_url=base, timeout=30, headers={"accept": "text/html"}) as anon:
                reference = summary(await time_page(anon, "/healthz"))
            for persona, paths in PAGES.items():
                user, secret = users[persona]
                async with httpx.AsyncClient(base_url=base, timeout=30, headers={"accept": "text/html"}) as c:
                    await sign_in(c, type("P", (), {"clock": clock})(), user, secret)
                    for path in paths:
                        path = path.replace("USER", users["technician"][0].id)
                        s = summary(await time_page(c, path))
                        s["ratio_to_reference"] = round(s["p50_ms"] / max(reference["p50_ms"], 0.01), 1)
                        s["within_target"] = s["p95_ms"] <= TARGET_MS
                        results[f"{persona} {path}"] = s
                        print(f"{kind:10} {persona:14} {path:55} p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms"
                              f"  x{s['ratio_to_reference']} /healthz", flush=True)
        return {"reference_healthz": reference, "pages": results}


async def main() -> None:
    out: dict[str, object] = {
        "benchmark": "portal_pages", "at": datetime.now(UTC).isoformat(), "python": platform.python_version(),
        "data": {"devices": DEVICES, "audit_events": EVENTS, "sessions": SESSIONS, "rounds": ROUNDS, "warm_up": WARM_UP},
        "target_ms": TARGET_MS, "note": "client-measured on loopback: server time + one loopback round trip",
        "load_average_1m_at_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = await run_backend("sqlite", sqlite_url(Path(tmp) / "bench.db"))
    pg = await asyncio.to_thread(create_pg_database)
    try:
        out["postgresql"] = await run_backend("postgresql", pg)
    finally:
        await asyncio.to_thread(drop_pg_database, pg)
    pages = [p for backend in ("sqlite", "postgresql") for p in out[backend]["pages"].values()]  # type: ignore[index]
    worst = max(p["p95_ms"] for p in pages)
    out["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    out["worst_p95_ms"] = worst
    out["all_within_target"] = worst <= TARGET_MS
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"worst p95 {worst:.1f} ms (target {TARGET_MS:.0f} ms); wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
