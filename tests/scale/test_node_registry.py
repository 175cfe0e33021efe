"""The node registry (issue 18): leases, taking over expired nodes exactly once, agent streams;
both backends, PostgreSQL also with two transactions racing for the same expired node."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from printgate.store import nodes
from printgate.store.db import Database
from printgate.testing.database import fresh_database
from printgate.testing.tenancy import Tenancy

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)
ADDR = nodes.NodeAddresses("127.0.0.1:8422", "127.0.0.1:8480", "127.0.0.1:8443")


async def _register(db: Database, node_id: str, incarnation: str, now: datetime = T0) -> None:
    async with db.transaction() as s:
        await nodes.register(s, node_id, host="h", pid=1, incarnation=incarnation, addresses=ADDR,
                             lease=LEASE, now=now)


async def test_a_renewed_lease_is_not_taken_over_and_an_expired_one_once(db: Database) -> None:
    await _register(db, "n1", "i1")
    await _register(db, "n2", "i2")
    async with db.transaction() as s:
        assert await nodes.renew(s, "n1", incarnation="i1", lease=LEASE, now=T0 + timedelta(seconds=8))
    later = T0 + timedelta(seconds=11)  # n2's lease ran out at +10, n1's runs to +18
    async with db.transaction() as s:
        taken = await nodes.claim_expired(s, by="n3", now=later)
    assert [n.id for n in taken] == ["n2"]
    async with db.transaction() as s:
        assert await nodes.claim_expired(s, by="n1", now=later) == []  # expired now: never twice
        n2 = await nodes.get_node(s, "n2")
        assert n2 is not None and n2.state == nodes.EXPIRED and n2.taken_over_by == "n3"
        # the process that lost its lease cannot renew it behind the taker's back
        assert not await nodes.renew(s, "n2", incarnation="i2", lease=LEASE, now=later)


async def test_a_node_never_takes_itself_over_and_a_stopped_node_is_not_taken_over(db: Database) -> None:
    await _register(db, "n1", "i1")
    await _register(db, "n2", "i2")
    async with db.transaction() as s:
        assert await nodes.set_state(s, "n2", nodes.STOPPED, incarnation="i2", now=T0)
        assert await nodes.claim_expired(s, by="n1", now=T0 + timedelta(hours=1)) == []


async def test_a_second_process_under_the_same_id_owns_the_row(db: Database) -> None:
    await _register(db, "n1", "old")
    await _register(db, "n1", "new")
    async with db.transaction() as s:
        assert not await nodes.renew(s, "n1", incarnation="old", lease=LEASE, now=T0)
        assert await nodes.renew(s, "n1", incarnation="new", lease=LEASE, now=T0)


async def test_agent_streams_follow_the_newest_connection_and_end_with_the_node(db: Database) -> None:
    await Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1").agent("a2", "s1").save(db)
    await _register(db, "n1", "i1")
    await _register(db, "n2", "i2")
    async with db.transaction() as s:
        await nodes.stream_opened(s, "a1", "n1", T0)
        await nodes.stream_opened(s, "a2", "n1", T0)
    async with db.transaction() as s:
        await nodes.stream_opened(s, "a1", "n2", T0)  # a1 reconnected to n2
        await nodes.stream_closed(s, "a1", "n1")  # n1 sees its old stream end: n2's stays
        assert await nodes.stream_node(s, "a1") == "n2"
        assert await nodes.streams_of(s, "n1") == {"a2"}
    async with db.transaction() as s:
        await nodes.claim_expired(s, by="n2", now=T0 + timedelta(seconds=11))  # both ran out; n1 taken
        assert await nodes.stream_node(s, "a2") is None
        assert await nodes.stream_node(s, "a1") == "n2"  # a node never takes itself over


@pytest.mark.postgres
async def test_two_nodes_racing_for_an_expired_node_take_it_over_once(tmp_path: object) -> None:
    async with fresh_database("postgresql", tmp_path) as db:  # type: ignore[arg-type]
        await _register(db, "dead", "i0")
        later = T0 + timedelta(seconds=11)
        first_holds = asyncio.Event()
        release = asyncio.Event()

        async def first() -> list[str]:
            async with db.transaction() as s:
                taken = await nodes.claim_expired(s, by="n1", now=later)
                first_holds.set()
                await release.wait()  # the row stays locked until this commits
                return [n.id for n in taken]

        task = asyncio.create_task(first())
        await first_holds.wait()
        async with db.transaction() as s:  # skips the locked row instead of waiting for it
            second = await asyncio.wait_for(nodes.claim_expired(s, by="n2", now=later), 5)
        release.set()
        assert await task == ["dead"] and second == []
        async with db.session() as s:
            node = await nodes.get_node(s, "dead")
        assert node is not None and node.taken_over_by == "n1"


@pytest.mark.postgres
async def test_two_transactions_recording_the_same_agents_stream_do_not_collide(tmp_path: object) -> None:
    """A presence event and a renewal's reconcile (or two nodes) recording one agent at once:
    the later one wins, neither fails on the primary key."""
    async with fresh_database("postgresql", tmp_path) as db:  # type: ignore[arg-type]
        await Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1").save(db)
        await _register(db, "n1", "i1")
        await _register(db, "n2", "i2")
        first_wrote = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with db.transaction() as s:
                await nodes.stream_opened(s, "a1", "n1", T0)
                await s.flush()
                first_wrote.set()
                await release.wait()

        async def second() -> None:
            async with db.transaction() as s:
                await nodes.streams_opened(s, ["a1"], "n2", T0 + timedelta(seconds=1))

        one = asyncio.create_task(first())
        await first_wrote.wait()
        two = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # the second waits on the first's uncommitted row
        release.set()
        await asyncio.wait_for(asyncio.gather(one, two), 10)
        async with db.session() as s:
            assert await nodes.stream_node(s, "a1") == "n2"
