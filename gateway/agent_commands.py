"""Commands the portal may ask for, signed and sent by the agent hub (``printgate.interfaces.AgentCommands``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.node_commands import AgentResult, NodeCommandBus
from printgate.errors import AgentUnavailable, PrintgateError
from printgate.wire import agent_pb2 as pb

RESCAN_TTL_S = 300  # a rescan nobody delivered within 5 minutes is not worth doing later
NODE_TIMEOUT_S = 10.0  # how long the node holding an agent's stream may take to hand it a command


class CommandPort(Protocol):
    """Signs a command and delivers it over the agent's channel (``gateway.channel.hub.AgentHub``);
    the command id. The one protocol for the broker (tunnels) and the portal's commands (rescans);
    ``printgate.testing.commands.RecordingCommandPort`` records instead."""

    async def send(self, agent_id: str, command_payload: Any, *, ttl_s: int) -> str: ...


class AgentCommandSender:
    """``AgentCommands`` over the agent hub: every command signed, delivered over the agent's channel.

    With a node command bus (several nodes, issue 18) a command for an agent whose stream another
    node holds is sent by that node (``rescan`` command between nodes); ``rescan_many`` fans out
    to many agents, one batch and one notification per node."""

    def __init__(self, hub: CommandPort, bus: NodeCommandBus | None = None) -> None:
        self._hub = hub
        self._bus = bus
        if bus is not None:
            bus.handle("rescan", self._rescan_here)

    async def _rescan_here(self, payload: dict[str, Any], agent_id: str | None) -> dict[str, Any]:
        if agent_id is None:
            raise PrintgateError("a rescan names its agent")
        return {"command_id": await self._hub.send(
            agent_id, pb.Rescan(requested_by=str(payload.get("requested_by", ""))[:320]), ttl_s=RESCAN_TTL_S)}

    async def rescan(self, agent_id: str, *, requested_by: str) -> str:
        if self._bus is None or not self._bus.distributed:
            return await self._hub.send(agent_id, pb.Rescan(requested_by=requested_by[:320]), ttl_s=RESCAN_TTL_S)
        result = (await self.rescan_many([agent_id], requested_by=requested_by))[agent_id]
        if not result.ok or result.result is None:
            raise AgentUnavailable(result.error or f"agent {agent_id} could not be asked to rescan")
        return str(result.result["command_id"])

    async def rescan_many(self, agent_ids: Sequence[str], *, requested_by: str) -> dict[str, AgentResult]:
        """A rescan for every agent in ``agent_ids`` through the node holding its stream; per agent."""
        payload = {"requested_by": requested_by[:320]}
        if self._bus is None:
            results: dict[str, AgentResult] = {}
            for agent in agent_ids:
                try:
                    cid = await self._rescan_here(payload, agent)
                    results[agent] = AgentResult(agent, None, True, result=cid)
                except PrintgateError as exc:
                    results[agent] = AgentResult(agent, None, False, error=exc.message)
            return results
        return await self._bus.fan_out("rescan", dict.fromkeys(agent_ids, payload), timeout_s=NODE_TIMEOUT_S,
                                       actor=requested_by)
