"""Who may read the metrics. The portal's /metrics (a real uvicorn server) answers only direct
loopback clients when no [portal] metrics_token is set (a request relayed by a proxy is refused),
and only the bearer token when one is; the agent's local endpoint (a real `printgate agent run`)
exports the agent's families and never the cloud's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.channel.enroll import enroll
from lab.catalog import PRINTERS
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.cli.demo_system import DemoSystem
from printgate.settings import PortalSettings
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, served
from tests.faults.agent_proc import start_agent, stop, wait_status, write_config

TOKEN = secrets.token_urlsafe(32)
CLOUD_ONLY = {"printgate_sessions_open", "printgate_sessions_opened", "printgate_proxy_requests",
              "printgate_readings_received", "printgate_audit_append_seconds", "printgate_database_errors"}


async def _portal(tmp: Path, token: str | None) -> AsyncIterator[str]:
    async with migrated(sqlite_url(tmp / "portal.db")) as db:
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=secrets.token_urlsafe(32), metrics_token=token)
        clock, audit = Clock(), RecordingAuditSink()
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
        async with served(app, port, proxy_headers=False):
            yield base


@pytest.fixture
async def open_portal(tmp_path: Path) -> AsyncIterator[str]:
    async for base in _portal(tmp_path, None):
        yield base


@pytest.fixture
async def token_portal(tmp_path: Path) -> AsyncIterator[str]:
    async for base in _portal(tmp_path, TOKEN):
        yield base


async def test_without_a_token_only_direct_loopback_clients_read_metrics(open_portal: str) -> None:
    async with httpx.AsyncClient(base_url=open_portal, timeout=10) as c:
        direct = await c.get("/metrics")
        relayed = [await c.get("/metrics", headers={h: "203.0.113.7"})
                   for h in ("X-Forwarded-For", "X-Real-IP", "X-Client-IP", "True-Client-IP",
                             "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP")]
        relayed.append(await c.get("/metrics", headers={"Via": "1.1 nginx"}))  # a proxy saying nothing else
        relayed.append(await c.get("/metrics", headers={"Forwarded": "for=203.0.113.7"}))
    assert direct.status_code == 200 and "printgate_sessions_open" in direct.text
    for r in relayed:
        assert r.status_code == 403 and "metrics_token" in r.text and "printgate_" not in r.text


async def test_with_a_token_only_its_bearer_reads_metrics(token_portal: str) -> None:
    async with httpx.AsyncClient(base_url=token_portal, timeout=10) as c:
        none = await c.get("/metrics")
        wrong = await c.get("/metrics", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
        basic = await c.get("/metrics", headers={"Authorization": "Basic " + TOKEN})
        right = await c.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
        health = await c.get("/healthz")
    for r in (none, wrong, basic):
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "printgate_" not in r.text
    assert right.status_code == 200 and "printgate_sessions_open" in right.text
    assert health.status_code == 200  # the load balancer's probes stay open


async def test_the_agent_endpoint_exports_agent_families_only(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "cloud", log_level="warning", with_agent=False) as system:
        agent_dir = tmp_path / "agent"
        await enroll(system.cloud.channel.enrol_target, system.enrolment_token, agent_dir,
                     ca_cert_pem=system.cloud.ca.cert_pem)
        port = free_tcp_port()
        agent = system.agent_settings(agent_dir).to_config()
        agent.update(targets=[PRINTERS[0].ip], scan_interval_seconds=3600.0, stop_deadline_seconds=3.0,
                     metrics_port=port)
        config = write_config(tmp_path / "agent.toml", agent)
        proc = await start_agent(config, tmp_path / "agent.log")
        try:
            await wait_status(config, lambda s: s.get("running") and s.get("channel") == "connected",
                              timeout=60, what="agent running")
            async with httpx.AsyncClient(timeout=10) as client:
                scraped = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        finally:
            await stop(proc)
    families = {f.name for f in text_string_to_metric_families(scraped)}
    assert {"printgate_agent_queue_length", "printgate_agent_degraded", "printgate_task_restarts"} <= families
    assert "process_cpu_seconds" in families
    assert not families & CLOUD_ONLY, families & CLOUD_ONLY
