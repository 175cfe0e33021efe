"""A different printer appears on a known address: flagged, audited, and no tunnel to it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from lab.catalog import by_name
from printgate.cli.demo_system import DemoSystem
from printgate.interfaces import SessionRefused
from printgate.store import devices, tenants
from tests.e2e.conftest import session_cookie

KNOWN = by_name("sharp")
INTRUDER = by_name("epson")


async def test_rediscovery_flags_a_different_device_on_a_known_ip_and_refuses_access(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path, log_level="warning") as system:
        await system.wait_for_devices(minimum=11, timeout=90)
        before = await system.device_at(KNOWN.ip)
        assert before.identity_verified

        await system.snmp.swap(KNOWN.ip, INTRUDER.name)
        await system.runtime.scan_once()

        async with system.cloud.db.session() as s:
            after = await devices.get_device(s, before.id)
            user = await tenants.get_user(s, "user-demo-tech")
        assert after is not None and after.identity_verified is False
        flagged = [e for e in await system.audit_events() if e.type == "device.identity_changed"]
        assert [e.device_id for e in flagged] == [before.id]

        assert user is not None
        result = await system.cloud.broker.open_session(user, before.id, source_ip="127.0.0.1",
                                                        mfa_age_seconds=1.0)
        assert isinstance(result, SessionRefused)
        assert any("identity" in r.code for r in result.decision.reasons), result.decision.explain()


async def test_device_swapped_mid_session_is_refused_reported_and_the_session_ended(tmp_path: Path) -> None:
    fast_checks = {"verify_cache_seconds": 0.2}
    async with DemoSystem(tmp_path, log_level="warning", agent_overrides=fast_checks) as system:
        await system.wait_for_devices(minimum=11, timeout=90)
        launch = await system.open_session_as_demo_user(KNOWN.ip)
        parts = urlsplit(launch)
        local = f"http://127.0.0.1:{parts.port}"
        async with httpx.AsyncClient(timeout=30) as client:
            first = await client.get(f"{local}{parts.path}?{parts.query}", headers={"Host": parts.netloc})
            key = {"Host": parts.netloc, "Cookie": session_cookie(first)}
            page = await client.get(f"{local}/", headers=key)
            assert page.status_code == 200 and KNOWN.name in page.text

        await system.snmp.swap(KNOWN.ip, INTRUDER.name)
        await asyncio.sleep(0.5)
        # A new browser connection means a new tunnel connection: the agent checks the device again.
        async with httpx.AsyncClient(timeout=30) as client:
            refused = await client.get(f"{local}/", headers=key)
            assert refused.status_code >= 400 and "Device home" not in refused.text
            async with asyncio.timeout(20):
                while system.cloud.broker.live_sessions_of("user-demo-tech"):
                    await asyncio.sleep(0.1)
            ended = await client.get(f"{local}/", headers=key)
        assert "ended" in ended.text.lower()
        mismatch = [e for e in await system.audit_events() if e.type == "device.identity_mismatch"]
        assert mismatch and f"the device at {KNOWN.ip} is no longer printer" in mismatch[0].details["message"]
