"""Commands the portal may ask for, signed and sent by the agent hub (``printgate.interfaces.AgentCommands``)."""

from __future__ import annotations

from typing import Any, Protocol

from printgate.wire import agent_pb2 as pb

RESCAN_TTL_S = 300  # a rescan nobody delivered within 5 minutes is not worth doing later


class CommandPort(Protocol):
    """Signs a command and delivers it over the agent's channel (``gateway.channel.hub.AgentHub``);
    the command id. The one protocol for the broker (tunnels) and the portal's commands (rescans);
    ``printgate.testing.commands.RecordingCommandPort`` records instead."""

    async def send(self, agent_id: str, command_payload: Any, *, ttl_s: int) -> str: ...


class AgentCommandSender:
    """``AgentCommands`` over the agent hub: every command signed, delivered over the agent's channel."""

    def __init__(self, hub: CommandPort) -> None:
        self._hub = hub

    async def rescan(self, agent_id: str, *, requested_by: str) -> str:
        return await self._hub.send(agent_id, pb.Rescan(requested_by=requested_by[:320]), ttl_s=RESCAN_TTL_S)
