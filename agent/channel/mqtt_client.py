"""The agent's MQTT channel: commands and presence through a broker (TLS client cert).

The agent's certificate CN is its agent id, which the broker uses as the user
name for the per-agent topic ACL. Presence is retained; the last will
publishes "offline" when the connection dies without a clean disconnect.
paho reconnects on its own with back-off (``reconnect_delay_set``).
Every command goes through the shared ``CommandGuard`` (at most once across
channels).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.channel.command_guard import CommandGuard, VerifiedCommand
from agent.channel.enroll import EnrolledIdentity
from agent.errors import CommandRejected
from agent.proxy_connect import ProxyUrl, connect_via_proxy
from printgate.errors import AgentUnavailable
from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb
from printgate.wire import topics

log = get_logger(__name__)


class _ProxiedClient(mqtt.Client):
    """paho client whose TCP connection goes through an HTTP CONNECT proxy.

    TLS (and WebSockets) are layered on top by paho as usual, so the broker
    certificate is still verified against the broker's host name.
    """

    def __init__(self, *args: Any, proxy: ProxyUrl, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._printgate_proxy = proxy

    def _create_socket_connection(self) -> socket.socket:
        return connect_via_proxy(self._printgate_proxy, self._host, self._port, self._connect_timeout)


class MqttChannel:
    def __init__(self, host: str, port: int, identity: EnrolledIdentity, *, guard: CommandGuard,
                 transport: str = "tcp", ws_path: str = "/mqtt", keepalive: int = 15,
                 max_reconnect_delay: int = 10, http_proxy: str | None = None) -> None:
        self.host, self.port = host, port
        self.identity = identity
        self.guard = guard
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._commands: asyncio.Queue[VerifiedCommand] = asyncio.Queue()
        self.rejections: list[CommandRejected] = []
        self.connects = 0
        aid = identity.agent_id
        kwargs: dict[str, Any] = {"client_id": aid, "protocol": mqtt.MQTTv311, "clean_session": False,
                                  "transport": transport}
        self._client = (_ProxiedClient(CallbackAPIVersion.VERSION2, proxy=ProxyUrl.parse(http_proxy), **kwargs)
                        if http_proxy else mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs))
        if transport == "websockets":
            self._client.ws_set_options(path=ws_path)
        self._client.tls_set(ca_certs=str(identity.ca_path), certfile=str(identity.cert_path),
                             keyfile=str(identity.key_path), cert_reqs=ssl.CERT_REQUIRED,
                             tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.will_set(topics.presence_topic(aid), topics.OFFLINE, qos=topics.QOS, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=max_reconnect_delay)
        self._keepalive = keepalive
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("agent.mqtt.connect_failed", reason=str(reason))
            return
        aid = self.identity.agent_id
        client.subscribe([(topics.command_topic(aid), topics.QOS), (topics.config_topic(aid), topics.QOS)])
        self.connects += 1

    def _on_subscribe(self, client: mqtt.Client, _u: Any, _mid: Any, _codes: Any, _p: Any) -> None:
        # announce presence only once the command subscription is in place,
        # so nothing sent on "online" can miss us
        client.publish(topics.presence_topic(self.identity.agent_id), topics.ONLINE,
                       qos=topics.QOS, retain=True)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.set)
        log.info("agent.channel.connected", channel="mqtt", host=self.host, port=self.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.clear)
        log.warning("agent.channel.lost", channel="mqtt", reason=str(reason))

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        # in arrival order: the guard admits one command at a time (a trust set before what it signs)
        asyncio.run_coroutine_threadsafe(self._accept(msg.topic, bytes(msg.payload)), self._loop)

    async def _accept(self, topic: str, payload: bytes) -> None:
        if topics.kind_of(topic) != "cmd":
            return  # desired config is read by the runtime through its own subscription
        envelope = pb.SignedCommand()
        try:
            envelope.ParseFromString(payload)
            verified = await self.guard.admit(envelope, channel="mqtt")
        except CommandRejected as exc:
            self.rejections.append(exc)
            log.warning("agent.command.rejected", reason=exc.code, channel="mqtt")
            return
        except Exception:
            log.warning("agent.command.unparseable", channel="mqtt")
            return
        if verified.kind != "trust_set":  # applied by the guard (agent/trust.py); nothing for the runtime
            self._commands.put_nowait(verified)

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            raise AgentUnavailable(f"MQTT broker {self.host}:{self.port} not reachable within "
                                   f"{timeout:.0f}s") from exc

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def commands(self) -> AsyncIterator[VerifiedCommand]:
        while True:
            yield await self._commands.get()

    async def publish_result(self, command_id: str, *, ok: bool, error_code: str = "",
                             message: str = "") -> None:
        event = pb.AgentEvent(agent_id=self.identity.agent_id, at_ms=int(time.time() * 1000),
                              command_result=pb.CommandResult(command_id=command_id, ok=ok,
                                                              error_code=error_code, message=message))
        info = self._client.publish(topics.events_topic(self.identity.agent_id),
                                    event.SerializeToString(), qos=topics.QOS)
        await asyncio.to_thread(info.wait_for_publish, 5.0)

    async def aclose(self) -> None:
        """Clean shutdown: say "offline" ourselves (a clean disconnect sends no will)."""
        if self.connected:
            info = self._client.publish(topics.presence_topic(self.identity.agent_id), topics.OFFLINE,
                                        qos=topics.QOS, retain=True)
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected.clear()

    async def __aenter__(self) -> MqttChannel:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
