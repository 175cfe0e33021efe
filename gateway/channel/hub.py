"""AgentHub: signs commands and delivers them over whichever channel is up.

The gRPC server registers one live command stream per agent; the MQTT bridge
reports broker presence. ``send`` prefers the gRPC stream, then MQTT, and
raises ``AgentUnavailable`` when neither is connected.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printgate.errors import AgentUnavailable, ConfigError
from printgate.keys import KeyStore, agent_trust_set
from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb
from printgate.wire.commands import build_command, raw_public_key, sign_command, summarise

log = get_logger(__name__)

PresenceListener = Callable[[str, bool], Awaitable[None]]
MAX_TTL_S = 3600
RESULT_GRACE_S = 300  # a result may arrive this long after its command expired
MAX_TRACKED_COMMANDS = 100_000
TRUST_SET_TTL_S = 600


class CommandPublisher(Protocol):
    async def publish_command(self, agent_id: str, envelope: bytes) -> None: ...


@dataclass(eq=False)
class CommandStream:
    """One agent's live gRPC command stream (a queue the server drains)."""

    agent_id: str
    serial: str
    queue: asyncio.Queue[pb.SignedCommand | None] = field(default_factory=lambda: asyncio.Queue(256))
    cut_reason: str | None = None
    taken_over: bool = False  # cut because another connection opened this agent's stream
    took_over: bool = False  # this stream cut a live one of the same agent

    def cut(self, reason: str) -> None:
        if self.cut_reason is None:
            self.cut_reason = reason
            try:
                self.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass


class AgentHub:
    """Signs with ``signing_key``, or with the key directory's current command-signing key (``keys``).

    With ``keys``, every command stream starts with the agents' trust set (``printgate.keys.trust``)
    and a rotation seen in the key directory sends it to every connected agent before the first
    command signed by the new key.
    """

    def __init__(self, signing_key: Ed25519PrivateKey | None = None, *, clock: Callable[[], float] = time.time,
                 keys: KeyStore | None = None) -> None:
        if signing_key is None and keys is None:
            raise ValueError("AgentHub needs a signing key or a key store")
        self._clock = clock
        self._keys = keys
        self._keys_version: object = None
        self._trust_until = float("inf")  # wall clock: a key of the trust set leaves its validity
        self._keys_checked = float("-inf")
        self._signers: dict[str, Ed25519PrivateKey] = {}  # key id -> private key (current, retired in overlap)
        self._trust_signer = ""
        self._trust_json = b""
        self._host_fingerprints: frozenset[str] = frozenset()  # relay host keys of the last trust set
        self._key: Ed25519PrivateKey = signing_key if signing_key is not None else self._load_keys()
        self._streams: dict[str, CommandStream] = {}
        self._mqtt_online: set[str] = set()
        self._mqtt: CommandPublisher | None = None
        self._listeners: list[PresenceListener] = []
        self.last_seen: dict[str, float] = {}
        self._peer_ips: dict[str, str] = {}
        self._issued: dict[str, tuple[str, float]] = {}  # command id -> (agent id, forget after)

    @property
    def verify_key_raw(self) -> bytes:
        self.refresh_keys()
        return raw_public_key(self._key.public_key())

    # ---- keys ---------------------------------------------------------------
    def _load_keys(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives import serialization

        keys = self._keys
        assert keys is not None
        current = keys.ensure("command-signing")
        self._keys_version = keys.version()
        signers: dict[str, Ed25519PrivateKey] = {}
        for rec in keys.trusted("command-signing"):
            try:
                key = serialization.load_pem_private_key(keys.private_key("command-signing", rec.key_id), None)
            except Exception as exc:  # a retired key whose file is gone: its agents cannot be reached
                log.warning("agent.command_key.unavailable", key_id=rec.key_id, error=str(exc))
                continue
            if isinstance(key, Ed25519PrivateKey):
                signers[rec.key_id] = key
        doc, signer = agent_trust_set(keys, datetime.fromtimestamp(self._clock(), UTC))
        ends = [r.not_after.timestamp() for u in ("command-signing", "relay-host-key")
                for r in keys.trusted(u) if r.not_after is not None]
        self._trust_until = min(ends, default=float("inf"))
        self._signers = signers
        self._trust_signer = signer if signer in signers else current.key_id
        self._trust_json = doc.encode()
        self._host_fingerprints = frozenset(h.fingerprint for h in doc.relay_host_keys)
        self._key = signers[current.key_id]
        return self._key

    def refresh_keys(self, *, force: bool = False) -> bool:
        """Follow a rotation in the key directory (checked at most once a second); True when keys changed.

        A change sends the new trust set to every agent with a live command stream at once.
        """
        if self._keys is None:
            return False
        now = time.monotonic()
        if not force and now - self._keys_checked < 1.0:
            return False
        self._keys_checked = now
        if self._keys.version() == self._keys_version and self._clock() <= self._trust_until:
            return False
        try:
            self._load_keys()
        except (ConfigError, OSError, ValueError, KeyError) as exc:  # half-copied or unreadable: keep the keys
            log.error("agent.command_keys.unreadable", error=str(exc),
                      hint="the key directory changed but cannot be read; signing with the keys loaded before")
            return False
        log.info("agent.command_keys.reloaded", signing=self._key_id(), trust_set_signer=self._trust_signer)
        for stream in list(self._streams.values()):
            self._queue_trust_set(stream)
        return True

    def _key_id(self) -> str:
        from printgate.wire.commands import key_id

        return key_id(raw_public_key(self._key.public_key()))

    def trust_set_envelope(self, agent_id: str) -> pb.SignedCommand | None:
        """The agents' trust set as a command for ``agent_id``, signed by the oldest key it may trust."""
        if self._keys is None:
            return None
        now_ms = int(self._clock() * 1000)
        command = build_command(pb.TrustSet(set_json=self._trust_json), command_id=uuid.uuid4().hex,
                                agent_id=agent_id, issued_at_ms=now_ms,
                                expires_at_ms=now_ms + TRUST_SET_TTL_S * 1000)
        return sign_command(command, self._signers[self._trust_signer])

    def _queue_trust_set(self, stream: CommandStream) -> None:
        envelope = self.trust_set_envelope(stream.agent_id)
        if envelope is None or stream.cut_reason is not None:
            return
        try:
            stream.queue.put_nowait(envelope)
        except asyncio.QueueFull:
            log.warning("agent.trust_set.not_sent", agent=stream.agent_id, reason="command queue full")

    def use_mqtt(self, publisher: CommandPublisher | None) -> None:
        self._mqtt = publisher

    def release_mqtt(self, publisher: CommandPublisher) -> None:
        """Stop using ``publisher`` (no-op if another bridge took over meanwhile)."""
        if self._mqtt is publisher:
            self._mqtt = None

    def add_presence_listener(self, listener: PresenceListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_presence_listener(self, listener: PresenceListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # ---- state --------------------------------------------------------------
    def is_online(self, agent_id: str) -> bool:
        return agent_id in self._streams or agent_id in self._mqtt_online

    def channel_of(self, agent_id: str) -> str | None:
        if agent_id in self._streams:
            return "grpc"
        return "mqtt" if agent_id in self._mqtt_online else None

    def connected_channels(self, agent_id: str) -> set[str]:
        found = {"grpc"} if agent_id in self._streams else set()
        return found | ({"mqtt"} if agent_id in self._mqtt_online else set())

    def peer_ip(self, agent_id: str) -> str | None:
        """The address the agent's command stream last came from (its relay firewall exception)."""
        return self._peer_ips.get(agent_id)

    def online_agents(self) -> set[str]:
        return set(self._streams) | self._mqtt_online

    async def _notify(self, agent_id: str, was: bool) -> None:
        now = self.is_online(agent_id)
        if now == was:
            return
        log.info("agent.presence", agent=agent_id, online=now)
        for listener in self._listeners:
            try:
                await listener(agent_id, now)
            except Exception as exc:
                log.warning("agent.presence_listener_failed", agent=agent_id, error=str(exc))

    # ---- gRPC streams -----------------------------------------------------
    async def open_stream(self, agent_id: str, serial: str, *, peer_ip: str | None = None) -> CommandStream:
        was = self.is_online(agent_id)
        if peer_ip is not None:
            self._peer_ips[agent_id] = peer_ip
        old = self._streams.get(agent_id)
        stream = CommandStream(agent_id, serial)
        if old is not None and old.cut_reason is None:
            old.taken_over = stream.took_over = True
            old.cut(f"command stream taken over: a new connection presenting this agent's certificate "
                    f"(serial {serial}) from {peer_ip or 'an unknown address'} opened one; if this agent did "
                    "not reconnect itself, its certificate and key are copied: have an admin revoke it")
        self._streams[agent_id] = stream
        if not self.refresh_keys():  # (a change queues the set to every stream, this one included)
            self._queue_trust_set(stream)  # the first thing on every stream: the keys to trust
        self.last_seen[agent_id] = self._clock()
        await self._notify(agent_id, was)
        return stream

    async def close_stream(self, stream: CommandStream) -> None:
        if self._streams.get(stream.agent_id) is stream:
            was = self.is_online(stream.agent_id)
            del self._streams[stream.agent_id]
            await self._notify(stream.agent_id, was)

    def cut_serials(self, serials: set[str], reason: str) -> list[str]:
        """Cut live streams authenticated by any of ``serials``; the agents cut."""
        cut = [s.agent_id for s in self._streams.values() if s.serial in serials]
        for agent_id in cut:
            self._streams[agent_id].cut(reason)
        return cut

    def cut_taken_over(self, agent_id: str, reason: str) -> bool:
        """Cut ``agent_id``'s stream because a newer one opened on another gateway node (the agent is
        told ABORTED, as for a take-over here); True when there was a live one."""
        stream = self._streams.get(agent_id)
        if stream is None or stream.cut_reason is not None:
            return False
        stream.taken_over = True
        stream.cut(reason)
        return True

    def cut_agent(self, agent_id: str, reason: str) -> None:
        stream = self._streams.get(agent_id)
        if stream is not None:
            stream.cut(reason)

    # ---- MQTT presence ------------------------------------------------------
    async def set_mqtt_presence(self, agent_id: str, online: bool) -> None:
        was = self.is_online(agent_id)
        if online:
            self._mqtt_online.add(agent_id)
            self.last_seen[agent_id] = self._clock()
            envelope = self.trust_set_envelope(agent_id)
            if envelope is not None and self._mqtt is not None and not was:
                try:
                    await self._mqtt.publish_command(agent_id, envelope.SerializeToString())
                except Exception as exc:  # the gRPC stream sends it too; the next presence retries
                    log.warning("agent.trust_set.not_sent", agent=agent_id, channel="mqtt", error=str(exc))
        else:
            self._mqtt_online.discard(agent_id)
        await self._notify(agent_id, was)

    # ---- commands -----------------------------------------------------------
    def command_owner(self, command_id: str) -> str | None:
        """The agent a command this hub signed was addressed to (None: not ours, or long expired).

        Results are accepted only from that agent (``ReportCommandResult``, MQTT events).
        """
        entry = self._issued.get(command_id)
        if entry is None or entry[1] < self._clock():
            return None
        return entry[0]

    def _remember(self, command_id: str, agent_id: str, expires_at_s: float) -> None:
        if len(self._issued) >= MAX_TRACKED_COMMANDS:
            now = self._clock()
            for stale in [c for c, (_, until) in self._issued.items() if until < now]:
                del self._issued[stale]
            while len(self._issued) >= MAX_TRACKED_COMMANDS:  # all live: forget the oldest
                del self._issued[next(iter(self._issued))]
        self._issued[command_id] = (agent_id, expires_at_s + RESULT_GRACE_S)

    def sign(self, agent_id: str, command_payload: Any, *, ttl_s: int) -> pb.SignedCommand:
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"command ttl must be 1..{MAX_TTL_S} s, got {ttl_s}")
        # at most once a second (a few stat calls), and at once when the command names a relay host key
        # the last trust set did not: after a host key rotation the set goes out before this command
        fingerprint = getattr(command_payload, "relay_host_key_fingerprint", "")
        self.refresh_keys(force=bool(fingerprint) and fingerprint not in self._host_fingerprints)
        now_ms = int(self._clock() * 1000)
        command = build_command(
            command_payload, command_id=uuid.uuid4().hex, agent_id=agent_id,
            issued_at_ms=now_ms, expires_at_ms=now_ms + ttl_s * 1000,
        )
        self._remember(command.id, agent_id, now_ms / 1000 + ttl_s)
        return sign_command(command, self._key)

    async def send(self, agent_id: str, command_payload: Any, *, ttl_s: int) -> str:
        """Sign ``command_payload`` for ``agent_id`` and deliver it; the command id."""
        envelope = self.sign(agent_id, command_payload, ttl_s=ttl_s)
        channel = self.channel_of(agent_id)
        if channel is None or (channel == "mqtt" and self._mqtt is None):
            raise AgentUnavailable(
                f"agent {agent_id} is offline (no gRPC command stream and no MQTT presence): "
                "check that the agent service runs and can reach the gateway"
            )
        return await self.deliver(agent_id, envelope, via=channel)

    async def deliver(self, agent_id: str, envelope: pb.SignedCommand, *, via: str) -> str:
        """Deliver an already signed envelope over ``via`` ("grpc" | "mqtt").

        Sending the same envelope over both channels is safe: the agent's
        command guard executes each command id at most once.
        """
        summary = summarise(pb.Command.FromString(envelope.command))
        if via == "grpc":
            stream = self._streams.get(agent_id)
            if stream is None or stream.cut_reason is not None:
                raise AgentUnavailable(f"agent {agent_id} has no gRPC command stream")
            try:
                stream.queue.put_nowait(envelope)
            except asyncio.QueueFull as exc:
                raise AgentUnavailable(
                    f"agent {agent_id} is not draining its command stream (256 queued): "
                    "check its connectivity"
                ) from exc
        elif via == "mqtt":
            if self._mqtt is None or agent_id not in self._mqtt_online:
                raise AgentUnavailable(f"agent {agent_id} is not connected to the MQTT broker")
            await self._mqtt.publish_command(agent_id, envelope.SerializeToString())
        else:
            raise ValueError(f"unknown channel {via!r}")
        log.info("agent.command.sent", agent=agent_id, id=summary.id, kind=summary.kind, channel=via)
        return summary.id
