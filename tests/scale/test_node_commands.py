"""Cross-node commands (``gateway.node_commands``, ``printgate.store.node_commands``) on real
PostgreSQL LISTEN/NOTIFY: a command reaches the node it names and its result comes back; a lost
notification (command or result) is recovered by the re-read on listen and on renewal; two
claimers racing run every command exactly once; a node that does not answer → a clear refusal
within the timeout, audited; a fan-out to agents over three nodes, one notification per node.
SQLite: the same interface, local delivery only."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.errors import NodeCommandFailed, NodeUnavailable
from gateway.node_commands import NodeCommandBus
from printgate.domain import event_types
from printgate.errors import PrintgateError
from printgate.store import node_commands as store
from printgate.store import nodes
from printgate.store.db import Database, migrate_sync
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.database import create_pg_database, drop_pg_database, migrated, sqlite_url
from printgate.testing.tenancy import Tenancy

ADDR = nodes.NodeAddresses("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")


@pytest.fixture(scope="module")
def pg_module() -> Iterator[str]:
    """One migrated PostgreSQL database for the module (migrating takes seconds)."""
    try:
        url = create_pg_database()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    migrate_sync(url)
    yield url
    drop_pg_database(url)


@pytest.fixture
async def pg(pg_module: str) -> AsyncIterator[str]:
    async with Database(pg_module) as db, db.transaction() as s:
        for table in ("node_commands", "agent_streams", "gateway_nodes"):
            await s.execute(text(f"DELETE FROM {table}"))
    yield pg_module


@contextlib.asynccontextmanager
async def bus(url: str, node_id: str, handlers: dict[str, Any] | None = None,
              audit: RecordingAuditSink | None = None, *, drop_results: bool = False) -> AsyncIterator[NodeCommandBus]:
    async with Database(url) as db:
        b = NodeCommandBus(db, node_id, audit=audit, handlers=handlers)
        if drop_results:  # the result notifications never arrive (a connection that broke meanwhile)
            heard = b._notified

            def only_commands(conn: object, pid: int, channel: str, payload: str) -> None:
                if not payload.startswith("r:"):
                    heard(conn, pid, channel, payload)
            b._notified = only_commands  # type: ignore[method-assign,assignment]
        async with b:
            yield b


def echo_handler(seen: list[tuple[dict[str, Any], str | None]]) -> Any:
    async def echo(payload: dict[str, Any], agent_id: str | None) -> dict[str, Any]:
        seen.append((payload, agent_id))
        if payload.get("fail"):
            raise PrintgateError(f"refused: {payload['fail']}")
        return {"echo": payload, "agent": agent_id}
    return echo


@pytest.mark.postgres
async def test_a_command_reaches_its_node_and_the_result_comes_back(pg: str) -> None:
    seen: list[tuple[dict[str, Any], str | None]] = []
    async with bus(pg, "node-1", {"echo": echo_handler(seen)}) as one, bus(pg, "node-2") as two:
        result = await two.request("node-1", "echo", {"x": 1}, timeout_s=10, agent_id="a1")
        assert result == {"echo": {"x": 1}, "agent": "a1"}
        assert seen == [({"x": 1}, "a1")] and one.notifications >= 1 and two.notifications >= 1
        with pytest.raises(NodeCommandFailed, match="refused: no"):
            await two.request("node-1", "echo", {"fail": "no"}, timeout_s=10)
        with pytest.raises(NodeCommandFailed, match="no handler for 'other'"):
            await two.request("node-1", "other", {}, timeout_s=10)
        async with one._db.session() as s:
            assert await store.counts(s) == {store.DONE: 1, store.FAILED: 2}


@pytest.mark.postgres
async def test_a_lost_command_notification_is_recovered_when_the_node_listens_again(pg: str) -> None:
    seen: list[tuple[dict[str, Any], str | None]] = []
    async with bus(pg, "node-2") as two:
        asking = asyncio.create_task(two.request("node-1", "echo", {"n": 7}, timeout_s=20))
        await asyncio.sleep(0.3)  # node 1 is not listening: its notification is lost
        assert not asking.done()
        async with bus(pg, "node-1", {"echo": echo_handler(seen)}):  # (re)listen → re-read
            assert (await asyncio.wait_for(asking, 10)) == {"echo": {"n": 7}, "agent": None}
    assert seen == [({"n": 7}, None)]


@pytest.mark.postgres
async def test_a_command_sent_while_the_listen_connection_is_lost_runs_after_it_listens_again(pg: str) -> None:
    seen: list[tuple[dict[str, Any], str | None]] = []
    async with bus(pg, "node-1", {"echo": echo_handler(seen)}) as one, bus(pg, "node-2") as two:
        async with one._db.session() as s:  # the server ends node 1's LISTEN connection
            ended = (await s.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE :listen"),
                {"listen": f"LISTEN %{store.channel_of('node-1')}%"})).scalars().all()
        assert ended, "no LISTEN connection found"
        result = await two.request("node-1", "echo", {"n": 3}, timeout_s=20)
        assert result == {"echo": {"n": 3}, "agent": None}
        for _ in range(100):
            if one.listens >= 2:
                break
            await asyncio.sleep(0.05)
        assert one.listens >= 2  # it listened again (and re-read what it may have missed)
    assert seen == [({"n": 3}, None)]


@pytest.mark.postgres
async def test_a_lost_result_notification_is_recovered_on_the_next_renewal(pg: str) -> None:
    seen: list[tuple[dict[str, Any], str | None]] = []
    async with bus(pg, "node-1", {"echo": echo_handler(seen)}) as one, \
            bus(pg, "node-2", drop_results=True) as two:
        asking = asyncio.create_task(two.request("node-1", "echo", {"n": 1}, timeout_s=20))
        for _ in range(600):  # node 1 ran it and stored the result (up to 30 s on a loaded machine)
            async with one._db.session() as s:
                if (await store.counts(s)).get(store.DONE):
                    break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("node 1 did not run the command within 30 s")
        await asyncio.sleep(0.2)
        assert not asking.done()  # the result notification was lost
        await two.poll()  # what every lease renewal runs
        assert (await asyncio.wait_for(asking, 5)) == {"echo": {"n": 1}, "agent": None}


@pytest.mark.postgres
async def test_two_claimers_racing_run_every_command_exactly_once(pg: str) -> None:
    runs: dict[str, int] = {}

    async def count(payload: dict[str, Any], _agent: str | None) -> dict[str, Any]:
        runs[payload["i"]] = runs.get(payload["i"], 0) + 1
        await asyncio.sleep(0)
        return {}
    now = datetime.now(UTC)
    commands = [store.NewCommand(id=f"c{i:04d}", target_node="node-1", from_node="node-9", kind="count",
                                 payload={"i": str(i)}, deadline=now + timedelta(minutes=1)) for i in range(300)]
    async with Database(pg) as db, Database(pg) as other:
        a = NodeCommandBus(db, "node-1", handlers={"count": count}, listen=False)
        b = NodeCommandBus(other, "node-1", handlers={"count": count}, listen=False)
        async with db.transaction() as s:
            await store.enqueue(s, commands, now)
        claimed = await asyncio.gather(*(x.drain() for x in (a, b, a, b, a, b)))
        await asyncio.gather(*a._running, *b._running)
        assert sum(claimed) == 300
        assert sorted(a.executed + b.executed) == sorted(c.id for c in commands)
        assert set(runs.values()) == {1} and len(runs) == 300
        async with db.session() as s:
            assert await store.counts(s) == {store.DONE: 300}


@pytest.mark.postgres
async def test_a_node_that_does_not_answer_is_a_clear_refusal_within_the_timeout(pg: str) -> None:
    audit = RecordingAuditSink()
    async with bus(pg, "node-2", audit=audit) as two:
        started = asyncio.get_running_loop().time()
        with pytest.raises(NodeUnavailable) as refused:
            await two.request("node-1", "prepare_session", {}, timeout_s=0.5, agent_id="a1")
        took = asyncio.get_running_loop().time() - started
        assert 0.5 <= took < 4, took  # the timeout, then expiring the row and the audit record
        assert "the node holding agent a1's connection (node-1) did not answer within 0.5 s" in refused.value.message
        record = audit.of(event_types.GATEWAY_NODE_COMMAND_TIMED_OUT)[0]
        assert record.details["node"] == "node-2" and record.details["target_node"] == "node-1"
        assert record.details["agent_id"] == "a1" and record.details["kind"] == "prepare_session"
        async with two._db.session() as s:
            assert await store.counts(s) == {store.EXPIRED: 1}  # never runs late
        seen: list[tuple[dict[str, Any], str | None]] = []
        async with bus(pg, "node-1", {"prepare_session": echo_handler(seen)}):
            await asyncio.sleep(0.2)
        assert seen == []


@pytest.mark.postgres
async def test_a_request_given_up_by_its_asker_never_runs_later(pg: str) -> None:
    async with bus(pg, "node-2") as two:
        asking = asyncio.create_task(two.request("node-1", "echo", {}, timeout_s=30))
        for _ in range(100):  # the row is written
            async with two._db.session() as s:
                if (await store.counts(s)).get(store.PENDING):
                    break
            await asyncio.sleep(0.05)
        asking.cancel()  # e.g. the browser's request ended
        with pytest.raises(asyncio.CancelledError):
            await asking
        async with two._db.session() as s:
            assert await store.counts(s) == {store.EXPIRED: 1}


@pytest.mark.postgres
async def test_a_fan_out_over_three_nodes_one_notification_per_node(pg: str) -> None:
    agents = [f"a{i:02d}" for i in range(30)]
    tenancy = Tenancy().chain(dealer="d1", customer="c1", site="s1", agent=agents[0])
    for a in agents[1:]:
        tenancy.agent(a, "s1")
    async with Database(pg) as db:
        await tenancy.save(db)
        now = datetime.now(UTC)
        async with db.transaction() as s:
            for i, node in enumerate(("node-1", "node-2", "node-3")):
                await nodes.register(s, node, host="h", pid=1, incarnation="i", addresses=ADDR,
                                     lease=timedelta(minutes=1), now=now)
                await nodes.streams_opened(s, agents[i * 10:(i + 1) * 10 - (1 if i == 2 else 0)], node, now)
    seen: dict[str, list[tuple[dict[str, Any], str | None]]] = {n: [] for n in ("node-1", "node-2", "node-3")}
    audit = RecordingAuditSink()
    async with bus(pg, "node-1", {"echo": echo_handler(seen["node-1"])}, audit) as one, \
            bus(pg, "node-2", {"echo": echo_handler(seen["node-2"])}) as two, \
            bus(pg, "node-3", {"echo": echo_handler(seen["node-3"])}) as three:
        before = (two.notifications, three.notifications)
        results = await one.fan_out("echo", {a: {"agent": a} for a in agents}, timeout_s=10)
        assert {a for a, r in results.items() if r.ok} == set(agents) - {"a29"}
        assert "offline" in (results["a29"].error or "")
        assert {r.node for a, r in results.items() if a < "a10"} == {"node-1"}
        assert {r.node for a, r in results.items() if "a10" <= a < "a20"} == {"node-2"}
        assert results["a15"].result == {"echo": {"agent": "a15"}, "agent": "a15"}
        assert (two.notifications - before[0], three.notifications - before[1]) == (1, 1)
        assert sorted(str(a) for _p, a in seen["node-3"]) == agents[20:29]
        fanout = audit.of(event_types.GATEWAY_NODE_FANOUT)[0].details
        assert fanout["per_node"] == {"node-1": 10, "node-2": 10, "node-3": 9}
        assert (fanout["ok"], fanout["offline"], fanout["failed"]) == (29, 1, 0)


async def test_sqlite_one_node_delivers_locally(tmp_path: Path) -> None:
    seen: list[tuple[dict[str, Any], str | None]] = []
    async with migrated(sqlite_url(tmp_path / "p.db")) as db, \
            NodeCommandBus(db, "local", handlers={"echo": echo_handler(seen)}) as only:
        assert not only.distributed
        assert await only.request("local", "echo", {"x": 2}, timeout_s=1) == {"echo": {"x": 2}, "agent": None}
        with pytest.raises(NodeUnavailable, match="need PostgreSQL"):
            await only.request("node-2", "echo", {}, timeout_s=1)
    assert seen == [({"x": 2}, None)]
