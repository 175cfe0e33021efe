"""A command stream taken over across gateway nodes (issue 18 finding 2, docs/scale-out.md).

On one node a second connection presenting an agent's certificate cuts the first (``AgentHub.open_stream``)
and is audited. Across nodes the same rule: when this node records a new stream of an agent whose stream
another LIVE node held (``NodeLease.presence`` → ``printgate.store.nodes.stream_taken``), that node is told
(node command ``agent.stream.cut``) to cut its older stream, and ``agent.stream.taken_over`` is audited
with both nodes and both peer addresses. Two copies of one certificate fighting reconnect by reconnect
cannot flood the trail: one record per agent per ``AUDIT_EVERY_S``, the rest counted by the denial tally.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.channel.hub import AgentHub
from gateway.errors import NodeCommandFailed, NodeUnavailable
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.logs import get_logger

log = get_logger(__name__)

CUT_KIND = "agent.stream.cut"
REASON = "command_stream_taken_over"
AUDIT_EVERY_S = 60.0
CUT_TIMEOUT_S = 5.0


class NodeBus(Protocol):
    def handle(self, kind: str, handler: Any) -> None: ...

    async def request(self, target: str, kind: str, payload: dict[str, Any], *, timeout_s: float,
                      agent_id: str | None = None, what: str | None = None) -> dict[str, Any]: ...


class Tally(Protocol):
    def count(self, *, reason: str, agent_id: str | None = None, method: str = "",
              source_ip: str | None = None, event_type: str = ...) -> None: ...


class CrossNodeTakeOver:
    """``taken``: NodeLease's ``on_stream_taken``; ``cut_here``: the ``agent.stream.cut`` handler and
    NodeLease's ``cut_stream`` (a renewal found a newer holder)."""

    def __init__(self, hub: AgentHub, bus: NodeBus, audit: AuditSink, node_id: str, *,
                 denials: Tally | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._hub, self._bus, self._audit, self._node_id = hub, bus, audit, node_id
        self._denials = denials
        self._clock = clock
        self._audited: dict[str, float] = {}  # agent -> when its last take-over was audited one by one
        self._running: set[asyncio.Task[None]] = set()
        bus.handle(CUT_KIND, self._cut_requested)

    def cut_here(self, agent_id: str, by_node: str | None = None, by_peer: str | None = None) -> bool:
        """Cut this node's gRPC stream of ``agent_id`` as taken over; True when there was one."""
        return self._hub.cut_taken_over(agent_id, (
            f"command stream taken over: a newer connection presenting this agent's certificate opened one on "
            f"gateway node {by_node or 'another node'} from {by_peer or 'an unknown address'}; if this agent did "
            "not reconnect itself, its certificate and key are copied: have an admin revoke it"))

    async def _cut_requested(self, payload: dict[str, Any], agent_id: str | None) -> dict[str, Any]:
        if agent_id is None:
            return {"cut": False}
        peer = self._hub.peer_ip(agent_id)
        had = self.cut_here(agent_id, str(payload.get("by_node") or ""), str(payload.get("peer_ip") or ""))
        log.warning("channel.stream.taken_over", agent=agent_id, node=self._node_id, by_node=payload.get("by_node"),
                    peer=peer, by_peer=payload.get("peer_ip"), cut=had)
        return {"cut": had, "peer_ip": peer}

    async def taken(self, agent_id: str, previous_node: str) -> None:
        """This node holds ``agent_id``'s newest stream; ``previous_node`` (live) held one: in the
        background (the stream starts at once) tell it to cut that one, then audit. Only for a gRPC
        command stream here: MQTT presence is the broker's, seen alike by every node's bridge."""
        if "grpc" not in self._hub.connected_channels(agent_id):
            return
        task = asyncio.get_running_loop().create_task(self._take(agent_id, previous_node),
                                                      name=f"stream-take-over-{agent_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def idle(self) -> None:
        """Every take-over started so far told and audited (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _take(self, agent_id: str, previous_node: str) -> None:
        peer = self._hub.peer_ip(agent_id)
        error: str | None = None
        result: dict[str, Any] = {}
        try:
            result = await self._bus.request(previous_node, CUT_KIND, {"by_node": self._node_id, "peer_ip": peer},
                                             timeout_s=CUT_TIMEOUT_S, agent_id=agent_id,
                                             what=f"agent {agent_id}'s older command stream")
        except (NodeUnavailable, NodeCommandFailed) as exc:  # its lease runs out, or its next renewal cuts it
            error = exc.message
        log.warning("channel.stream.taken_over_across_nodes", agent=agent_id, node=self._node_id,
                    previous_node=previous_node, peer=peer, previous_peer=result.get("peer_ip"), error=error)
        now = self._clock()
        last = self._audited.get(agent_id)
        if last is not None and now - last < AUDIT_EVERY_S and self._denials is not None:
            self._denials.count(agent_id=agent_id, reason=REASON, method=f"node {previous_node} -> {self._node_id}",
                                source_ip=peer, event_type=event_types.AGENT_STREAM_TAKEN_OVER)
            return
        self._audited[agent_id] = now
        if len(self._audited) > 10_000:
            self._audited = {a: t for a, t in self._audited.items() if now - t < AUDIT_EVERY_S}
        previous_peer = result.get("peer_ip")
        await self._audit.append(AuditEventIn(
            type=event_types.AGENT_STREAM_TAKEN_OVER, outcome=Outcome.DENIED, actor=f"agent:{agent_id}",
            source_ip=peer,
            details={"reason": REASON, "count": 1, "agent_id": agent_id, "node": self._node_id,
                     "previous_node": previous_node, "previous_cut": bool(result.get("cut")),
                     "cut_error": error, "cross_node": True},
            personal={"previous_peer_ip": str(previous_peer)} if previous_peer else {}))
