"""Assemble a running agent from its settings and enrolled identity.

The agent-side composition root: SNMP discovery, EWS probing, the gRPC
channel, device verification and the tunnel client, wired into
``AgentRuntime``. Used by ``printgate agent run`` and by the demo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from prometheus_client import start_http_server

from agent.channel.dual import DualChannel
from agent.channel.enroll import EnrolledIdentity
from agent.channel.grpc_client import GrpcChannel
from agent.data_dir_lock import DataDirLock
from agent.discovery import DiscoveryLimits, discover
from agent.errors import RELAY_HOST_KEY_MISMATCH
from agent.ews_probe import EwsEndpoint, EwsNotFound, probe_ews
from agent.monitoring import Monitoring
from agent.polling import PollSchedule
from agent.readings_queue import ReadingsQueue
from agent.runtime import AgentRuntime, target_of
from agent.snmp.identity import read_identity
from agent.snmp.transport import SnmpClient
from agent.verify import DeviceVerifier, identity_differences, mismatch_message
from printgate import metrics
from printgate.agent_settings import AgentSettings
from printgate.domain import (
    DeviceIdentity,
    DiscoveryResult,
    DiscoveryStatus,
    SnmpCredential,
    numbered,
)
from printgate.errors import IDENTITY_MISMATCH, ConfigError, TunnelError
from printgate.logs import get_logger
from printgate.supervisor import Supervisor
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert

if TYPE_CHECKING:
    from agent.tunnel.client import Tunnel, Verify

log = get_logger("agent.service")


_SWEEP_RESULTS = (DiscoveryStatus.PRINTER, DiscoveryStatus.EXCLUDED, DiscoveryStatus.UNREACHABLE)


def credentials_of(settings: AgentSettings) -> list[SnmpCredential]:
    return [SnmpCredential(community=c) for c in settings.communities]


def ews_candidates(settings: AgentSettings) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for item in settings.ews_candidates:
        port, _, scheme = item.partition("/")
        if not port.isdigit() or scheme not in ("http", "https"):
            raise ConfigError(f"ews_candidates entry {item!r} must look like '443/https' or '80/http'")
        out.append((int(port), scheme))
    return out


class AgentAssembly:
    """Builds the collaborators of one agent process."""

    def __init__(
        self, settings: AgentSettings, identity: EnrolledIdentity, *,
        credentials: Sequence[SnmpCredential] | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        # one agent per data dir: taken before the queue or status files are opened (released by aclose)
        self.data_lock = DataDirLock(settings.data_dir)
        self.data_lock.acquire()
        self.credentials = numbered(credentials if credentials is not None else credentials_of(settings))
        self.candidates = ews_candidates(settings)
        self.limits = DiscoveryLimits(
            max_in_flight=settings.max_in_flight, packets_per_second=settings.packets_per_second,
            timeout=settings.snmp_timeout, retries=settings.snmp_retries,
        )
        grpc = GrpcChannel(settings.cloud_grpc, identity, http_proxy=settings.http_proxy)
        # with a broker (enrolment said where), commands also come over MQTT
        self.channel: GrpcChannel | DualChannel = (
            DualChannel.for_identity(grpc, identity, http_proxy=settings.http_proxy) if identity.mqtt_url else grpc)
        self.snmp = SnmpClient(
            timeout=settings.snmp_timeout, retries=settings.snmp_retries,
            max_in_flight=settings.max_in_flight, packets_per_second=settings.packets_per_second,
        )
        self.supervisor = Supervisor("agent")
        self.queue = ReadingsQueue(settings.data_dir / "readings.sqlite", max_queued=settings.queue_max_readings,
                                   max_bytes=settings.queue_max_bytes)
        self.monitoring = Monitoring(
            client=self.snmp, queue=self.queue, upload_readings=self.channel.upload_readings,
            port=settings.snmp_port, credentials=self.credentials,
            schedule=PollSchedule(
                counters_seconds=settings.counters_interval_seconds,
                supplies_seconds=settings.supplies_interval_seconds,
                alerts_seconds=settings.alerts_interval_seconds,
            ),
            upload_interval_s=settings.upload_interval_seconds, supervisor=self.supervisor,
        )

    async def discover(self) -> list[DiscoveryResult]:
        """The printers, the excluded devices and the silent addresses of one sweep: the runtime keeps
        a followed printer that was silent in this sweep polled (``SILENT_SWEEPS_KEPT``) and
        reports only what answered to the cloud."""
        results = await discover(
            self.settings.targets, port=self.settings.snmp_port, credentials=self.credentials,
            exclude=self.settings.exclude, limits=self.limits, client=self.snmp,
        )
        return [r for r in results if r.status in _SWEEP_RESULTS]

    async def find_ews(self, ip: str) -> EwsEndpoint | EwsNotFound:
        return await probe_ews(ip, self.candidates)

    def make_verifier(self, cmd: pb.OpenTunnel, command_id: str) -> DeviceVerifier:
        """Identity check before the tunnel and per connection; a mismatch is reported to the cloud
        as a failed result of the command that opened the tunnel (the gateway then ends the session)."""
        probe = partial(
            read_identity, port=self.settings.snmp_port, credentials=self.credentials,
            timeout=self.settings.snmp_timeout, retries=self.settings.snmp_retries,
        )

        async def report(expected: DeviceIdentity, observed: DeviceIdentity) -> None:
            diffs = identity_differences(expected, observed)
            await self.channel.report_result(
                command_id, ok=False, error_code=IDENTITY_MISMATCH,
                message=mismatch_message(cmd.target_ip, expected, observed, diffs or ["serial"]),
            )

        return DeviceVerifier(
            cmd.target_ip, convert.expected_identity(cmd), probe, report=report,
            tls_port=cmd.target_port if cmd.target_scheme == "https" else None,
            cache_seconds=self.settings.verify_cache_seconds,
        )

    async def open_tunnel(self, cmd: pb.OpenTunnel, verify: Verify | None,
                          on_refused: Callable[[str, str], None] | None = None) -> Tunnel:
        # the relay host keys trusted now: the enrolment's pin, or those of the gateway's last trust set
        trust = (self.channel.grpc if isinstance(self.channel, DualChannel) else self.channel).guard.trust
        pinned = trust.host_fingerprints()
        if pinned and cmd.relay_host_key_fingerprint and cmd.relay_host_key_fingerprint not in pinned:
            raise TunnelError(
                f"session {cmd.session_id}: the command names relay host key "
                f"{cmd.relay_host_key_fingerprint}, not one this agent trusts ({', '.join(pinned)})",
                code=RELAY_HOST_KEY_MISMATCH,
            )
        from agent.tunnel.client import open_tunnel  # asyncssh loads with the first session

        return await open_tunnel(
            cmd.relay_host, cmd.relay_port,
            host_key_fingerprint=pinned or [cmd.relay_host_key_fingerprint],
            credential_private_key=cmd.credential_private_key,
            credential_certificate=cmd.credential_certificate,
            session_id=cmd.session_id, target=target_of(cmd), verify=verify,
            http_proxy=self.settings.http_proxy, on_refused=on_refused,
            keepalive_s=self.settings.tunnel_keepalive_seconds,
        )

    def runtime(self) -> AgentRuntime:
        return AgentRuntime(
            channel=self.channel, discover=self.discover, open_tunnel=self.open_tunnel,
            make_verifier=self.make_verifier, find_ews_endpoint=self.find_ews,
            scan_interval_s=self.settings.scan_interval_seconds, monitoring=self.monitoring,
            status_path=self.settings.data_dir / "status.json", supervisor=self.supervisor,
            queue=self.queue, inventory_path=self.settings.data_dir / "inventory.json",
            new_device_watch_s=self.settings.new_device_watch_seconds,
        )

    async def start(self) -> AgentRuntime:
        """Start polling (from the agent's own inventory), the channel and the supervised loops;
        ``aclose()`` undoes it. Nothing here waits for the cloud."""
        await self.channel.connect()
        await self.monitoring.start()
        self._runtime = self.runtime()
        await self._runtime.start()
        await self.supervisor.start()
        if self.settings.metrics_port is not None:  # optional local Prometheus endpoint
            try:
                self._metrics_server, _ = start_http_server(self.settings.metrics_port,
                                                            addr=self.settings.metrics_host,
                                                            registry=metrics.AGENT)
            except OSError as exc:  # port busy, address not ours: the agent's work goes on without it
                log.warning("agent.metrics_unavailable", host=self.settings.metrics_host,
                            port=self.settings.metrics_port, error=str(exc),
                            hint="free the port or change [agent] metrics_port; running without /metrics")
            else:
                log.info("agent.metrics_serving", host=self.settings.metrics_host, port=self.settings.metrics_port)
        return self._runtime

    async def aclose(self) -> None:
        """Stop everything within ``stop_deadline_seconds``, cloud or not; a second call does nothing.

        The loops stop first; a last upload gets what is left of half the deadline; readings it
        could not send stay in the queue file (a sealed batch keeps its id) for the next start.
        """
        if getattr(self, "_closed", False):
            return
        self._closed = True
        deadline = self.settings.stop_deadline_seconds
        began = time.monotonic()
        try:
            async with asyncio.timeout(deadline * 0.8):
                await self.supervisor.aclose()
                runtime = getattr(self, "_runtime", None)
                if runtime is not None:
                    await runtime.aclose()
                await self.monitoring.aclose()
                try:
                    async with asyncio.timeout(max(0.0, deadline / 2 - (time.monotonic() - began))):
                        await self.monitoring.upload_now()
                except TimeoutError:
                    log.warning("agent.stop_upload_cut", left_queued=await self.queue.pending())
        except TimeoutError:
            log.warning("agent.stop_deadline", seconds=deadline, step="loops and tunnels")
        try:
            async with asyncio.timeout(max(0.5, deadline - (time.monotonic() - began))):
                await self.channel.aclose()
        except TimeoutError:
            log.warning("agent.stop_deadline", seconds=deadline, step="channel")
        self.queue.close()
        await self.snmp.aclose()
        server = getattr(self, "_metrics_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
        self.data_lock.release()
        log.info("agent.stopped", seconds=round(time.monotonic() - began, 2))

    async def __aenter__(self) -> AgentRuntime:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
