"""The cloud's /metrics (Prometheus text) counts what happened: a session opened and open, its tunnel,
readings received and stored, audit appends and their latency, a refused session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.domain import DeviceId, User
from printgate.store import tenants

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(base: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"{base}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _v(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_cloud_metrics_count_sessions_tunnels_readings_and_audit(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "demo", log_level="warning",
                          agent_overrides={"supplies_interval_seconds": 1.0, "upload_interval_seconds": 0.5}) as system:
        await system.wait_for_devices(minimum=len(PRINTERS), timeout=120)
        before = await _scrape(system.portal_url)
        await system.open_session_as_demo_user(PRINTERS[0].ip)
        user = await _demo_user(system)
        refused = await system.cloud.broker.open_session(user, DeviceId("no-such-device"), source_ip="127.0.0.1",
                                                         mfa_age_seconds=1.0)
        assert not hasattr(refused, "launch_url")
        async with asyncio.timeout(30):
            while _v(after := await _scrape(system.portal_url), "printgate_readings_stored_total") <= \
                    _v(before, "printgate_readings_stored_total"):
                await asyncio.sleep(0.5)
        await system.close_all_sessions(reason="test over")
        closed = await _scrape(system.portal_url)
        async with httpx.AsyncClient(timeout=10) as client:
            ready = await client.get(f"{system.portal_url}/readyz")
            alive = await client.get(f"{system.portal_url}/healthz")
    assert alive.status_code == 200 and ready.status_code == 200
    tasks = ready.json()["tasks"]  # the cloud's supervised loops
    assert {"dwa-reaper", "audit-checkpoint-timer"} <= set(tasks)
    assert all(t["state"] == "running" for t in tasks.values())

    assert _v(after, "printgate_sessions_opened_total") == _v(before, "printgate_sessions_opened_total") + 1
    assert _v(after, "printgate_sessions_refused_total") == _v(before, "printgate_sessions_refused_total") + 1
    assert _v(after, "printgate_sessions_open") == 1 and _v(closed, "printgate_sessions_open") == 0
    assert _v(after, "printgate_tunnels_open") == 1
    assert _v(after, "printgate_readings_received_total") >= _v(after, "printgate_readings_stored_total") > 0
    assert _v(after, "printgate_audit_append_seconds_count") > _v(before, "printgate_audit_append_seconds_count")
    assert ("printgate_audit_append_failures_total", ()) in after


async def _demo_user(system: DemoSystem) -> User:
    async with system.cloud.db.session() as s:
        user = await tenants.get_user(s, "user-demo-tech")
    assert user is not None
    return user
