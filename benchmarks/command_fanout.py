"""Agent command fan-out across gateway nodes (issue 18): one rescan to 3,000 agents spread over 3
nodes, through PostgreSQL LISTEN/NOTIFY (``gateway.node_commands``): the requesting node writes one
``node_commands`` row per agent of another node and one NOTIFY per node (one batch id); each node
claims its rows, signs and queues each agent's command on its command stream, stores the results
and NOTIFIES the requester once. Measured per run: fan-out completion (every per-agent result back
at the requester) and the last agent's receipt of its signed command.

Reference in the same run: the same fan-out (same API, same agents) with every agent's stream on
the requesting node (a single node: signing and queueing only, no rows, no NOTIFY).

Agents are simulated at the hub: each has a live command stream in its node's ``AgentHub`` (the
queue the gRPC server drains into the agent's connection) and a task that takes each command off
it, so 3,000 agents cost no sockets; the gRPC leg itself is measured by command_latency.py. The
three nodes run in this one process (one event loop, 2 shared cores): each has its own database
pool, its own LISTEN connection, hub and bus, so their work competes for one core (pessimistic).

    .venv/bin/python benchmarks/command_fanout.py [--agents 3000] [--nodes 3] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from gateway.agent_commands import AgentCommandSender  # noqa: E402
from gateway.channel.hub import AgentHub  # noqa: E402
from gateway.node_commands import NodeCommandBus  # noqa: E402
from printgate.domain import Customer, CustomerId, Dealer, DealerId, Site, SiteId  # noqa: E402
from printgate.logs import configure_logging  # noqa: E402
from printgate.store import channel as channel_store  # noqa: E402
from printgate.store import nodes, tenants  # noqa: E402
from printgate.store.db import Database, migrate  # noqa: E402
from printgate.testing.database import create_pg_database, drop_pg_database  # noqa: E402
from printgate.wire import agent_pb2 as pb  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "command_fanout.json"
ADDR = nodes.NodeAddresses("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 0.5) * 1000, 1), "p99_ms": round(pct(values, 0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1), "max_ms": round(max(values) * 1000, 1)}


class Node:
    """One gateway node's command side: hub (with the simulated agents' streams), bus, sender."""

    def __init__(self, url: str, node_id: str, key: Ed25519PrivateKey) -> None:
        self.node_id = node_id
        self.db = Database(url)
        self.hub = AgentHub(key)
        self.bus = NodeCommandBus(self.db, node_id)
        self.sender = AgentCommandSender(self.hub, self.bus)
        self.received: dict[str, float] = {}  # agent -> when it took its last command off the stream
        self._consumers: list[asyncio.Task[None]] = []

    async def connect(self, agents: list[str]) -> None:
        for agent in agents:
            stream = await self.hub.open_stream(agent, serial=f"serial-{agent}")
            self._consumers.append(asyncio.create_task(self._consume(agent, stream.queue)))
        async with self.db.transaction() as s:
            await nodes.streams_opened(s, agents, self.node_id, datetime.now(UTC))

    async def _consume(self, agent: str, queue: asyncio.Queue[pb.SignedCommand | None]) -> None:
        while await queue.get() is not None:
            self.received[agent] = time.perf_counter()

    async def aclose(self) -> None:
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        await self.bus.aclose()
        await self.db.aclose()


async def seed(url: str, agents: int) -> list[str]:
    await migrate(url)
    ids = [f"agt-fan{i:05d}" for i in range(agents)]
    async with Database(url) as db, db.transaction() as s:
        await tenants.add_dealer(s, Dealer(DealerId("d"), "D"))
        await s.flush()
        await tenants.add_customer(s, Customer(CustomerId("c"), DealerId("d"), "C"))
        await s.flush()
        await tenants.add_site(s, Site(SiteId("site"), CustomerId("c"), "S"))
        await s.flush()
        for aid in ids:
            await channel_store.ensure_agent(s, aid, "site", name=aid)
    return ids


async def register(url: str, node_ids: list[str]) -> None:
    async with Database(url) as db, db.transaction() as s:
        for node_id in node_ids:
            await nodes.register(s, node_id, host="bench", pid=0, incarnation=node_id, addresses=ADDR,
                                 lease=timedelta(hours=1), now=datetime.now(UTC))


async def measure(nodes_: list[Node], agents: list[str], runs: int) -> tuple[list[float], list[float], int]:
    """``runs`` fan-outs from the first node; (completion seconds, last receipt seconds, failures)."""
    requester = nodes_[0]
    await requester.sender.rescan_many(agents, requested_by="warm-up")  # connections, caches
    done, received, failures = [], [], 0
    for _ in range(runs):
        for n in nodes_:
            n.received.clear()
        t0 = time.perf_counter()
        results = await requester.sender.rescan_many(agents, requested_by="bench@fanout")
        done.append(time.perf_counter() - t0)
        failures += sum(1 for r in results.values() if not r.ok)
        for _wait in range(200):  # the last agent takes its command off its stream
            if sum(len(n.received) for n in nodes_) >= len(agents):
                break
            await asyncio.sleep(0.005)
        received.append(max(t for n in nodes_ for t in n.received.values()) - t0)
    return done, received, failures


async def main(agent_count: int, node_count: int, runs: int) -> dict[str, object]:
    configure_logging("warning")  # a line per command sent would be most of the time measured
    url = create_pg_database()
    key = Ed25519PrivateKey.generate()  # the command-signing key every node shares
    try:
        agents = await seed(url, agent_count)
        node_ids = [f"node-{i + 1}" for i in range(node_count)]
        await register(url, [*node_ids, "single"])

        # reference: one node holding every agent
        single = Node(url, "single", key)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(single.bus)
            stack.push_async_callback(single.aclose)
            await single.connect(agents)
            ref_done, ref_received, ref_failures = await measure([single], agents, runs)
        async with Database(url) as db, db.transaction() as s:
            await nodes.streams_closed(s, agents, "single")

        # three nodes, agents spread evenly; the fan-out asked of node 1
        spread = [Node(url, node_id, key) for node_id in node_ids]
        async with contextlib.AsyncExitStack() as stack:
            for i, n in enumerate(spread):
                await stack.enter_async_context(n.bus)
                stack.push_async_callback(n.aclose)
                await n.connect(agents[i::node_count])
            done, received, failures = await measure(spread, agents, runs)
            notified = {n.node_id: n.bus.notifications for n in spread}
    finally:
        drop_pg_database(url)
    multi, ref = summary(done), summary(ref_done)
    return {
        "benchmark": "command_fanout",
        "agents": agent_count, "nodes": node_count, "runs": runs,
        "fanout_completion": multi,
        "last_agent_received": summary(received),
        "failures": failures,
        "notifications_received_per_node": notified,
        "reference_single_node": {"fanout_completion": ref, "last_agent_received": summary(ref_received),
                                  "failures": ref_failures},
        "ratio_p50_vs_single_node": round(multi["p50_ms"] / ref["p50_ms"], 2) if ref["p50_ms"] else None,
        "ratio_p99_vs_single_node": round(multi["p99_ms"] / ref["p99_ms"], 2) if ref["p99_ms"] else None,
        "note": "PostgreSQL on loopback, 3 nodes in one process (one event loop) on 2 shared cores; agents "
                "simulated at the hub's command stream (no sockets); a fan-out is one rescan per agent, "
                "signed (Ed25519) by the node holding the agent's stream; completion = every per-agent "
                "result back at the requesting node",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=3000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    res = asyncio.run(main(args.agents, args.nodes, args.runs))
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(res, indent=2) + "\n")
    m: Any = res["fanout_completion"]
    r: Any = res["reference_single_node"]["fanout_completion"]  # type: ignore[index]
    print(f"fan-out to {res['agents']} agents over {res['nodes']} nodes: p50 {m['p50_ms']} ms, "
          f"p99 {m['p99_ms']} ms (single node: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; "
          f"ratio p50 {res['ratio_p50_vs_single_node']}x, p99 {res['ratio_p99_vs_single_node']}x); "
          f"failures {res['failures']}")
