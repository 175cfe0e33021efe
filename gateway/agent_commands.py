"""Commands the portal may ask for, signed and sent by the agent hub (``printgate.interfaces.AgentCommands``)."""

from __future__ import annotations

from typing import Any, Protocol

from printgate.wire import agent_pb2 as pb

RESCAN_TTL_S = 300  # a rescan nobody delivered within 5 minutes is not worth doing later


class CommandHub(Protocol):
    async def send(self, agent_id: str, command_payload: Any, *, ttl_s: int) -> str: ...


class AgentCommandSender:
    """``AgentCommands`` over the agent hub: every command signed, delivered over the agent's channel."""

    def __init__(self, hub: CommandHub) -> None:
        self._hub = hub

    async def rescan(self, agent_id: str, *, requested_by: str) -> str:
        return await self._hub.send(agent_id, pb.Rescan(requested_by=requested_by[:320]), ttl_s=RESCAN_TTL_S)
