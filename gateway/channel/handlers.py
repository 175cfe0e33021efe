"""Callbacks the composition root plugs into the agent channel server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from printgate.wire import agent_pb2 as pb


async def _ignore_result(agent_id: str, result: pb.CommandResult) -> None:
    return None


async def _ignore_heartbeat(agent_id: str, heartbeat: pb.HeartbeatRequest) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ChannelHandlers:
    """What the gateway does with what agents send.

    ``on_readings`` is called at most once per (agent, batch id) by this server
    (processed ids are recorded after it returns); it should still be
    idempotent, because a crash between the two repeats it.
    """

    on_inventory: Callable[[str, list[pb.DiscoveredDevice]], Awaitable[None]]
    on_readings: Callable[[str, str, bytes], Awaitable[None]]
    on_presence: Callable[[str, bool], Awaitable[None]]
    on_command_result: Callable[[str, pb.CommandResult], Awaitable[None]] = _ignore_result
    on_heartbeat: Callable[[str, pb.HeartbeatRequest], Awaitable[None]] = _ignore_heartbeat  # agent health
