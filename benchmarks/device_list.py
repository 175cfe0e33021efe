"""The technician's device list at dealer scale (issue 17 leftover): ``/devices`` and
``GET /api/devices`` for a dealer with 20,000 printers, on PostgreSQL and SQLite.

Run: .venv/bin/python benchmarks/device_list.py [--agents 1000] [--printers 20] [--rounds 1]
     [--only postgresql|sqlite] [--label after]
     (writes benchmarks/results/device_list.json, the run under its label: "before" was the code
     that loaded every device and filtered, grouped and paged in Python)

The fleet is seeded and ingested as benchmarks/ingest.py does (the same agents, printers, lab
recordings and open alerts: a third of the printers; ``--rounds`` 5-minute polls), then the
portal app in process (httpx ASGI transport: no sockets) answers a signed-in technician of the
dealer: median and max of 5 after one warm-up request per path, with this process's CPU per
request (``cpu_ms``: on SQLite all of the work) and, on PostgreSQL, the CPU of the server's
backends serving it (``db_server_cpu_ms``, mean of the 5, from /proc: the server runs on this
machine) and their sum (``work_ms``: what a request costs on a machine with a core free, which
the wall clock of a shared machine does not show), and the load average at start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("PRINTGATE_BENCH_PG_DB", "printgate_bench_devices")  # not ingest.py's database
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest

ROOT = ingest.ROOT
OUT = ROOT / "benchmarks" / "results" / "device_list.json"
TARGET_MS = 300

PATHS = {  # what a technician opens (the first page is where everyone lands after signing in)
    "page": "/devices",
    "page_search": "/devices?q=printer%2012",
    "page_search_customer": "/devices?q=customer%200042",
    "page_search_serial": "/devices?q=SN004212",
    "page_status": "/devices?status=error",
    "page_alerts": "/devices?alert=open",
    "page_customer": "/devices?customer=cust-0042",
    "page_late": "/devices?page=150",
    "page_last": "/devices?page=200",
    "page_site_late": "/devices?group=site&page=120",
    "page_flat_late": "/devices?group=none&page=100",
    "page_status_late": "/devices?status=warning&alert=open&page=30",
    "api": "/api/devices",
    "api_late": "/api/devices?limit=1000&offset=19000",
}


async def _server_pids(db: Any) -> list[int]:
    """The PostgreSQL backends serving this benchmark's database (on this machine), else none."""
    if db.engine.dialect.name != "postgresql":
        return []
    async with db.session() as s:
        rows = await s.execute(ingest.sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        return [int(p) for (p,) in rows.all()]


def _cpu_ms_of(pids: list[int]) -> float:
    """utime + stime of these processes (clock ticks, 10 ms: the mean of 5 requests is taken)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total * 1000 / os.sysconf("SC_CLK_TCK")


async def measure(db: Any) -> dict[str, Any]:
    from printgate.domain import Role

    out: dict[str, Any] = {"target_ms": TARGET_MS, "load_average_1m_at_start": os.getloadavg()[0]}
    async with ingest.signed_in_portal(db, Role.TECHNICIAN, timeout=120) as client:
        for name, path in PATHS.items():
            headers = {"accept": "application/json"} if path.startswith("/api") else {}
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            pids = await _server_pids(db)
            times, cpu = [], []
            server0 = _cpu_ms_of(pids)
            for _ in range(5):
                t0, c0 = time.perf_counter(), time.process_time()
                r = await client.get(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            server = (_cpu_ms_of(pids) - server0) / 5
            rows = r.text.count("<tr data-device-id=") if not path.startswith("/api") else len(r.json())
            out[name] = {"path": path, "median_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1), "cpu_ms": round(statistics.median(cpu), 1),
                         **({"db_server_cpu_ms": round(server, 1),
                             "work_ms": round(statistics.median(cpu) + server, 1)} if pids else {}),
                         "bytes": len(r.content), "devices_in_answer": rows,
                         **({"x_total_count": r.headers["x-total-count"]} if "x-total-count" in r.headers else {})}
            print(name, out[name], flush=True)
    pages = {k: v for k, v in out.items() if isinstance(v, dict) and k.startswith("page")}
    out["worst_page_median_ms"] = max(v["median_ms"] for v in pages.values())
    out["load_average_1m_at_end"] = os.getloadavg()[0]
    out["met"] = out["worst_page_median_ms"] <= TARGET_MS
    return out


async def run_one(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    await ingest.migrate(url)
    async with ingest.Database(url) as db:
        await ingest.seed(db, args.agents, args.printers)
        rounds = ingest.batches_of(args.agents, args.printers, args.rounds, 200)
        done = await ingest.ingest_run(db, rounds, 8, [])
        print(name, "ingested", done["polls"], "polls in", done["wall_s"], "s", flush=True)
        if name == "postgresql":  # what autovacuum's analyze does within a minute of a bulk load
            async with db.transaction() as s:
                await s.execute(ingest.sa.text("ANALYZE"))
        return await measure(db)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--printers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=["postgresql", "sqlite"])
    ap.add_argument("--label", default="after")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    run: dict[str, Any] = {"devices": args.agents * args.printers, "agents": args.agents, "rounds": args.rounds,
                           "cores": os.cpu_count(), "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as d:
        for name in ("postgresql", "sqlite"):
            if args.only and name != args.only:
                continue
            url = await ingest.reset_pg() if name == "postgresql" else f"sqlite+aiosqlite:///{Path(d) / 'bench.db'}"
            run[name] = await run_one(name, url, args)
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out["what"] = ("server time of /devices (the technician's page, 100 a page) and GET /api/devices for a dealer "
                   "with 20,000 printers, portal app in process, median of 5; benchmarks/device_list.py")
    out[args.label] = {**out.get(args.label, {}), **run}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
