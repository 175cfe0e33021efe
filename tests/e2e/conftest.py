"""One whole printgate system (lab LAN, cloud, agent) shared by the end-to-end tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from agent.polling import PolledDevice, poll_device
from agent.snmp.transport import SnmpTarget
from lab.catalog import PRINTERS
from printgate.cli.demo_system import DemoSystem
from printgate.domain import Device, ReadingKind
from printgate.testing.database import psql

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DemoSystem]:
    """The whole system, once on the embedded SQLite store and once on PostgreSQL."""
    base: Path = tmp_path_factory.mktemp(f"e2e-system-{request.param}")
    url = None
    name = f"pge2e_{uuid.uuid4().hex[:12]}"
    if request.param == "postgresql":
        psql(f"CREATE DATABASE {name}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        async with DemoSystem(base, log_level="warning", database_url=url) as running:
            await running.wait_for_devices(minimum=len(PRINTERS), timeout=120)
            yield running
    finally:
        if url is not None:
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        await b.close()


def session_cookie(launched: httpx.Response) -> str:
    """The proxy's session cookie as a Cookie header value. It is ``Secure`` (browsers treat
    *.localhost as a secure context even over http); Python's cookie jar would not send it
    over http, a browser does."""
    return launched.headers["set-cookie"].split(";", 1)[0]


async def report_alerts_now(system: DemoSystem, device: Device) -> None:
    """The agent reads the printer's alert table now and uploads it over its channel (the real
    ingest path; the scheduled poll does the same every alerts_interval_seconds)."""
    agent = system.agent
    polled = PolledDevice(device.ip, SnmpTarget(device.ip, system.snmp.port, agent.credentials[0]),
                          serial=device.identity.serial, sys_object_id=device.identity.sys_object_id)
    reading = await poll_device(agent.snmp, polled, [ReadingKind.ALERTS])
    assert not reading.errors, reading.errors
    await agent.queue.put(reading)
    assert await agent.monitoring.upload_now() >= 1
