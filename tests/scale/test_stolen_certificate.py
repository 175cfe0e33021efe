"""Issue 18 findings 2, 1 and 5 from outside, with real ``printgate serve`` processes on one PostgreSQL
database (tests/scale/cluster.py, each node on its own loopback address) and real gRPC agent channels:

- a copy of an agent's certificate connecting to node 2 while the agent is connected to node 1 cuts
  node 1's stream (the agent is told ABORTED "taken over … on gateway node node-2"), node 2 holds the
  record, ``agent.stream.taken_over`` is in the audit trail with both nodes, and the agent stays online;
- the stream's end on node 2 then marks the agent offline (nobody else holds it);
- a third node started with keys of its own (no shared key directory) refuses to start, naming them."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.channel.enroll import EnrolledIdentity, enroll
from agent.channel.grpc_client import GrpcChannel
from printgate.domain import event_types
from printgate.store import channel as channel_store
from printgate.store import nodes, tenants
from printgate.store.audit import query_records
from printgate.store.db import Database
from printgate.testing.database import create_pg_database, drop_pg_database
from printgate.testing.tenancy import Tenancy
from tests.scale.cluster import SHARED, Cluster, until

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[tuple[Cluster, Database]]:
    try:
        url = create_pg_database()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    base = Path(tempfile.mkdtemp(prefix="pgsc-"))  # short: the relays' Unix sockets live below /tmp
    c = Cluster(base, url, count=3)
    db = Database(url)
    try:
        first, second, third = c.nodes
        first.start()
        await c.wait_state(db, first, nodes.ACTIVE)
        for name in SHARED:  # the shared keys to node 2 only; node 3 makes its own
            src, dst = first.data / name, second.data / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            elif src.exists():
                shutil.copy2(src, dst)
        second.start()
        third.start()
        yield c, db
    finally:
        c.stop()
        await db.aclose()
        drop_pg_database(url)
        shutil.rmtree(base, ignore_errors=True)


async def _state(db: Database, agent_id: str) -> tuple[bool, str | None]:
    async with db.session() as s:
        agent = await tenants.get_agent(s, agent_id)
        holder = await nodes.stream_node(s, agent_id)
    assert agent is not None
    return agent.online, holder


async def test_a_copied_certificate_on_another_node_cuts_the_first_stream_audited_and_keys_must_match(
        cluster: tuple[Cluster, Database]) -> None:
    c, db = cluster
    one, two, three = c.nodes
    # node 3 started with keys of its own, not the shared key directory: refused, naming them (finding 5)
    await until("node 3 refused (own keys)", lambda: _ended(three), 60)
    assert "uses other keys than the live node(s) node-1" in three.tail() and "key_dir" in three.tail()
    await c.wait_serving(db, two)
    await Tenancy().chain(dealer="d1", customer="c1", site="site-x").save(db)
    async with db.transaction() as s:
        token = await channel_store.create_enrolment_token(s, "site-x", ttl=timedelta(minutes=5), created_by="test")
    ca = (one.data / "agent-ca" / "agent-ca.crt").read_bytes()
    identity = await enroll(f"{one.ip}:{c.ports.enrol}", token, c.base / "agent", ca_cert_pem=ca)
    agent = identity.agent_id

    original = GrpcChannel(f"{one.ip}:{c.ports.grpc}", identity)
    await original.connect()
    try:
        await original.wait_connected(15)
        await until("node 1 holds the stream", lambda: _held(db, agent, "node-1"), 15)
        copy = GrpcChannel(f"{two.ip}:{c.ports.grpc}", _copy(identity, c.base / "copy"))
        await copy.connect()
        try:
            await copy.wait_connected(15)
            await until("node 1's stream cut as taken over",
                        lambda: _async("taken over" in (original.last_error or "") and "node-2" in original.last_error), 15)
        finally:
            await original.aclose()
        await until("node 2 holds the stream", lambda: _held(db, agent, "node-2"), 15)

        async def audited() -> bool:
            records = await query_records(db, types=[event_types.AGENT_STREAM_TAKEN_OVER])
            details = [json.loads(r.entry or "{}").get("details", {}) for r in records]
            return any(d.get("cross_node") and d.get("previous_node") == "node-1" and d.get("node") == "node-2"
                       and d.get("agent_id") == agent for d in details)
        await until("agent.stream.taken_over audited across nodes", audited, 15)
        assert await _state(db, agent) == (True, "node-2")  # node 1's stream ending left it online
    finally:
        await copy.aclose()

    async def offline() -> bool:
        return await _state(db, agent) == (False, None)
    await until("offline once its last stream ended", offline, 15)


async def _ended(node: object) -> bool:
    proc = getattr(node, "proc", None)
    return proc is not None and proc.poll() is not None


async def _held(db: Database, agent_id: str, node_id: str) -> bool:
    return (await _state(db, agent_id))[1] == node_id


async def _async(value: bool) -> bool:
    return value


def _copy(identity: EnrolledIdentity, where: Path) -> EnrolledIdentity:
    """The agent's certificate and key copied to another machine (its own data directory)."""
    shutil.copytree(identity.data_dir, where)
    return EnrolledIdentity.load(where)
