"""Fleet ingest at dealer scale (issue 17 item 5): PostgreSQL and SQLite in one run.

Run: .venv/bin/python benchmarks/ingest.py [--agents 1000] [--printers 20] [--rounds 3]
     .venv/bin/python benchmarks/ingest.py --minutes 10 [--only postgresql]   (sustained, RSS)
     (both write benchmarks/results/ingest.json; a --minutes run adds its "sustained" part)

What is measured, per database:
- ingest: ``--agents`` simulated agents (each its own site with ``--printers`` printers:
  20,000 devices by default) poll their printers every 5 minutes (``--rounds`` cycles); a poll
  is what the agent's own parser makes of a real SNMP recording of the lab (``FLEET_MIX``:
  counters by the vendor profile, supplies, alerts, printer status; a third of the printers
  with open alerts), counters rising and toner falling from round to round. Each agent seals
  a round's polls into batches as its readings queue does (at most ``--batch-polls``, 200;
  20 printers: one batch a round). The serialised ``ReadingsBatch`` version 2 bytes go through
  ``FleetIngest.answer`` -- the same entry point the gRPC ``UploadReadings`` handler calls
  (decode, validate, idempotency, history, state, alerts) -- with ``--concurrency`` batches in
  flight. Not through 1,000 mutual-TLS gRPC channels: on this 2-core box the channels' TLS
  would measure the client side, not the cloud.
- rates in the issue's unit: VALUES (one counter, supply level, alert or printer status; a
  poll of the mix carries ~12) per second of wall clock and per second of the cloud process's
  CPU (this benchmark process's utime+stime; the database server's CPU is not in it), and
  polls per second;
- reference (PostgreSQL): ``psql \\copy`` of the same table rows our ingest wrote (history and
  ledger once, device states, supplies and alerts once per round) into copies of the tables
  (same keys, indexes and partitions), in the same run; our ratio to it (its wall time / ours);
- the fleet overview of the portal for the dealer (all 20,000 printers) after ingest: server
  time of the page (counts + one page of 50, the worst first; a later page, a filter, a
  search) and of the paged JSON API (100 a page), through the real portal app in process;
  median and max of 5;
- the cloud process's RSS (VmRSS) sampled every 0.5 s over the run: start, peak, end;
- ``--minutes N``: the agents in a process of their own upload round after round without pause
  for N minutes (a backlog drained: the cloud at full speed); RSS every 5 s: start, peak, end
  and its slope (least squares, kB/min, over the run and its second half).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import AsyncIterator
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
from printgate.domain import PrinterStatus, Reading, ReadingKind  # noqa: E402
from printgate.store.db import Database, migrate  # noqa: E402
from printgate.store.fleet import TenantScope  # noqa: E402
from printgate.store.models.core import AgentRow, CustomerRow, DealerRow, DeviceRow, SiteRow  # noqa: E402
from printgate.wire import agent_pb2 as pb  # noqa: E402
from printgate.wire import convert  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "ingest.json"
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_DB = os.environ.get("PRINTGATE_BENCH_PG_DB", "printgate_bench_ingest")  # runs side by side: one each
# The printers of a dealer fleet as the agent reports them: each poll is what the agent's own
# parser makes of a real recording (counters by the vendor profile, supplies, alerts, status);
# office colour MFPs weigh most. ``True``: the printer also has the 3 open alerts (and error
# states) of the lab's alert recording, as a third of a fleet has at any time.
FLEET_MIX: list[tuple[str, bool]] = [
    ("sharp", False), ("sharp", True), ("konica_c250i", False), ("konica_c250i", True), ("xerox", False),
    ("xerox", True), ("jetdirect_m880", False), ("jetdirect_m880", True), ("ricoh_mpc3002", False),
    ("lab-jetdirect_m130nw-alerts", True), ("okilan_9450g", False), ("canonprinter_tm", False),
    ("epson", False), ("dell-laser_s5830dn", False), ("brother_hl5370dw", False),
]
ALERTS_FROM = "lab-jetdirect_m130nw-alerts"
# the fleet reports now: polls from 12 hours ago on, so they land in the current monthly partition
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
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


def values_of(r: pb.Reading) -> int:
    """The issue's unit: one value is a counter, a supply level, an alert or a printer status."""
    return len(r.counters) + len(r.supplies) + len(r.alerts) + (1 if r.HasField("status") else 0)


def templates() -> list[pb.Reading]:
    """The fleet mix's polls as the agent puts them on the wire."""
    alerting = reading_of(ALERTS_FROM, ip="127.0.0.1", at=T0)
    assert alerting.status is not None and alerting.alerts
    out = []
    for name, with_alerts in FLEET_MIX:
        r = reading_of(name, ip="127.0.0.1", at=T0)
        if with_alerts:
            own = r.status or PrinterStatus(None, (), None)
            r = replace(r, alerts=alerting.alerts,
                        status=PrinterStatus(own.status, alerting.status.errors, alerting.status.device_status))
        out.append(convert.reading_to_wire(r))
    return out


def printer(agent: int, n: int) -> tuple[str, str, str]:
    """(device id, ip, serial) of printer ``n`` of agent ``agent``."""
    return f"dev-{agent:04d}-{n:02d}", f"10.{agent // 250}.{agent % 250}.{n + 1}", f"SN{agent:04d}{n:02d}"


Batch = tuple[str, bytes, int, int]  # agent id, serialised ReadingsBatch, polls, values


def round_batches(base: list[pb.Reading], agents: range, printers: int, rnd: int, batch_polls: int) -> list[Batch]:
    """Cycle ``rnd`` (5 minutes after the one before) of these agents: each agent polls its
    printers (pages printed since: counters up; toner used: levels down) and seals its polls
    into batches of at most ``batch_polls``, as its readings queue does (an agent uploads every
    10 s, so one 5-minute round of 20 printers is one batch)."""
    at_us = convert.micros(T0 + rnd * CYCLE)
    out = []
    for a in agents:
        polls = []
        for n in range(printers):
            _, ip, serial = printer(a, n)
            m = pb.Reading()
            m.CopyFrom(base[(a * printers + n) % len(base)])
            m.id = uuid.uuid4().hex
            m.ip, m.serial, m.taken_at_us = ip, serial, at_us + n * 250_000
            for c in m.counters:
                c.value += rnd * (3 + n % 7)
            for sp in m.supplies:
                if sp.HasField("level") and sp.level > 0:
                    sp.level = max(1, sp.level - rnd // 4)
            polls.append(m)
        for i in range(0, len(polls), batch_polls):
            part = polls[i:i + batch_polls]
            raw = pb.ReadingsBatch(site_id=f"site-{a:04d}", batch_id=uuid.uuid4().hex, version=convert.READINGS_VERSION,
                                   readings=part).SerializeToString()
            out.append((f"agent-{a:04d}", raw, len(part), sum(values_of(m) for m in part)))
    return out


def batches_of(agents: int, printers: int, rounds: int, batch_polls: int) -> list[list[Batch]]:
    base = templates()
    return [round_batches(base, range(agents), printers, rnd, batch_polls) for rnd in range(rounds)]


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


def rates(batches: int, polls: int, values: int, wall: float, cpu: float) -> dict[str, Any]:
    return {"batches": batches, "polls": polls, "values": values, "values_per_poll": round(values / polls, 1),
            "wall_s": round(wall, 2), "cloud_cpu_s": round(cpu, 2),
            "values_per_s_wall": round(values / wall), "values_per_s_per_cloud_core": round(values / cpu),
            "polls_per_s_wall": round(polls / wall), "polls_per_s_per_cloud_core": round(polls / cpu)}


async def ingest_run(db: Database, rounds: list[list[Batch]], concurrency: int, rss: list[int]) -> dict[str, Any]:
    """All batches as fast as the cloud takes them, ``concurrency`` agents uploading at a time."""
    ingest = FleetIngest(db, max_in_flight=concurrency)
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for rnd in rounds:
        for agent, raw, _, _ in rnd:
            queue.put_nowait((agent, raw))
    stored = 0

    async def worker() -> None:
        nonlocal stored
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
    polls = sum(n for rnd in rounds for _, _, n, _ in rnd)
    values = sum(v for rnd in rounds for _, _, _, v in rnd)
    assert stored == polls, (stored, polls)
    return {**rates(sum(len(r) for r in rounds), polls, values, wall, cpu), "transactions": ingest.groups}


def _agents_process(out: Any, agents: int, printers: int, batch_polls: int, first_round: int) -> None:
    """The simulated agents for ``--minutes`` (their own process: their CPU is not the cloud's):
    round after round of batches into ``out`` (bounded: they wait while the cloud is behind)."""
    base = templates()
    rnd = first_round
    while True:
        for chunk in range(0, agents, 50):
            for b in round_batches(base, range(chunk, min(agents, chunk + 50)), printers, rnd, batch_polls):
                out.put(b)
        rnd += 1


async def sustained_run(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    """``--minutes``: agents in another process upload without pause for N minutes; the cloud
    stores as fast as it can (a backlog drained for N minutes: harder on memory than the
    fleet's steady 2,000 values/s); RSS sampled every 5 s, its slope by least squares."""
    import multiprocessing
    ctx = multiprocessing.get_context("spawn")
    feed = ctx.Queue(maxsize=4 * args.concurrency)
    agents = ctx.Process(target=_agents_process, args=(feed, args.agents, args.printers, args.batch_polls, 0),
                         daemon=True)
    agents.start()
    loop = asyncio.get_running_loop()
    ingest = FleetIngest(db, max_in_flight=args.concurrency)
    agent, raw, _, _ = await loop.run_in_executor(None, feed.get)  # the agents are up: the clock starts
    await ingest.answer(agent, pb.ReadingsBatch.FromString(raw))
    deadline = time.monotonic() + args.minutes * 60
    batches = polls = values = stored = 0
    samples: list[tuple[float, int]] = []

    async def worker() -> None:
        nonlocal batches, polls, values, stored
        while time.monotonic() < deadline:
            agent, raw, n, v = await loop.run_in_executor(None, feed.get)
            ack = await ingest.answer(agent, pb.ReadingsBatch.FromString(raw))
            assert not ack.rejected and not ack.duplicate, ack
            batches, polls, values, stored = batches + 1, polls + n, values + v, stored + ack.stored

    async def sample() -> None:
        while time.monotonic() < deadline:
            samples.append((time.monotonic(), rss_kb()))
            print(f"  {len(samples) * 5:4d} s rss {samples[-1][1]} kB, {polls} polls", flush=True)
            await asyncio.sleep(5)

    try:
        cpu0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(sample(), *(worker() for _ in range(args.concurrency)))
        wall, cpu = time.perf_counter() - t0, cpu_s() - cpu0
    finally:
        agents.terminate()
        agents.join()
    assert stored == polls, (stored, polls)
    ts = [t - samples[0][0] for t, _ in samples]
    kb = [k for _, k in samples]
    half = len(kb) // 2
    return {"minutes": args.minutes, **rates(batches, polls, values, wall, cpu), "transactions": ingest.groups,
            "rss_kb": {"start": kb[0], "peak": max(kb), "end": kb[-1], "samples": len(kb),
                       "slope_kb_per_min": round(_slope(ts, kb) * 60, 1),
                       "second_half_slope_kb_per_min": round(_slope(ts[half:], kb[half:]) * 60, 1)}}


def _slope(xs: list[float], ys: list[int]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


OVERVIEW_PATHS = {  # what a dealer's user opens, through the real portal app (in process)
    "page": "/fleet",
    "page_200": "/fleet?page=200",
    "page_problem": "/fleet?problem=attention",
    "page_search": "/fleet?q=printer%2012",
    "page_search_customer": "/fleet?q=customer%200042",
    "page_by_name": "/fleet?sort=name&page=300",
    "api": "/api/fleet/devices?limit=100",
    "api_worst": "/api/fleet/devices?sort=attention&limit=100",
    "api_offset": "/api/fleet/devices?limit=100&offset=19900",
}


@contextlib.asynccontextmanager
async def signed_in_portal(db: Database, role: Any, *, timeout: float) -> AsyncIterator[Any]:
    """The portal app in process (httpx ASGI transport: no sockets) with a user of ``role`` of
    dealer-1 signed in (TOTP included): an ``httpx.AsyncClient`` asking for HTML by default."""
    import secrets

    import httpx

    from portal.app import create_app
    from printgate.settings import PortalSettings
    from printgate.testing.audit import RecordingAuditSink
    from printgate.testing.broker import PolicyBroker
    from printgate.testing.portal import Clock, create_user, sign_in

    clock = Clock()
    base = "http://portal.test"
    app = create_app(PortalSettings(public_url=base, secret_key=secrets.token_urlsafe(32)), db=db,
                     broker=PolicyBroker(db, clock, base), audit=RecordingAuditSink(), clock=clock)
    user, secret = await create_user(db, role, dealer="dealer-1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base,  # type: ignore[arg-type]
                                 headers={"accept": "text/html"}, timeout=timeout) as client:
        holder = types.SimpleNamespace(clock=clock)  # sign_in needs only the portal's clock
        await sign_in(client, holder, user, secret)
        yield client


async def overview(db: Database) -> dict[str, Any]:
    """Server time of the fleet overview page and API for the dealer (all 20,000 printers): the
    portal app in process (httpx ASGI transport: no sockets), a signed-in viewer, median of 5
    after one warm-up request per path; plus the counts query alone. Beside the wall clock,
    ``cpu_ms``: this process's CPU per request (on SQLite all of the work; on PostgreSQL the
    server's part is not in it), which a machine shared with other work disturbs less; the load
    average says how shared it was."""
    from fleet.queries import overview as fleet_overview
    from printgate.domain import Role

    out: dict[str, Any] = {"target_ms": OVERVIEW_TARGET_MS, "load_average_1m_at_start": os.getloadavg()[0]}
    async with signed_in_portal(db, Role.VIEWER, timeout=60) as client:
        for name, path in OVERVIEW_PATHS.items():
            headers = {"accept": "application/json"} if path.startswith("/api") else {}
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            times, cpu = [], []
            for _ in range(5):
                t0, c0 = time.perf_counter(), time.process_time()
                r = await client.get(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            out[name] = {"path": path, "median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "cpu_ms": round(statistics.median(cpu), 1),
                         "bytes": len(r.content)}
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
    out["load_average_1m_at_end"] = os.getloadavg()[0]
    out["met"] = worst <= OVERVIEW_TARGET_MS
    return out


REF_TABLES = ("readings", "reading_batches", "device_states", "device_supplies", "device_alerts")


def psql_copy_reference(tmp: Path, rounds: int, counts: dict[str, int]) -> dict[str, Any]:
    """``psql \\copy`` of the rows our ingest wrote, into copies of the tables (``LIKE ...
    INCLUDING ALL``: the same keys and indexes): the history and the batch ledger once, the
    current-state tables (device states, supplies, alerts: written again every round by ingest)
    once per round, so the reference writes as many table rows as ingest did."""
    psql = shutil.which("psql")
    if psql is None:
        return {"skipped": "psql not installed"}
    base = [psql, "-h", "127.0.0.1", "-U", "postgres", "-d", PG_DB, "-q", "-v", "ON_ERROR_STOP=1"]
    prep, script, rows = ["SET client_min_messages = warning;"], [], 0
    for t in REF_TABLES:
        f = tmp / f"{t}.csv"
        prep += [f"\\copy (SELECT * FROM {t}) TO '{f}' WITH (FORMAT csv)", f"DROP TABLE IF EXISTS {t}_ref;"]
        parts = subprocess.run([*base, "-tA", "-F", "|", "-c", (  # a partitioned table: the same partitions
            "SELECT pg_get_partkeydef(c.oid), p.relname, pg_get_expr(p.relpartbound, p.oid) FROM pg_class c "
            f"LEFT JOIN pg_inherits i ON i.inhparent = c.oid LEFT JOIN pg_class p ON p.oid = i.inhrelid "
            f"WHERE c.relname = '{t}'")], check=True, capture_output=True, text=True).stdout.splitlines()
        key = parts[0].split("|")[0] if parts else ""
        prep.append(f"CREATE TABLE {t}_ref (LIKE {t} INCLUDING ALL)" + (f" PARTITION BY {key};" if key else ";"))
        for line in parts if key else []:
            _, part, bound = line.split("|")
            prep.append(f"CREATE TABLE {part}_ref PARTITION OF {t}_ref {bound};")
    (tmp / "prep.sql").write_text("\n".join(prep) + "\n")
    subprocess.run([*base, "-f", str(tmp / "prep.sql")], check=True)
    for t in REF_TABLES:
        n = counts[t]
        times = 1 if t in ("readings", "reading_batches") else rounds
        for rnd in range(times):
            if rnd:
                script.append(f"TRUNCATE {t}_ref;")
            script.append(f"\\copy {t}_ref FROM '{tmp / f'{t}.csv'}' WITH (FORMAT csv)")
            rows += n
    (tmp / "ref.sql").write_text("\n".join(script) + "\n")
    t0 = time.perf_counter()
    subprocess.run([*base, "-f", str(tmp / "ref.sql")], check=True)
    wall = time.perf_counter() - t0
    subprocess.run([*base, "-c", "; ".join(f"DROP TABLE {t}_ref" for t in REF_TABLES)], check=True)
    return {"table_rows": rows, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall)}


async def table_counts(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {t: int((await s.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one()) for t in REF_TABLES}


def rows_written(n: dict[str, int], rounds: int) -> int:
    """Table rows our ingest wrote: history and ledger rows, and the current-state rows of every round."""
    return n["readings"] + n["reading_batches"] + rounds * (n["device_states"] + n["device_supplies"]
                                                            + n["device_alerts"])


async def reset_pg() -> str:
    admin = sa.ext.asyncio.create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        await c.execute(sa.text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
        await c.execute(sa.text(f"CREATE DATABASE {PG_DB}"))
    await admin.dispose()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"


async def run_one(name: str, url: str, args: argparse.Namespace, rounds: list[list[Batch]],
                  tmp: Path) -> dict[str, Any]:
    await migrate(url)
    rss: list[int] = []
    async with Database(url) as db:
        await seed(db, args.agents, args.printers)
        rss.append(rss_kb())
        result: dict[str, Any] = {"ingest": await ingest_run(db, rounds, args.concurrency, rss)}
        if name == "postgresql":  # what autovacuum's analyze does within a minute of a bulk load
            async with db.transaction() as s:
                await s.execute(sa.text("ANALYZE"))
        if not args.no_overview:
            result["overview"] = await overview(db)
        if name == "postgresql":
            counts = await table_counts(db)
            ref = psql_copy_reference(tmp, len(rounds), counts)
            result["psql_copy_reference"] = ref
            if "rows_per_s" in ref:
                result["ingest"]["table_rows"] = rows_written(counts, len(rounds))
                assert result["ingest"]["table_rows"] == ref["table_rows"], (counts, ref)
                result["ratio_to_psql_copy"] = round(ref["wall_s"] / result["ingest"]["wall_s"], 3)
    result["rss_kb"] = {"start": rss[0], "peak": max(rss), "end": rss[-1], "samples": len(rss)}
    return result


async def sustained(url: str, args: argparse.Namespace) -> dict[str, Any]:
    await migrate(url)
    async with Database(url) as db:
        await seed(db, args.agents, args.printers)
        return await sustained_run(db, args)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--printers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-polls", type=int, default=200, help="an agent seals at most this many polls a batch "
                    "(its readings queue's batch_size); 20 printers a round: one batch of 20")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--only", choices=["postgresql", "sqlite"])
    ap.add_argument("--minutes", type=float, help="sustained ingest for N minutes (RSS sampled), not the "
                    "fixed rounds; writes the 'sustained' part of the results")
    ap.add_argument("--no-overview", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.minutes:
        name = args.only or "postgresql"
        url = await reset_pg() if name == "postgresql" else f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
        result = await sustained(url, args)
        print(json.dumps(result, indent=1))
        out = json.loads(args.out.read_text()) if args.out.exists() else {}
        out.setdefault("sustained", {})[name] = {
            **result, "agents": args.agents, "printers": args.agents * args.printers, "concurrency": args.concurrency,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        args.out.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.out}")
        return
    rounds = batches_of(args.agents, args.printers, args.rounds, args.batch_polls)
    out = {
        "what": "fleet ingest: serialised ReadingsBatch v2 bytes through FleetIngest.answer (the entry point the "
                "gRPC UploadReadings handler calls), not through 1,000 mutual-TLS gRPC channels",
        "agents": args.agents, "printers": args.agents * args.printers, "rounds": args.rounds,
        "batch_polls": args.batch_polls, "concurrency": args.concurrency, "cores": os.cpu_count(),
        "fleet_mix": [f"{name}{' +3 alerts' if alerts else ''}" for name, alerts in FLEET_MIX],
        "target_values_per_s_per_core_postgresql": TARGET_PER_CORE,
        "note": "the issue's unit: a value is one counter, supply level, alert or printer status; a poll is one "
                "printer's reading (all of them, as the agent's parser makes of a real recording). Per cloud core = "
                "per second of the benchmark process's CPU (utime+stime; the database server's and psql's CPU are "
                "not counted). Machine shared with other work while measured.",
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
        out["postgresql_target_met"] = pg["values_per_s_per_cloud_core"] >= TARGET_PER_CORE
    if args.out.exists() and "sustained" in (old := json.loads(args.out.read_text())):
        out["sustained"] = old["sustained"]  # the last --minutes run, kept
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
