"""A cloud process that dies (killed) leaves its agents marked online in the database; the next cloud
process must not show them "online" for good: at start they are set offline until they reconnect,
audited in aggregate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent.channel.enroll import enroll
from printgate.cli.demo_system import DemoSystem
from printgate.store.models.core import AgentRow
from printgate.store.tenants import set_agent_presence


async def test_agents_left_online_by_a_dead_cloud_are_offline_after_its_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'printgate.db'}"
    async with DemoSystem(tmp_path / "first", log_level="warning", with_agent=False, database_url=url) as system:
        identity = await enroll(system.cloud.channel.enrol_target, system.enrolment_token, tmp_path / "agent",
                                ca_cert_pem=system.cloud.ca.cert_pem)
        # what the database holds when the cloud is SIGKILLed while the agent is connected
        async with system.cloud.db.transaction() as s:
            await set_agent_presence(s, identity.agent_id, online=True, at=datetime.now(UTC))

    async with DemoSystem(tmp_path / "second", log_level="warning", with_agent=False, database_url=url) as system:
        async with system.cloud.db.session() as s:
            row = await s.get(AgentRow, identity.agent_id)
        assert row is not None and row.online is False, "the agent still shows online after the cloud restarted"
        assert row.last_seen is not None  # the agents page can say when it was last seen
        resets = [e for e in await system.audit_events() if e.type == "agent.presence.reset_at_start"]
        assert len(resets) == 1 and resets[0].details["agents"] == 1
        assert identity.agent_id in resets[0].details["agent_ids"]
