"""A different printer appears on a known address: flagged, audited, and no tunnel to it."""

from __future__ import annotations

from pathlib import Path

from lab.catalog import by_name
from printgate.interfaces import SessionRefused
from printgate.store import devices, tenants
from printgate.system import DemoSystem

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
