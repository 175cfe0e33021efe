"""Issue 18 findings 1 and 2 on real PostgreSQL, two nodes in one process (each its own database pool,
hub, node command bus listening on LISTEN/NOTIFY, lease and agent events, wired as ``printgate serve``
wires them): a stream of an agent ending on a node never marks it offline while another live node
holds its newer stream; a newer stream on another node cuts the older one there (ABORTED, as on one
node), audited with both nodes and both peer addresses; a renewal never takes the record back."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from gateway.agent_events import AgentEvents
from gateway.channel.hub import AgentHub
from gateway.channel.takeover import CrossNodeTakeOver
from gateway.node_commands import NodeCommandBus
from gateway.nodes import NodeLease
from printgate.domain import SessionId, event_types
from printgate.store import nodes, tenants
from printgate.store.db import Database, migrate_sync
from printgate.supervisor import Supervisor
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.database import create_pg_database, drop_pg_database
from printgate.testing.tenancy import Tenancy

pytestmark = pytest.mark.postgres
AGENT = "agent-x"
ADDR = nodes.NodeAddresses("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        url = create_pg_database()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    migrate_sync(url)
    yield url
    drop_pg_database(url)


class NoSessions:
    """AgentEvents' broker side: these tests are about presence, not sessions."""

    async def resume_tunnels(self, agent_id: str) -> int:
        return 0

    async def agent_lost(self, agent_id: str) -> None:
        return None

    async def drop_orphans(self, agent_id: str) -> int:
        return 0

    def command_result(self, command_id: str, *, ok: bool, message: str) -> str | None:
        return None

    async def close_session(self, session_id: SessionId, *, reason: str, actor: str) -> None:
        return None


@dataclass
class Node:
    id: str
    db: Database
    hub: AgentHub
    lease: NodeLease
    takeover: CrossNodeTakeOver
    audit: RecordingAuditSink


@contextlib.asynccontextmanager
async def node(url: str, node_id: str) -> AsyncIterator[Node]:
    async def nothing() -> list[str]:
        return []

    async with Database(url) as db:
        audit = RecordingAuditSink()
        hub = AgentHub(Ed25519PrivateKey.generate())
        async with NodeCommandBus(db, node_id, audit=audit) as bus:
            takeover = CrossNodeTakeOver(hub, bus, audit, node_id)
            events = AgentEvents(db=db, audit=audit, sessions=NoSessions(), presence=hub, loss_grace_s=60,
                                 node_id=node_id)
            lease = NodeLease(db, node_id, ADDR, lease_s=30, renew_s=1000, take_over=nothing,
                              online_agents=hub.online_agents, supervisor=Supervisor("test"),
                              on_stream_taken=takeover.taken, cut_stream=takeover.cut_here,
                              has_stream=lambda agent: "grpc" in hub.connected_channels(agent))
            async with lease:
                hub.add_presence_listener(events.on_presence)  # the order printgate serve adds them in
                hub.add_presence_listener(lease.presence)
                try:
                    yield Node(node_id, db, hub, lease, takeover, audit)
                finally:
                    await takeover.aclose()
                    await events.aclose()


async def _state(db: Database) -> tuple[bool, str | None]:
    async with db.session() as s:
        agent = await tenants.get_agent(s, AGENT)
        holder = await nodes.stream_node(s, AGENT)
    assert agent is not None
    return agent.online, holder


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[Node, Node]]:
    async with Database(pg_url) as db:
        async with db.transaction() as s:
            for table in ("node_commands", "agent_streams", "gateway_nodes"):
                await s.execute(text(f"DELETE FROM {table}"))
            seeded = await tenants.get_agent(s, AGENT) is not None
            await s.execute(text("UPDATE agents SET online = false"))
        if not seeded:
            await Tenancy().chain(dealer="d1", customer="c1", site="s1", agent=AGENT).save(db)
    async with node(pg_url, "n1") as n1, node(pg_url, "n2") as n2:
        yield n1, n2


async def test_a_newer_stream_on_another_node_cuts_the_older_one_audited_and_the_agent_stays_online(
        two: tuple[Node, Node]) -> None:
    n1, n2 = two
    old = await n1.hub.open_stream(AGENT, "serial-1", peer_ip="127.0.0.5")
    assert await _state(n1.db) == (True, "n1")

    new = await n2.hub.open_stream(AGENT, "serial-1", peer_ip="127.0.0.6")  # the copy, through the balancer
    await n2.takeover.idle()
    assert old.taken_over and old.cut_reason is not None and "n2" in old.cut_reason and "127.0.0.6" in old.cut_reason
    assert new.cut_reason is None
    records = n2.audit.of(event_types.AGENT_STREAM_TAKEN_OVER)
    assert len(records) == 1
    record = records[0]
    assert record.details["reason"] == "command_stream_taken_over" and record.details["agent_id"] == AGENT
    assert (record.details["node"], record.details["previous_node"], record.details["previous_cut"]) == ("n2", "n1", True)
    assert record.source_ip == "127.0.0.6" and record.personal == {"previous_peer_ip": "127.0.0.5"}

    # node 1's renewal before its gRPC handler has let go of the cut stream: no flip-flop of the record
    await n1.lease.reconcile_streams()
    assert await _state(n1.db) == (True, "n2")
    # then the old stream ends on node 1 (finding 1): the agent is online on node 2 and stays so
    await n1.hub.close_stream(old)
    assert await _state(n1.db) == (True, "n2")
    await n2.lease.reconcile_streams()
    assert await _state(n1.db) == (True, "n2")

    await n2.hub.close_stream(new)  # now it is gone everywhere
    assert await _state(n1.db) == (False, None)


async def test_a_node_back_from_a_pause_cuts_its_stale_stream_instead_of_taking_the_record_back(
        two: tuple[Node, Node]) -> None:
    """Node 1 paused past its lease (taken over: its stream rows dropped), the agent reconnected to node 2;
    node 1 wakes up still holding the dead stream: its renewal sees node 2's newer one and cuts its own,
    and the end of that stream leaves the agent online."""
    n1, n2 = two
    stale = await n1.hub.open_stream(AGENT, "serial-1", peer_ip="127.0.0.5")
    async with n1.db.transaction() as s:  # what the taker did while node 1 was paused
        await nodes.streams_closed(s, [AGENT], "n1")
    await n2.hub.open_stream(AGENT, "serial-1", peer_ip="127.0.0.5")
    await n2.takeover.idle()
    assert not n2.audit.of(event_types.AGENT_STREAM_TAKEN_OVER)  # nobody else held it: a plain reconnect

    await n1.lease.reconcile_streams()
    assert stale.taken_over and stale.cut_reason is not None
    assert await _state(n1.db) == (True, "n2")
    await n1.hub.close_stream(stale)
    assert await _state(n1.db) == (True, "n2")


async def test_mqtt_presence_on_another_node_neither_takes_the_record_nor_cuts_the_stream(
        two: tuple[Node, Node]) -> None:
    """Every node's MQTT bridge sees the broker's presence of an agent alike: that is no newer connection."""
    n1, n2 = two
    grpc = await n1.hub.open_stream(AGENT, "serial-1", peer_ip="127.0.0.5")
    await n2.hub.set_mqtt_presence(AGENT, True)
    await n2.takeover.idle()
    await n2.lease.reconcile_streams()
    await n1.lease.reconcile_streams()
    assert grpc.cut_reason is None and not n2.audit.of(event_types.AGENT_STREAM_TAKEN_OVER)
    assert await _state(n1.db) == (True, "n1")
