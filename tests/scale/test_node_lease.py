"""``gateway.nodes.NodeLease`` on both backends: registration, renewal, a lost lease taken back,
agent streams from presence and reconciled on renewal, SIGTERM's draining then stopped, and a
second live process under the same node id refused."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from gateway.nodes import NodeLease
from printgate.errors import ConfigError
from printgate.store import nodes
from printgate.store.db import Database
from printgate.supervisor import Supervisor
from printgate.testing.tenancy import Tenancy

ADDR = nodes.NodeAddresses("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def _node(db: Database, node_id: str) -> nodes.Node:
    async with db.session() as s:
        found = await nodes.get_node(s, node_id)
    assert found is not None
    return found


def _lease(db: Database, node_id: str, clock: Clock, online: set[str] | None = None,
           taken: list[int] | None = None) -> NodeLease:
    async def take_over() -> list[str]:
        if taken is not None:
            taken.append(1)
        return []
    # a supervisor never started: its renewal loop stays put, the test calls tick() itself
    return NodeLease(db, node_id, ADDR, lease_s=10, renew_s=1000, take_over=take_over,
                     online_agents=lambda: set(online or ()), clock=clock, supervisor=Supervisor("test"))


async def test_renewal_streams_and_an_orderly_stop(db: Database) -> None:
    await Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1").agent("a2", "s1").save(db)
    clock, online, taken = Clock(), {"a1"}, []
    async with _lease(db, "n1", clock, online, taken) as lease:
        first = await _node(db, "n1")
        assert first.state == nodes.ACTIVE and first.addresses == ADDR and first.pid == os.getpid()
        await lease.tick()
        clock.now += timedelta(seconds=5)
        await lease.tick()
        assert (await _node(db, "n1")).lease_expires_at == clock.now + timedelta(seconds=10)
        assert len(taken) >= 2  # expired nodes looked for on every renewal
        async with db.session() as s:
            assert await nodes.streams_of(s, "n1") == {"a1"}  # reconciled from the hub's set
        await lease.presence("a2", True)
        await lease.presence("a1", False)
        async with db.session() as s:
            assert await nodes.streams_of(s, "n1") == {"a2"}
        await lease.drain()
        assert (await _node(db, "n1")).state == nodes.DRAINING
        clock.now += timedelta(seconds=5)
        await lease.tick()  # a draining node keeps its lease
        assert (await _node(db, "n1")).lease_expires_at == clock.now + timedelta(seconds=10)
    stopped = await _node(db, "n1")
    assert stopped.state == nodes.STOPPED and stopped.stopped_at is not None
    async with db.session() as s:
        assert await nodes.streams_of(s, "n1") == set()


async def test_a_node_taken_over_while_alive_registers_again(db: Database) -> None:
    clock, told = Clock(), []

    async def lost() -> list[str]:  # the broker ends what the taker ended in the store
        told.append(clock.now)
        return []
    taken_back = _lease(db, "n1", clock)
    taken_back._on_lease_lost = lost
    async with taken_back as lease:
        async with db.transaction() as s:  # n1 stalled past its lease; n2 took it over
            assert [n.id for n in await nodes.claim_expired(s, by="n2", now=clock.now + timedelta(seconds=11))] == ["n1"]
        await lease.tick()
        assert lease.lease_lost and len(told) == 1
        await lease.tick()
        assert len(told) == 1  # renewed again: told once
        back = await _node(db, "n1")
        assert back.state == nodes.ACTIVE and back.taken_over_by is None and back.incarnation == lease.incarnation


async def test_a_second_live_process_under_the_same_node_id_is_refused(db: Database) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        clock = Clock()
        async with db.transaction() as s:
            await nodes.register(s, "n1", host=socket.gethostname(), pid=other.pid, incarnation="theirs",
                                 addresses=ADDR, lease=timedelta(seconds=10), now=clock.now)
        with pytest.raises(ConfigError, match="in use by process"):
            async with _lease(db, "n1", clock):
                pass
        assert (await _node(db, "n1")).incarnation == "theirs"  # left alone
    finally:
        other.kill()
        other.wait()
    async with _lease(db, "n1", clock) as lease:  # its process is gone: this node's restart
        assert (await _node(db, "n1")).incarnation == lease.incarnation
