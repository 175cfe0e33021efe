"""The gateway's rules for agent events, alone: a real store, no channel, no broker process.

``AgentEvents`` acts on the session broker through the ``AgentSessions`` protocol; the
test gives it a recorder of those calls (the real broker needs a relay, a proxy and an
agent, which the e2e suite runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.agent_events import AgentEvents
from printgate.domain import Outcome, SessionId, SiteId
from printgate.store import devices, tenants
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.tenancy import Tenancy
from printgate.wire import agent_pb2 as pb

AGENT = "agent-1"
SITE = SiteId("site-1")


@dataclass
class SessionsRecorder:
    """Records what AgentEvents asks of the broker; ``failing`` maps command id -> session id."""

    failing: dict[str, str] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    closed: list[tuple[str, str, str]] = field(default_factory=list)

    async def resume_tunnels(self, agent_id: str) -> int:
        self.resumed.append(agent_id)
        return 1

    async def agent_lost(self, agent_id: str) -> None:
        self.lost.append(agent_id)

    async def drop_orphans(self, agent_id: str) -> int:
        return 0

    def command_result(self, command_id: str, *, ok: bool, message: str) -> str | None:
        return None if ok else self.failing.get(command_id)

    async def close_session(self, session_id: SessionId, *, reason: str, actor: str) -> None:
        self.closed.append((session_id, reason, actor))


@dataclass
class Presence:
    online: set[str] = field(default_factory=set)

    def is_online(self, agent_id: str) -> bool:
        return agent_id in self.online


@dataclass
class Rig:
    events: AgentEvents
    audit: RecordingAuditSink
    sessions: SessionsRecorder
    presence: Presence
    db: Database


@pytest.fixture
async def rig(db: Database) -> AsyncIterator[Rig]:
    await Tenancy().chain(dealer="dealer-1", customer="cust-1", site=SITE, agent=AGENT).save(db)
    audit, sessions, presence = RecordingAuditSink(), SessionsRecorder(), Presence()
    events = AgentEvents(db=db, audit=audit, sessions=sessions, presence=presence,
                         loss_grace_s=0.3, resume_delay_s=0.05)
    yield Rig(events, audit, sessions, presence, db)
    await events.aclose()


def printer(ip: str, serial: str) -> pb.DiscoveredDevice:
    return pb.DiscoveredDevice(ip=ip, ews_port=80, ews_scheme="http", serial=serial, model="M1",
                               status=pb.DEVICE_STATUS_PRINTER)


async def only_device_at(db: Database, ip: str, serial: str) -> bool:
    """Whether the device recorded with ``serial`` at ``ip`` is identity-verified."""
    async with db.session() as s:
        found = [d for d, _ in await devices.list_devices_of_dealer(s, "dealer-1")
                 if d.ip == ip and d.identity.serial == serial]
    assert len(found) == 1, found
    return found[0].identity_verified


async def test_another_printer_at_a_known_ip_marks_the_known_one_unverified(rig: Rig) -> None:
    await rig.events.on_inventory(AGENT, [printer("10.0.0.5", "SER-A"),
                                          pb.DiscoveredDevice(ip="10.0.0.9", status=pb.DEVICE_STATUS_PRINTER)])
    assert await only_device_at(rig.db, "10.0.0.5", "SER-A") is True
    # no web page found on 10.0.0.9: still a printer (monitored), remote access refused by policy
    assert rig.audit.events[-1].details == {"printers": 2, "reported": 2, "without_web_page": 1}

    await rig.events.on_inventory(AGENT, [printer("10.0.0.5", "SER-B")])  # swapped device

    assert await only_device_at(rig.db, "10.0.0.5", "SER-A") is False
    assert await only_device_at(rig.db, "10.0.0.5", "SER-B") is True
    changed = [e for e in rig.audit.events if e.type == "device.identity_changed"]
    assert len(changed) == 1
    assert changed[0].outcome == Outcome.FAILURE and changed[0].details["now_answering"] == "SER-B"

    await rig.events.on_inventory(AGENT, [printer("10.0.0.5", "SER-B")])  # flagged once only
    assert rig.audit.types().count("device.identity_changed") == 1


async def test_inventory_of_an_unknown_agent_is_ignored(rig: Rig) -> None:
    await rig.events.on_inventory("agent-unknown", [printer("10.0.0.5", "SER-A")])
    assert rig.audit.events == []


async def test_an_agent_that_stays_away_past_the_grace_period_loses_its_sessions(rig: Rig) -> None:
    await rig.events.on_presence(AGENT, False)
    async with rig.db.session() as s:
        agent = await tenants.get_agent(s, AGENT)
    assert agent is not None and agent.online is False and agent.last_seen is not None
    await asyncio.sleep(0.1)
    assert rig.sessions.lost == []  # still within the grace period
    await asyncio.sleep(0.4)
    assert rig.sessions.lost == [AGENT]
    assert rig.sessions.resumed == []


async def test_an_agent_back_within_the_grace_period_gets_its_tunnels_resumed(rig: Rig) -> None:
    await rig.events.on_presence(AGENT, False)
    await asyncio.sleep(0.1)
    rig.presence.online.add(AGENT)
    await rig.events.on_presence(AGENT, True)
    await asyncio.sleep(0.5)  # past both the resume delay and the original grace period
    assert rig.sessions.resumed == [AGENT]
    assert rig.sessions.lost == []


async def test_an_agent_coming_online_without_a_pending_loss_resumes_nothing(rig: Rig) -> None:
    await rig.events.on_presence(AGENT, True)
    await asyncio.sleep(0.15)
    assert rig.sessions.resumed == []


async def test_a_failing_command_result_ends_its_session_with_an_audit_event(rig: Rig) -> None:
    rig.sessions.failing = {"cmd-1": "sess-1", "cmd-2": "sess-2"}
    await rig.events.on_command_result(AGENT, pb.CommandResult(
        command_id="cmd-1", ok=False, error_code="identity_mismatch", message="serial differs"))
    await rig.events.on_command_result(AGENT, pb.CommandResult(
        command_id="cmd-2", ok=False, error_code="connect_failed", message="refused"))
    await rig.events.on_command_result(AGENT, pb.CommandResult(command_id="cmd-3", ok=True))

    assert [(e.type, e.session_id) for e in rig.audit.events] == [
        ("device.identity_mismatch", "sess-1"), ("tunnel.failed", "sess-2")]
    assert rig.sessions.closed == [("sess-1", "serial differs", f"agent:{AGENT}"),
                                   ("sess-2", "refused", f"agent:{AGENT}")]


async def test_aclose_cancels_a_pending_loss_check(rig: Rig) -> None:
    await rig.events.on_presence(AGENT, False)
    await rig.events.aclose()
    await asyncio.sleep(0.4)
    assert rig.sessions.lost == []
