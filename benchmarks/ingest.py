"""Fleet ingest at dealer scale (issue 17 item 5): PostgreSQL and SQLite in one run.

Run: .venv/bin/python benchmarks/ingest.py [--agents 1000] [--printers 20] [--rounds 3]
     (writes benchmarks/results/ingest.json)

What is measured, per database:
- sustained ingest: ``--agents`` simulated agents (each its own site with ``--printers``
  printers: 20,000 devices by default) send one batch per poll cycle holding one reading per
  printer (counters, supplies, alerts and status, as the agent's parser makes of the lab's real
  SNMP recordings), ``--rounds`` cycles 5 minutes apart. Batches are serialised
  ``ReadingsBatch`` version 2 bytes and go through ``FleetIngest.answer`` -- the same entry
  point the gRPC ``UploadReadings`` handler calls (decode, validate, idempotency, history,
  state, alerts) -- with ``--concurrency`` batches in flight. Not through 1,000 mutual-TLS gRPC
  channels: on this 2-core box the channels' TLS would measure the client side, not the cloud.
- rates: readings (one poll of one printer) per second of wall clock and per second of the
  cloud process's CPU (utime+stime; the database server's CPU is not in it), and the values
  in them (counters + supplies + alerts) per second;
- reference (PostgreSQL): ``psql \\copy`` of the same history rows into a copy of the
  readings table, in the same run; our ratio to it;
- the fleet overview of the portal for the dealer (all 20,000 printers) after ingest: server
  time of the page (counts + one page of 50, the worst first; a later page, a filter, a
  search) and of the paged JSON API (100 a page), through the real portal app in process;
  median and max of 5;
- the cloud process's RSS (VmRSS) sampled every 0.5 s over the run: start, peak, end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from agent.polling import reading_from  # noqa: E402
from agent.snmp.parsing import identity_from  # noqa: E402
from agent.snmp.profiles import profile_for  # noqa: E402
from fleet.ingest import FleetIngest  # noqa: E402
from lab import snmprec  # noqa: E402
from lab.snmp import recording_path  # noqa: E402
from printgate.domain import Reading, ReadingKind  # noqa: E402
from printgate.store.db import Database, migrate  # noqa: E402
from printgate.store.fleet import TenantScope  # noqa: E402
from printgate.store.models.core import AgentRow, CustomerRow, DealerRow, DeviceRow, SiteRow  # noqa: E402
from printgate.wire import agent_pb2 as pb  # noqa: E402
from printgate.wire import convert  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "ingest.json"
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_DB = "printgate_bench_ingest"
RECORDINGS = ["jetdirect_m130nw", "lab-jetdirect_m130nw-alerts", "canonprinter_tm", "brother_hl5370dw"]
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
CYCLE = timedelta(minutes=5)
TARGET_PER_CORE = 20_000
OVERVIEW_TARGET_MS = 300


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reading_of(recording: str, *, ip: str, at: datetime) -> Reading:
    """What the agent's own parser makes of a lab recording (as tests/fleet/conftest.py does)."""
    data = snmprec.load(recording_path(recording))
    ident, _ = identity_from(data, ip=ip)
    return reading_from(data, ip=ip, kinds=tuple(ReadingKind), serial=ident.serial,
                        profile=profile_for(ident.sys_object_id), taken_at=at, reading_id=uuid.uuid4().hex)


def templates() -> list[Reading]:
    return [reading_of(name, ip="127.0.0.1", at=T0) for name in RECORDINGS]


def printer(agent: int, n: int) -> tuple[str, str, str]:
    """(device id, ip, serial) of printer ``n`` of agent ``agent``."""
    return f"dev-{agent:04d}-{n:02d}", f"10.{agent // 250}.{agent % 250}.{n + 1}", f"SN{agent:04d}{n:02d}"


def batches_of(agents: int, printers: int, rounds: int) -> list[list[tuple[str, bytes, int, int]]]:
    """Per round: (agent id, serialised ReadingsBatch, readings, values) per agent."""
    base = templates()
    out = []
    for rnd in range(rounds):
        at = T0 + rnd * CYCLE
        batch_round = []
        for a in range(agents):
            readings = []
            for n in range(printers):
                _, ip, serial = printer(a, n)
                t = base[(a + n) % len(base)]
                readings.append(replace(t, id=uuid.uuid4().hex, ip=ip, serial=serial,
                                        taken_at=at + timedelta(seconds=n)))
            values = sum(len(r.counters) + len(r.supplies) + len(r.alerts) for r in readings)
            raw = convert.readings_batch(f"site-{a:04d}", uuid.uuid4().hex, readings).SerializeToString()
            batch_round.append((f"agent-{a:04d}", raw, len(readings), values))
        out.append(batch_round)
    return out


async def seed(db: Database, agents: int, printers: int) -> None:
    async with db.transaction() as s:
        await s.execute(sa.insert(DealerRow).values(id="dealer-1", name="Bench Dealer"))
        await s.execute(sa.insert(CustomerRow).values(
            [{"id": f"cust-{a:04d}", "dealer_id": "dealer-1", "name": f"Customer {a:04d}"} for a in range(agents)]))
        await s.execute(sa.insert(SiteRow).values(
            [{"id": f"site-{a:04d}", "customer_id": f"cust-{a:04d}", "name": "HQ"} for a in range(agents)]))
        await s.execute(sa.insert(AgentRow).values(
            [{"id": f"agent-{a:04d}", "site_id": f"site-{a:04d}", "name": "agent", "online": True}
             for a in range(agents)]))
        rows = []
        for a in range(agents):
            for n in range(printers):
                did, ip, serial = printer(a, n)
                rows.append({"id": did, "site_id": f"site-{a:04d}", "agent_id": f"agent-{a:04d}", "ip": ip,
                             "name": f"Printer {n}", "serial": serial, "labels": [], "blocked": False,
                             "identity_verified": True, "first_seen": T0, "last_seen": T0})
        for i in range(0, len(rows), 500):
            await s.execute(sa.insert(DeviceRow).values(rows[i:i + 500]))


async def ingest_run(db: Database, rounds: list[list[tuple[str, bytes, int, int]]], concurrency: int,
                     rss: list[int]) -> dict[str, Any]:
    ingest = FleetIngest(db, max_in_flight=concurrency)
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for rnd in rounds:
        for agent, raw, _, _ in rnd:
            queue.put_nowait((agent, raw))
    stored = busy = 0

    async def worker() -> None:
        nonlocal stored, busy
        while not queue.empty():
            agent, raw = queue.get_nowait()
            ack = await ingest.answer(agent, pb.ReadingsBatch.FromString(raw))
            assert not ack.rejected and not ack.duplicate, ack
            stored += ack.stored

    sampling = True

    async def sample() -> None:
        while sampling:
            rss.append(rss_kb())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    cpu0, t0 = cpu_s(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    sampling = False
    await sampler
    readings = sum(n for rnd in rounds for _, _, n, _ in rnd)
    values = sum(v for rnd in rounds for _, _, _, v in rnd)
    assert stored == readings, (stored, readings)
    return {"batches": sum(len(r) for r in rounds), "readings": readings, "values": values,
            "wall_s": round(wall, 2), "cloud_cpu_s": round(cpu, 2),
            "readings_per_s_wall": round(readings / wall), "readings_per_s_per_cloud_core": round(readings / cpu),
            "values_per_s_wall": round(values / wall), "values_per_s_per_cloud_core": round(values / cpu)}


OVERVIEW_PATHS = {  # what a dealer's user opens, through the real portal app (in process)
    "page": "/fleet",
    "page_200": "/fleet?page=200",
    "page_problem": "/fleet?problem=attention",
    "page_search": "/fleet?q=printer%2012",
    "api": "/api/fleet/devices?limit=100",
    "api_worst": "/api/fleet/devices?sort=attention&limit=100",
    "api_offset": "/api/fleet/devices?limit=100&offset=19900",
}


async def overview(db: Database) -> dict[str, Any]:
    """Server time of the fleet overview page and API for the dealer (all 20,000 printers): the
    portal app in process (httpx ASGI transport: no sockets), a signed-in viewer, median of 5
    after one warm-up request per path; plus the counts query alone."""
    import secrets

    import httpx

    from fleet.queries import overview as fleet_overview
    from portal.app import create_app
    from printgate.domain import Role
    from printgate.settings import PortalSettings
    from printgate.testing.audit import RecordingAuditSink
    from printgate.testing.broker import PolicyBroker
    from printgate.testing.portal import Clock, create_user, sign_in

    clock = Clock()
    base = "http://portal.test"
    app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                     broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
    user, secret = await create_user(db, Role.VIEWER, dealer="dealer-1")
    out: dict[str, Any] = {"target_ms": OVERVIEW_TARGET_MS}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base,  # type: ignore[arg-type]
                                 headers={"accept": "text/html"}, timeout=60) as client:
        class _Portal:
            pass
        holder = _Portal()
        holder.clock = clock  # type: ignore[attr-defined]
        await sign_in(client, holder, user, secret)  # type: ignore[arg-type]
        for name, path in OVERVIEW_PATHS.items():
            headers = {"accept": "application/json"} if path.startswith("/api") else {}
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                r = await client.get(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
            out[name] = {"path": path, "median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "bytes": len(r.content)}
    times, total = [], 0
    for _ in range(5):
        t0 = time.perf_counter()
        async with db.session() as s:
            total = (await fleet_overview(s, TenantScope(dealer_id="dealer-1"))).counts.devices
        times.append((time.perf_counter() - t0) * 1000)
    out["devices"] = total
    out["counts_and_first_page_query_median_ms"] = round(statistics.median(times), 1)
    worst = max(v["median_ms"] for v in out.values() if isinstance(v, dict))
    out["worst_median_ms"] = worst
    out["met"] = worst <= OVERVIEW_TARGET_MS
    return out


def psql_copy_reference(rows_csv: Path, count: int) -> dict[str, Any]:
    psql = shutil.which("psql")
    if psql is None:
        return {"skipped": "psql not installed"}
    base = [psql, "-h", "127.0.0.1", "-U", "postgres", "-d", PG_DB, "-q", "-v", "ON_ERROR_STOP=1"]
    subprocess.run([*base, "-c", "DROP TABLE IF EXISTS readings_ref; "
                    "CREATE TABLE readings_ref (LIKE readings INCLUDING ALL)"], check=True)
    t0 = time.perf_counter()
    subprocess.run([*base, "-c", f"\\copy readings_ref (id, agent_id, batch_id, ip, serial, taken_at, kinds, "
                    f"device_id, body) FROM '{rows_csv}' WITH (FORMAT csv)"], check=True)
    wall = time.perf_counter() - t0
    subprocess.run([*base, "-c", "DROP TABLE readings_ref"], check=True)
    return {"rows": count, "wall_s": round(wall, 2), "readings_per_s": round(count / wall)}


async def history_csv(db: Database, path: Path) -> int:
    """The history rows just ingested, as CSV for the psql reference."""
    async with db.session() as s:
        rows = (await s.execute(sa.text(
            "SELECT id, agent_id, batch_id, ip, serial, taken_at, kinds, device_id, body::text FROM readings"))).all()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        for r in rows:
            w.writerow([*r[:5], r[5].isoformat(), *r[6:]])
    return len(rows)


async def reset_pg() -> str:
    admin = sa.ext.asyncio.create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        await c.execute(sa.text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
        await c.execute(sa.text(f"CREATE DATABASE {PG_DB}"))
    await admin.dispose()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"


async def run_one(name: str, url: str, args: argparse.Namespace,
                  rounds: list[list[tuple[str, bytes, int, int]]], tmp: Path) -> dict[str, Any]:
    await migrate(url)
    rss: list[int] = []
    async with Database(url) as db:
        await seed(db, args.agents, args.printers)
        rss.append(rss_kb())
        result: dict[str, Any] = {"ingest": await ingest_run(db, rounds, args.concurrency, rss)}
        if name == "postgresql":  # what autovacuum's analyze does within a minute of a bulk load
            async with db.transaction() as s:
                await s.execute(sa.text("ANALYZE"))
        result["overview"] = await overview(db)
        if name == "postgresql":
            n = await history_csv(db, tmp / "rows.csv")
            ref = psql_copy_reference(tmp / "rows.csv", n)
            result["psql_copy_reference"] = ref
            if "readings_per_s" in ref:
                result["ratio_to_psql_copy"] = round(result["ingest"]["readings_per_s_wall"] / ref["readings_per_s"], 3)
    result["rss_kb"] = {"start": rss[0], "peak": max(rss), "end": rss[-1], "samples": len(rss)}
    return result


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--printers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--only", choices=["postgresql", "sqlite"])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rounds = batches_of(args.agents, args.printers, args.rounds)
    out: dict[str, Any] = {
        "what": "fleet ingest: serialised ReadingsBatch v2 bytes through FleetIngest.answer (the entry point the "
                "gRPC UploadReadings handler calls), not through 1,000 mutual-TLS gRPC channels",
        "agents": args.agents, "printers": args.agents * args.printers, "rounds": args.rounds,
        "concurrency": args.concurrency, "cores": os.cpu_count(),
        "target_readings_per_s_per_core_postgresql": TARGET_PER_CORE,
        "note": "a reading = one poll of one printer (counters, supplies, alerts, status); 'values' counts the "
                "counters+supplies+alerts in them. Per cloud core = per second of the benchmark process's CPU "
                "(the database server's CPU is not counted). Machine shared with other work while measured.",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in ("postgresql", "sqlite"):
            if args.only and name != args.only:
                continue
            url = await reset_pg() if name == "postgresql" else f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
            out[name] = await run_one(name, url, args, rounds, tmp)
            print(name, json.dumps(out[name], indent=1), flush=True)
    pg = out.get("postgresql", {}).get("ingest", {})
    if pg:
        out["postgresql_target_met"] = pg["readings_per_s_per_cloud_core"] >= TARGET_PER_CORE
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
