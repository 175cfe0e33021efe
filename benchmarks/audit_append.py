"""Benchmark: audit append throughput (batched) and single-event latency on
SQLite and PostgreSQL, against plain inserts of the same events into the
unchained table of the same columns in the same run (the reference: what the
database does without hashing, chain lock or checkpoints). Prints ratios and
writes benchmarks/results/audit_append.json. Noisy on a shared 2-core box.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, MetaData, String, Table, insert

from audit.checkpoint import Signer
from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.store.db import Database, migrate

BATCH = 1000
BATCHES = 20
SINGLES = 300
OUT = Path(__file__).resolve().parent / "results" / "audit_append.json"

# The reference: a plain append-only table, no hash chain (created by this benchmark only).
PLAIN = Table(
    "bench_plain_audit_events", MetaData(),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("type", String(64), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("actor", String(320), index=True),
    Column("dealer_id", String(64), index=True),
    Column("customer_id", String(64), index=True),
    Column("device_id", String(64), index=True),
    Column("session_id", String(64), index=True),
    Column("source_ip", String(64)),
    Column("details", JSON, nullable=False),
)


def events(n: int, base: int = 0) -> list[AuditEventIn]:
    return [AuditEventIn(type="dwa.request", actor=f"tech{i % 50}@dealer.example", dealer_id="d1",
                         customer_id=f"c{i % 9}", device_id=f"dev{i % 97}", session_id=f"s{i // 40}",
                         source_ip="127.0.0.1",
                         details={"method": "GET", "path": f"/p{i}", "status": 200, "bytes": i})
            for i in range(base, base + n)]


def plain_rows(evs: list[AuditEventIn]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [{"at": now, "type": e.type, "outcome": str(e.outcome), "actor": e.actor, "dealer_id": e.dealer_id,
             "customer_id": e.customer_id, "device_id": e.device_id, "session_id": e.session_id,
             "source_ip": e.source_ip, "details": e.details} for e in evs]


async def measure(url: str) -> dict[str, Any]:
    await migrate(url)
    async with Database(url) as db:
        async with db.engine.begin() as conn:
            await conn.run_sync(PLAIN.metadata.create_all)
        log = AuditLog(db, Signer.generate(), checkpoint_every=1000)
        await log.append_many(events(100))  # warm-up
        batches = [events(BATCH, k * BATCH) for k in range(BATCHES)]
        t0 = time.perf_counter()
        for b in batches:
            await log.append_many(b)
        chained = BATCH * BATCHES / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        for b in batches:
            rows = plain_rows(b)
            async with db.transaction() as s:
                await s.execute(insert(PLAIN), rows)
        plain = BATCH * BATCHES / (time.perf_counter() - t0)

        lat: list[float] = []
        for e in events(SINGLES):
            t = time.perf_counter()
            await log.append(e)
            lat.append((time.perf_counter() - t) * 1000)
        plain_lat: list[float] = []
        for row in plain_rows(events(SINGLES)):
            t = time.perf_counter()
            async with db.transaction() as s:
                await s.execute(insert(PLAIN), [row])
            plain_lat.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(lat, n=100)
    return {
        "batched_events_per_s": round(chained), "reference_plain_insert_events_per_s": round(plain),
        "ratio_chained_vs_plain": round(chained / plain, 2), "meets_10k_target": chained >= 10_000,
        "single_p50_ms": round(q[49], 2), "single_p99_ms": round(q[98], 2),
        "reference_plain_single_p50_ms": round(statistics.median(plain_lat), 2),
    }


def psql(sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql],
                   check=True, capture_output=True, timeout=30)


async def main() -> None:
    result: dict[str, Any] = {"batch": BATCH, "batches": BATCHES, "singles": SINGLES,
                              "note": "2-core shared machine, other suites running: noisy"}
    with tempfile.TemporaryDirectory() as d:
        result["sqlite"] = await measure(f"sqlite+aiosqlite:///{d}/bench.db")
    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {name}")
    try:
        result["postgresql"] = await measure(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    result["load_average_1m"] = os.getloadavg()[0]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    for backend in ("sqlite", "postgresql"):
        r = result[backend]
        print(f"{backend}: chained {r['batched_events_per_s']}/s vs plain inserts "
              f"{r['reference_plain_insert_events_per_s']}/s -> ratio {r['ratio_chained_vs_plain']}; "
              f"single p50 {r['single_p50_ms']} ms")


if __name__ == "__main__":
    asyncio.run(main())
