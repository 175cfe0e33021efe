"""The fleet page's "Rescan now": only for the tenant's own sites, only for technicians and
administrators, CSRF-checked, audited whether the command could be sent or not.

The command path itself (signing, the gRPC stream, the agent waking its sweep) runs for real
in ``tests/channel/test_rescan.py``; here the portal talks to the ``AgentCommands``
interface: the real agent hub without a connected agent (offline), or the real sender over
``printgate.testing``'s recording command port.
"""

from __future__ import annotations

from contextlib import aclosing

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.agent_commands import RESCAN_TTL_S, AgentCommandSender
from gateway.channel.hub import AgentHub
from printgate.domain import Outcome, Role
from printgate.store.db import Database
from printgate.testing.commands import RecordingCommandPort
from printgate.testing.portal import csrf_of
from printgate.wire import agent_pb2 as pb
from tests.fleet.conftest import FleetPortal, fleet_app, signed_in


def rescans(port: RecordingCommandPort) -> list[tuple[str, str]]:
    """(agent, requested_by) of every rescan the real sender passed to the recording port."""
    return [(c.agent_id, c.payload.requested_by) for c in port.sent if isinstance(c.payload, pb.Rescan)]


def audited(fp: FleetPortal) -> list:  # type: ignore[type-arg]
    return [e for e in fp.app.state.portal.audit.events if e.type == "agent.rescan_requested"]  # type: ignore[attr-defined]


async def test_a_technician_rescans_a_site_of_the_dealer_and_it_is_audited(fleet_db: Database) -> None:
    sent = RecordingCommandPort()
    fp = fleet_app(fleet_db, commands=AgentCommandSender(sent))
    client, user = await signed_in(fp, Role.TECHNICIAN)
    async with aclosing(client):
        page = await client.get("/fleet")
        assert page.status_code == 200
        assert 'action="/fleet/agents/a-c1/rescan"' in page.text and 'action="/fleet/agents/a-c2/rescan"' in page.text
        assert "a-c3" not in page.text  # another dealer's site
        r = await client.post("/fleet/agents/a-c1/rescan", data={"csrf_token": csrf_of(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/fleet?rescan=requested"
        shown = await client.get(r.headers["location"])
        assert "Rescan requested" in shown.text
        foreign = await client.post("/fleet/agents/a-c3/rescan", data={"csrf_token": csrf_of(page.text)})
        forged = await client.post("/fleet/agents/a-c1/rescan", data={"csrf_token": "forged"})
    assert rescans(sent) == [("a-c1", user.email)] and sent.sent[0].ttl_s == RESCAN_TTL_S
    assert foreign.status_code == 404
    assert forged.status_code in (400, 403)
    [event] = audited(fp)
    assert event.actor == user.email and event.details["agent_id"] == "a-c1" and event.details["command_id"] == "cmd-1"


async def test_a_viewer_may_not_rescan(fleet_db: Database) -> None:
    sent = RecordingCommandPort()
    fp = fleet_app(fleet_db, commands=AgentCommandSender(sent))
    client, _ = await signed_in(fp, Role.VIEWER)
    async with aclosing(client):
        page = await client.get("/fleet")
        assert "Rescan now" not in page.text
        r = await client.post("/fleet/agents/a-c1/rescan", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 403 and sent.sent == []


async def test_a_rescan_for_an_offline_agent_is_refused_visibly_and_audited_as_failed(fleet_db: Database) -> None:
    hub = AgentHub(Ed25519PrivateKey.generate())  # the real hub: no agent has a command stream
    fp = fleet_app(fleet_db, commands=AgentCommandSender(hub))
    client, _ = await signed_in(fp, Role.DEALER_ADMIN)
    async with aclosing(client):
        page = await client.get("/fleet")
        r = await client.post("/fleet/agents/a-c2/rescan", data={"csrf_token": csrf_of(page.text)})
        shown = await client.get(r.headers["location"])
    assert r.headers["location"] == "/fleet?rescan=offline"
    assert "agent is offline" in shown.text
    [event] = audited(fp)
    assert event.outcome == Outcome.FAILURE and "offline" in event.details["reason"]
