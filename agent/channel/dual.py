"""gRPC for everything, and MQTT as a second path for commands (``identity.mqtt_url`` set).

Uploads, heartbeats and certificate renewal go over gRPC. Commands arrive on
either channel (the gateway uses its gRPC stream when it is up and the broker
otherwise); both channels share one ``CommandGuard``, so a command delivered
on both runs once. A result goes back over gRPC, or over MQTT when gRPC is
down. After a certificate renewal the MQTT client is rebuilt with the new
certificate (paho keeps the TLS files it was given).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from agent.channel.command_guard import VerifiedCommand
from agent.channel.enroll import EnrolledIdentity
from agent.channel.grpc_client import GrpcChannel
from printgate.domain import Reading
from printgate.errors import AgentUnavailable
from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb
from printgate.wire.mqtt_url import parse_mqtt_url

if TYPE_CHECKING:  # paho is imported only by an agent told to use a broker (issue 17 item 6)
    from agent.channel.mqtt_client import MqttChannel

log = get_logger(__name__)


class DualChannel:
    def __init__(self, grpc: GrpcChannel, make_mqtt: Callable[[EnrolledIdentity], MqttChannel]) -> None:
        self.grpc, self._make_mqtt = grpc, make_mqtt
        self.mqtt = make_mqtt(grpc.identity)
        self._commands: asyncio.Queue[VerifiedCommand] = asyncio.Queue()
        self._grpc_pump: asyncio.Task[None] | None = None
        self._mqtt_pump: asyncio.Task[None] | None = None

    @classmethod
    def for_identity(cls, grpc: GrpcChannel, identity: EnrolledIdentity, *,
                     http_proxy: str | None = None) -> DualChannel:
        endpoint = parse_mqtt_url(identity.mqtt_url)

        def make_mqtt(current: EnrolledIdentity) -> MqttChannel:
            from agent.channel.mqtt_client import MqttChannel

            return MqttChannel(endpoint.host, endpoint.port, current, guard=grpc.guard,
                               transport=endpoint.transport, ws_path=endpoint.path, http_proxy=http_proxy)

        return cls(grpc, make_mqtt)

    @property
    def state(self) -> str:
        """The gRPC channel's state, or "mqtt-only" while only the broker is reachable."""
        return self.grpc.state if self.grpc.state == "connected" or not self.mqtt.connected else "mqtt-only"

    @state.setter
    def state(self, value: str) -> None:
        self.grpc.state = value

    @property
    def identity(self) -> EnrolledIdentity:
        return self.grpc.identity

    async def connect(self) -> None:
        await self.grpc.connect()
        self._grpc_pump = asyncio.create_task(self._pump(self.grpc.commands()), name="commands-grpc")
        await self._connect_mqtt()

    async def _connect_mqtt(self) -> None:
        await self.mqtt.connect()
        self._mqtt_pump = asyncio.create_task(self._pump(self.mqtt.commands()), name="commands-mqtt")

    async def _pump(self, source: AsyncIterator[VerifiedCommand]) -> None:
        async for command in source:
            await self._commands.put(command)

    async def aclose(self) -> None:
        await _stop(self._mqtt_pump)
        await _stop(self._grpc_pump)
        self._mqtt_pump = self._grpc_pump = None
        await self.mqtt.aclose()
        await self.grpc.aclose()

    async def __aenter__(self) -> DualChannel:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def wait_connected(self, timeout: float) -> None:
        await self.grpc.wait_connected(timeout)

    async def commands(self) -> AsyncIterator[VerifiedCommand]:
        while True:
            yield await self._commands.get()

    async def report_result(self, command_id: str, *, ok: bool, error_code: str = "", message: str = "") -> None:
        try:
            await self.grpc.report_result(command_id, ok=ok, error_code=error_code, message=message)
        except AgentUnavailable:
            if not self.mqtt.connected:
                raise
            log.info("agent.result_via_mqtt", command=command_id)
            await self.mqtt.publish_result(command_id, ok=ok, error_code=error_code, message=message)

    async def upload_readings(self, batch_id: str, readings: Sequence[Reading] | bytes, *,
                              deadline_s: float | None = None) -> pb.Ack:
        return await self.grpc.upload_readings(batch_id, readings, deadline_s=deadline_s)

    async def upload_inventory(self, devices: Sequence[pb.DiscoveredDevice]) -> None:
        await self.grpc.upload_inventory(devices)

    async def heartbeat(self, *, queue_length: int = 0, printers: int = 0,
                        relay_refusals: Sequence[pb.RelayRefusal] = (),
                        health: pb.HeartbeatRequest | None = None) -> int:
        return await self.grpc.heartbeat(queue_length=queue_length, printers=printers,
                                         relay_refusals=relay_refusals, health=health)

    def renewal_due(self) -> bool:
        return self.grpc.renewal_due()

    async def renew_certificate(self) -> EnrolledIdentity:
        """Renewed over gRPC; then the MQTT client is rebuilt with the new certificate (it says
        "offline" and "online" again: within the gateway's grace period, sessions are kept)."""
        identity = await self.grpc.renew_certificate()
        if self._mqtt_pump is not None:  # connected: swap the client
            await _stop(self._mqtt_pump)
            await self.mqtt.aclose()
            self.mqtt = self._make_mqtt(identity)
            await self._connect_mqtt()
        else:
            self.mqtt = self._make_mqtt(identity)
        return identity


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
