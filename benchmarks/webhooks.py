"""Benchmark: event → signed webhook delivered, while the audit log takes 1,000 events/s.

Per backend (SQLite; PostgreSQL when 127.0.0.1:5432 answers) in one run:

- load: another process appends to the same database's audit log (``AuditLog.append_many``,
  batches of 50 every 50 ms: 1,000 events/s target; the achieved rate is reported) for the
  whole measurement, as the proxy's and portal's audit would;
- measured: ``EVENTS`` outbox events (``alert.opened``), each enqueued in its own transaction
  at ``RATE``/s, delivered by the real ``WebhookDispatcher`` (poll 0.25 s, never woken: the
  poll alone bounds the wait) to a receiver in another process (a bare ASGI app under uvicorn that checks every signature and notes when
  each event id arrived). Latency = arrival - enqueue commit (same host clock);
- reference, same run, same receiver, same load: a bare httpx POST loop (one POST per event at
  the same rate, no outbox, no signature check on our side); latency = arrival - send.

Target: p99 ≤ 2 s. Writes benchmarks/results/webhooks.json. Bounded: ~20 s per backend.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from integrations.dispatcher import RetryPolicy, WebhookDispatcher
from integrations.endpoints import WebhookEndpoints
from integrations.webhook import WebhookTransport
from lab.ports import free_tcp_port
from printgate.logs import configure_logging
from printgate.store import outbox
from printgate.store.db import Database, migrate
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.tenancy import Tenancy
from printgate.vault import FileKms

EVENTS = int(os.environ.get("BENCH_EVENTS", "300"))
RATE = float(os.environ.get("BENCH_RATE", "20"))  # outbox events per second
AUDIT_RATE = 1000
AUDIT_BATCH = 50
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "webhooks.json"

RECEIVER = r'''
import json, sys, time, hmac, hashlib
import uvicorn
secret = sys.argv[2].encode()
arrived = {}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    now = time.time()
    headers = dict(scope["headers"])
    if scope["path"] == "/stats":
        out = json.dumps(arrived).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})
        return
    ok = True
    sig = headers.get(b"x-printgate-signature", b"").decode()
    if sig:
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        mac = hmac.new(secret, parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(mac, parts.get("v1", ""))
    key = headers.get(b"x-printgate-event-id", b"").decode() or json.loads(body)["id"]
    if ok:
        arrived.setdefault(key, now)
    await send({"type": "http.response.start", "status": 204 if ok else 401, "headers": []})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
'''


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(latencies: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1),
            "p99_ms": round(pct(ms, 99), 1), "max_ms": round(max(ms), 1),
            "mean_ms": round(statistics.fmean(ms), 1)}


AUDIT_LOAD = r'''
import asyncio, sys, time
sys.path.insert(0, sys.argv[3])
from audit.checkpoint import Signer
from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.store.db import Database

async def main(url, seconds):
    db = Database(url)
    log = AuditLog(db, Signer.generate(), checkpoint_every=1000)
    batch, rate = 50, 1000
    started = time.monotonic()
    next_at, i = started, 0
    while time.monotonic() - started < seconds:
        await log.append_many([AuditEventIn(type="dwa.request", actor=f"tech{i % 50}@dealer.example",
                                            dealer_id="d1", customer_id="c1", device_id="dev1",
                                            details={"path": f"/p{i + k}", "status": 200})
                               for k in range(batch)])
        i += batch
        next_at += batch / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    print(i / (time.monotonic() - started), flush=True)
    await db.aclose()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
'''


async def stats(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as c:
        return dict((await c.get(f"{url}/stats")).json())


async def measure(url: str, tmp: Path) -> dict[str, Any]:
    await migrate(url)
    db = Database(url)
    try:
        await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
               .device("dev1", "s1", "a1", "10.0.0.5").save(db))
        kms = FileKms(tmp / f"vault-{uuid.uuid4().hex[:6]}.key")
        transport = WebhookTransport(timeout=10, allow_private=True)
        dispatcher = WebhookDispatcher(db, kms, transport, policy=RetryPolicy(max_attempts=5, initial_seconds=1),
                                       poll_seconds=0.25, per_endpoint=4)
        endpoints = WebhookEndpoints(db, kms, RecordingAuditSink(), transport, allow_private=True)
        port = free_tcp_port()
        receiver_url = f"http://127.0.0.1:{port}"
        new = await endpoints.add(dealer_id="d1", url=f"{receiver_url}/hook", description="bench", kinds=[],
                                  by="bench")
        proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), new.secret])
        try:
            async with httpx.AsyncClient() as c:
                for _ in range(200):
                    try:
                        await c.get(f"{receiver_url}/stats")
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)
            seconds = 2 * EVENTS / RATE + 8  # the outbox part, the reference part, slack
            load = subprocess.Popen([sys.executable, "-c", AUDIT_LOAD, url, str(seconds), str(ROOT)],
                                    stdout=subprocess.PIPE, text=True)
            runner = asyncio.create_task(dispatcher.run())
            await asyncio.sleep(1.5)  # the load is running
            started = time.monotonic()
            enqueued: dict[str, float] = {}
            for i in range(EVENTS):
                async with db.transaction() as s:
                    event_id = await outbox.enqueue_for_device(s, kind=outbox.ALERT_OPENED, device_id="dev1",
                                                               payload={"code": "paper_jam", "n": i})
                assert event_id is not None
                enqueued[event_id] = time.time()
                await asyncio.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = await stats(receiver_url)
                if all(k in got for k in enqueued):
                    break
                await asyncio.sleep(0.2)
            got = await stats(receiver_url)
            outbox_lat = [got[k] - t for k, t in enqueued.items() if k in got]
            # the reference: a bare POST loop to the same receiver under the same load
            ref_sent: dict[str, float] = {}
            async with httpx.AsyncClient(timeout=10) as c:
                ref_start = time.monotonic()
                for i in range(EVENTS):
                    key = f"ref-{uuid.uuid4().hex}"
                    ref_sent[key] = time.time()
                    await c.post(f"{receiver_url}/hook", content=json.dumps({"id": key}).encode(),
                                 headers={"content-type": "application/json", "x-printgate-event-id": key})
                    await asyncio.sleep(max(0.0, ref_start + (i + 1) / RATE - time.monotonic()))
            got = await stats(receiver_url)
            ref_lat = [got[k] - t for k, t in ref_sent.items() if k in got]
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            out, _ = await asyncio.to_thread(load.communicate, timeout=120)
            audit_rate = float(out.strip().splitlines()[-1])
        finally:
            proc.terminate()
            proc.wait(10)
            await transport.aclose()
        missing = len(enqueued) - len(outbox_lat)
        return {"outbox_webhook": summary(outbox_lat) | {"missing": missing},
                "reference_bare_post": summary(ref_lat),
                "audit_events_per_s_achieved": round(audit_rate, 1),
                "p99_target_ms": 2000, "p99_met": missing == 0 and pct(outbox_lat, 99) <= 2.0}
    finally:
        await db.aclose()


def psql(sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql],
                   check=True, capture_output=True)


async def main() -> None:
    configure_logging("warning")  # a log line per delivery would be part of what is measured
    result: dict[str, Any] = {"events": EVENTS, "rate_per_s": RATE, "audit_target_per_s": AUDIT_RATE,
                              "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = await measure(f"sqlite+aiosqlite:///{tmp}/bench.db", Path(tmp))
        name = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
        try:
            psql(f"CREATE DATABASE {name}")
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            result["postgresql"] = {"skipped": str(exc)}
        else:
            try:
                result["postgresql"] = await measure(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", Path(tmp))
            finally:
                psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
