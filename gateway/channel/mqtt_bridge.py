"""The gateway's MQTT bridge: publishes signed commands, tracks presence via the broker.

Runs one paho-mqtt client (its network loop in paho's thread) authenticated
with a client certificate (CN ``printgate-gateway``) that the broker ACL
allows on the whole agent tree. Presence messages (retained, "offline" being
each agent's last will) update the ``AgentHub``; agent events (command
results) go to the channel handlers.

The broker's ACL binds each topic to the certificate CN and its CRL refuses
revoked certificates at connect, but a connection opened before a revocation
stays up: so the bridge checks itself, per message, that the agent is enrolled
and not revoked (``db``) and that a result answers a command sent to that
agent. Whatever it ignores is audited in aggregate (``agent.mqtt.ignored``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.channel.ca import AgentCA
from gateway.channel.denials import MQTT_IGNORED, DenialTally
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from printgate import metrics
from printgate.errors import AgentUnavailable
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.store import channel as store
from printgate.store.db import Database
from printgate.supervisor import Supervisor
from printgate.wire import agent_pb2 as pb
from printgate.wire import topics

log = get_logger(__name__)
WATCH_TASK = "mqtt-bridge"  # supervised task names (/readyz, printgate_task_healthy)
DISPATCH_TASK = "mqtt-dispatch"
DISPATCH_ATTEMPTS = 5  # a message whose dispatch fails this often is given up (counted, logged)
INBOX_MAX = 10_000  # messages received and not yet dispatched


class MqttBridge(Service):
    def __init__(self, host: str, port: int, *, ca_path: Path, cert_path: Path, key_path: Path,
                 hub: AgentHub, handlers: ChannelHandlers | None = None,
                 client_id: str = topics.GATEWAY_USER, publish_timeout: float = 5.0,
                 db: Database | None = None, denials: DenialTally | None = None,
                 transport: Literal["tcp", "websockets"] = "tcp", ws_path: str = "/mqtt",
                 supervisor: Supervisor | None = None, watch_s: float = 1.0) -> None:
        self.host, self.port = host, port
        self._hub, self._handlers = hub, handlers
        self._db, self._denials = db, denials
        self.disconnects = 0  # how often the broker dropped the bridge (a takeover would show here)
        self._timeout = publish_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        # supervision (issue 14): the connection watch and the message dispatch run under ``supervisor``
        # (restart with back-off, state in /readyz and printgate_task_healthy); without one, as bare tasks
        self._supervisor, self._watch_s = supervisor, watch_s
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=INBOX_MAX)
        self._retrying: tuple[str, bytes, int] | None = None  # a message whose dispatch failed: first again
        self._last_disconnect = "not connected yet"
        self._own_tasks: list[asyncio.Task[None]] = []
        self.dispatch_failures = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv311, clean_session=True, transport=transport)
        if transport == "websockets":
            self._client.ws_set_options(path=ws_path)
        self._client.tls_set(ca_certs=str(ca_path), certfile=str(cert_path), keyfile=str(key_path),
                             cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # ---- paho thread callbacks -------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt.bridge.connect_failed", reason=str(reason))
            return
        client.subscribe([(topics.ALL_PRESENCE, topics.QOS), (topics.ALL_EVENTS, topics.QOS)])
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.set)
        log.info("mqtt.bridge.connected", host=self.host, port=self.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self.disconnects += 1
        self._last_disconnect = str(reason)
        self._loop.call_soon_threadsafe(self._connected.clear)
        log.warning("mqtt.bridge.disconnected", reason=str(reason))

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._receive, msg.topic, bytes(msg.payload))

    def _receive(self, topic: str, payload: bytes) -> None:
        """In the event loop: queue a message for the dispatch task (never a fire-and-forget coroutine)."""
        try:
            self._inbox.put_nowait((topic, payload))
        except asyncio.QueueFull:
            metrics.MQTT_MESSAGES_LOST.labels("inbox_full").inc()
            log.error("mqtt.bridge.message_lost", agent=topics.agent_of(topic), reason="inbox_full",
                      queued=self._inbox.qsize())

    # ---- supervised loops ------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        """Dispatch received messages in order. A failing dispatch (the database away) raises: the
        supervisor restarts this loop with back-off and the message is tried first again, up to
        ``DISPATCH_ATTEMPTS`` times (then it is counted as lost and logged with its agent)."""
        while True:
            if self._retrying is not None:
                topic, payload, failed = self._retrying
            else:
                (topic, payload), failed = await self._inbox.get(), 0
            try:
                await self._dispatch(topic, payload)
            except Exception as exc:
                failed += 1
                self.dispatch_failures += 1
                metrics.MQTT_DISPATCH_FAILURES.inc()
                agent = topics.agent_of(topic)
                if failed >= DISPATCH_ATTEMPTS:
                    self._retrying = None
                    metrics.MQTT_MESSAGES_LOST.labels("dispatch_failed").inc()
                    log.error("mqtt.bridge.message_lost", agent=agent, topic=topic, reason="dispatch_failed",
                              attempts=failed, error=f"{type(exc).__name__}: {exc}")
                else:
                    self._retrying = (topic, payload, failed)
                    log.warning("mqtt.bridge.dispatch_failed", agent=agent, topic=topic, attempt=failed,
                                error=f"{type(exc).__name__}: {exc}")
                raise
            self._retrying = None

    async def _watch_connection(self) -> None:
        """The broker connection and paho's network thread, checked every ``watch_s``: a lost connection
        shows ``degraded`` (paho reconnects by itself); a dead network thread raises, and the restart
        starts a new one."""
        if self._client._thread is None:  # paho's thread ended (an exception in it): a new one
            log.warning("mqtt.bridge.network_thread_restarted", host=self.host, port=self.port)
            self._client.loop_start()
        while True:
            await asyncio.sleep(self._watch_s)
            if self._client._thread is None:
                raise AgentUnavailable("the MQTT client's network thread ended: started again")
            if self._supervisor is None:
                continue
            if self._connected.is_set():
                self._supervisor.recovered(WATCH_TASK)
            else:
                self._supervisor.degrade(WATCH_TASK, f"not connected to the MQTT broker {self.host}:{self.port} "
                                                     f"({self._last_disconnect}); commands fall back to gRPC, "
                                                     "reconnecting")

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        agent_id, kind = topics.agent_of(topic), topics.kind_of(topic)
        if agent_id is None or kind not in ("presence", "events"):
            return
        if self._db is not None:
            async with self._db.session() as s:
                why = await store.agent_standing(s, agent_id)
            if why is not None:
                self._ignore(agent_id, why, kind)
                return
        if kind == "presence":
            await self._hub.set_mqtt_presence(agent_id, payload == topics.ONLINE)
        elif kind == "events" and self._handlers is not None:
            event = pb.AgentEvent()
            try:
                event.ParseFromString(payload)
            except Exception:
                self._ignore(agent_id, "bad_event", kind)
                return
            if event.agent_id != agent_id:  # the ACL already binds the topic to the cert CN
                self._ignore(agent_id, "event_agent_mismatch", kind)
                return
            if event.HasField("command_result"):
                if self._hub.command_owner(event.command_result.command_id) != agent_id:
                    self._ignore(agent_id, "foreign_command", kind)
                    return
                await self._handlers.on_command_result(agent_id, event.command_result)

    def _ignore(self, agent_id: str, reason: str, kind: str) -> None:
        if self._denials is not None:
            self._denials.count(agent_id=agent_id, reason=reason, method=f"mqtt:{kind}",
                                event_type=MQTT_IGNORED)
        else:
            log.warning("mqtt.bridge.ignored", agent=agent_id, reason=reason, kind=kind)

    # ---- lifecycle ----------------------------------------------------------
    @classmethod
    def files_from_ca(cls, ca: AgentCA, directory: Path) -> tuple[Path, Path, Path]:
        """CA, client certificate (CN ``printgate-gateway``) and key for the bridge, issued by the
        agent CA into ``directory`` (renewed at every start; the key file is mode 0600 in a
        0700 directory)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        issued = ca.issue_service_client(topics.GATEWAY_USER)
        paths = directory / "ca.crt", directory / "bridge.crt", directory / "bridge.key"
        paths[0].write_bytes(ca.cert_pem)
        paths[1].write_bytes(issued.cert_pem)
        fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(issued.key_pem)
        return paths

    async def start(self, *, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.host, self.port, keepalive=15)
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            await self.aclose()
            raise AgentUnavailable(f"MQTT broker {self.host}:{self.port} not reachable within "
                                   f"{timeout:.0f}s: check the broker and the bridge certificate") from exc
        self._hub.use_mqtt(self)
        if self._supervisor is not None:
            self._supervisor.add(WATCH_TASK, self._watch_connection)
            self._supervisor.add(DISPATCH_TASK, self._dispatch_loop)
        else:
            self._own_tasks = [asyncio.create_task(self._dispatch_loop(), name=DISPATCH_TASK)]

    async def aclose(self) -> None:
        self._hub.release_mqtt(self)
        if self._supervisor is not None:
            await self._supervisor.remove(WATCH_TASK)
            await self._supervisor.remove(DISPATCH_TASK)
        for task in self._own_tasks:
            task.cancel()
        await asyncio.gather(*self._own_tasks, return_exceptions=True)
        self._own_tasks = []
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # ---- publishing -----------------------------------------------------------
    async def publish_command(self, agent_id: str, envelope: bytes) -> None:
        info = self._client.publish(topics.command_topic(agent_id), envelope, qos=topics.QOS)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AgentUnavailable(f"MQTT publish to agent {agent_id} failed ({mqtt.error_string(info.rc)})")
        await asyncio.to_thread(info.wait_for_publish, self._timeout)
        if not info.is_published():
            raise AgentUnavailable(f"MQTT broker did not acknowledge the command for {agent_id} "
                                   f"within {self._timeout:.0f}s")

    async def publish_config(self, agent_id: str, config_json: bytes) -> None:
        """Retained desired config for ``agent_id`` (delivered on every (re)connect)."""
        info = self._client.publish(topics.config_topic(agent_id), config_json, qos=topics.QOS, retain=True)
        await asyncio.to_thread(info.wait_for_publish, self._timeout)
