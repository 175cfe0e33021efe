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

    ``on_readings`` gets every readings upload (the agent retries until acknowledged) and
    answers the acknowledgement: it must be idempotent per (agent, batch id) and answer
    only once the batch is stored (``fleet.ingest`` is); it raises ``ReadingsPayloadInvalid``
    for an unreadable batch and ``IngestBusy`` when ingest is behind.
    """

    on_inventory: Callable[[str, list[pb.DiscoveredDevice]], Awaitable[None]]
    on_readings: Callable[[str, pb.ReadingsBatch], Awaitable[pb.Ack]]
    on_presence: Callable[[str, bool], Awaitable[None]]
    on_command_result: Callable[[str, pb.CommandResult], Awaitable[None]] = _ignore_result
    on_heartbeat: Callable[[str, pb.HeartbeatRequest], Awaitable[None]] = _ignore_heartbeat  # agent health
