"""``Cloud``: portal + gateway wired into one process (``printgate serve``).

Part of the composition root (``printgate.cli``): it may import every package
except the lab; the demo with its simulated printer LAN is ``demo_system``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import hashes

from alerting.follower import follower_from_settings
from audit.checkpoint_timer import CheckpointTimer
from audit.keyset import open_gateway_signer
from audit.metered_log import MeteredAuditLog
from fleet.ingest import FleetIngest
from fleet.retention import HistoryUpkeep
from gateway.agent_commands import AgentCommandSender
from gateway.agent_events import AgentEvents
from gateway.broker import BrokerConfig, DwaBroker
from gateway.channel.ca import AgentCA
from gateway.channel.crl import CrlPublisher, signal_pid_file
from gateway.channel.denials import DenialTally
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from gateway.channel.mqtt_bridge import MqttBridge
from gateway.channel.takeover import CrossNodeTakeOver
from gateway.credential_use import CredentialUse
from gateway.dwa_policy import decide_dwa_open
from gateway.dwa_wiring import DwaWiring
from gateway.firewall.base import Firewall
from gateway.firewall.inprocess import InProcessFirewall
from gateway.firewall.nftables import NftablesFirewall
from gateway.firewall.reconcile import reconcile_with_sessions
from gateway.node_commands import NodeCommandBus
from gateway.nodes import NodeLease
from gateway.proxy.connection_limits import ConnectionLimits
from gateway.proxy.limits import ProxyLimits
from gateway.proxy.public_tls import ensure_own_ca
from gateway.proxy.routes import RouteTable
from gateway.proxy.server import DwaProxy
from gateway.proxy.workers import ProxyWorkerPool
from gateway.relay import Relay
from gateway.relay.limits import RelayLimits
from gateway.session_hosts import node_label
from integrations.dispatcher import RetryPolicy, WebhookDispatcher
from integrations.endpoints import WebhookEndpoints
from integrations.webhook import WebhookTransport
from portal.app import create_app
from portal.state import AgentCaFacts
from printgate import metrics
from printgate.domain import SessionId
from printgate.errors import ConfigError
from printgate.keys import FileKeyStore
from printgate.lifecycle import Service
from printgate.logs import get_logger
from printgate.settings import PortalSettings, Settings
from printgate.store.db import Database, migrate, wait_for_database
from printgate.store.nodes import NodeAddresses
from printgate.supervisor import Supervisor
from printgate.vault import CredentialVault, FileKms
from printgate.wire.mqtt_url import parse_mqtt_url

log = get_logger("printgate.cli.cloud")


def portal_server_config(app: Callable[..., Any], portal: PortalSettings) -> uvicorn.Config:
    """uvicorn for the portal: X-Forwarded-For/-Proto believed only from ``[portal] trusted_proxies``
    (a load balancer's address), so behind one the technician's own address reaches policy, audit
    and alerts, and a client elsewhere cannot claim another address (docs/scale-out.md)."""
    return uvicorn.Config(app, host=portal.host, port=portal.port, log_level="warning", lifespan="off",
                          access_log=False, proxy_headers=True,
                          forwarded_allow_ips=list(portal.trusted_proxies))


class Cloud(Service):
    """Portal + gateway (relay, proxy, firewall, agent channel, broker) in one process."""

    def __init__(self, settings: Settings, *, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        # the shared keys (printgate.keys; docs/scale-out.md "Keys"): [gateway] key_dir, else the data dir
        self.key_dir = settings.gateway.key_dir or data_dir
        self.keys = FileKeyStore(self.key_dir)
        self._stack = contextlib.AsyncExitStack()
        self._portal_task: asyncio.Task[None] | None = None
        self.events: AgentEvents | None = None
        self.dwa_ca_cert: Path | None = None  # the session CA browsers must trust (https, no proxy_certs)
        self.node: NodeLease | None = None  # this process in the node registry (docs/scale-out.md)
        self._sessions_ending = False

    # ---- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> None:
        gw = self.settings.gateway
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # PostgreSQL not up yet (a host booting): wait with back-off, one line per attempt, no traceback
        await wait_for_database(self.settings.database_url, max_wait_s=self.settings.database_start_wait_seconds)
        await migrate(self.settings.database_url)
        self.db = Database(self.settings.database_url)
        self._stack.push_async_callback(self.db.aclose)
        # re-read after `printgate keys rotate audit`; the key set keeps every public key (audit-keys.json)
        self.key_dir.mkdir(parents=True, exist_ok=True)
        signer = self._audit_signer = open_gateway_signer(self.key_dir)
        self.audit = MeteredAuditLog(self.db, signer)
        # the cloud's own loops run supervised (restart with back-off, last error kept; /readyz shows them)
        self.supervisor = await self._stack.enter_async_context(Supervisor("cloud"))
        self._stack.callback(metrics.export_task_health("cloud", self.supervisor.health))  # printgate_task_healthy
        await self._stack.enter_async_context(CheckpointTimer(
            self.audit, gw.audit_checkpoint_seconds, supervisor=self.supervisor,
            witness_silence_s=gw.audit_witness_silence_seconds))
        # webhook secrets of security-alert subscriptions are sealed under the vault's master key
        self.security_alert_kms = FileKms(gw.vault_master_key_path)
        if self.settings.security_alerts.enabled:  # issue 20: security alerts from the audit stream
            alerts = follower_from_settings(self.db, self.settings.security_alerts, self.security_alert_kms)
            self._stack.push_async_callback(alerts.aclose)
            self.supervisor.add("security-alerts", alerts.run_evaluation)
            self.supervisor.add("security-alert-delivery", alerts.run_delivery)

        self.firewall = await self._firewall()
        self.relay = Relay(
            gw.relay_host, gw.relay_port, host_key_path=self.keys.path("relay-host-key"),
            ca_key_path=self.keys.path("relay-ca"), keys=self.keys, audit=self.audit, firewall=self.firewall,
            limits=RelayLimits(
                keepalive_s=gw.relay_keepalive_seconds,
                max_unauthenticated=gw.relay_max_unauthenticated,
                max_unauthenticated_per_source=gw.relay_max_unauthenticated_per_source,
                connections_per_source=gw.relay_connections_per_source,
                source_window_s=gw.relay_source_window_seconds,
            ),
            # tunnel endpoints as Unix sockets only the gateway's user reaches (not loopback ports),
            # in a fresh 0700 directory with a short path (socket paths are limited to 107 bytes)
            tunnel_dir=Path(tempfile.mkdtemp(prefix="printgate-tunnels-")),
            supervisor=self.supervisor,  # the reaper: restarted if it fails, degraded while audit is refused
        )
        await self._stack.enter_async_context(self.relay)

        self.ca = AgentCA.load_or_create(self.key_dir / "agent-ca")
        self.hub = AgentHub(keys=self.keys)  # signs with the key directory's command-signing key, follows rotations
        self.routes = RouteTable(launch_token_ttl_s=gw.launch_token_ttl_seconds)
        self.proxy: DwaProxy | ProxyWorkerPool
        tls = self._proxy_tls()
        limits = ProxyLimits(request_budget=gw.dwa_request_budget_bytes, session_budget=gw.dwa_session_budget_bytes)
        connection_limits = ConnectionLimits(
            header_timeout_s=gw.proxy_header_timeout_seconds, idle_timeout_s=gw.proxy_idle_timeout_seconds,
            request_timeout_s=gw.proxy_request_timeout_seconds,
            max_connections_per_source=gw.proxy_max_connections_per_source,
            max_refused_bodies_per_source=gw.proxy_max_refused_bodies_per_source,
        )
        # several nodes behind a load balancer: session hosts name this node (docs/scale-out.md)
        label = node_label(gw.resolved_node_id) if gw.host_routing else None
        if gw.proxy_workers > 1:  # one mitmproxy process per core
            self.proxy = ProxyWorkerPool(
                gw.proxy_host, gw.proxy_port, workers=gw.proxy_workers,
                database_url=self.settings.database_url, dwa_domain=gw.dwa_domain,
                routes=self.routes, on_end_request=self._end_from_browser,
                on_session_timeout=self._end_on_timeout, on_extend_request=self._extend_from_browser,
                launch_token_ttl_s=gw.launch_token_ttl_seconds, limits=limits,
                connection_limits=connection_limits, portal_url=self.settings.portal.public_url,
                node_label=label, **tls,
            )
        else:
            self.proxy = DwaProxy(
                gw.proxy_host, gw.proxy_port, dwa_domain=gw.dwa_domain, routes=self.routes,
                audit=self.audit, on_end_request=self._end_from_browser,
                on_session_timeout=self._end_on_timeout, on_extend_request=self._extend_from_browser,
                limits=limits, connection_limits=connection_limits,
                portal_url=self.settings.portal.public_url, node_label=label, **tls,
            )
        await self._stack.enter_async_context(self.proxy)

        # the credential vault (issue 19): the master key file is made 0600 on first use
        kms = FileKms(gw.vault_master_key_path)
        self.vault = CredentialVault(self.db, kms, self.audit)
        self._start_integrations(kms)
        wiring = DwaWiring(
            relay_public_host=gw.relay_host, session_host=self.proxy.session_host,
            idle_timeout_s=gw.session_idle_seconds,
        )
        self.broker = DwaBroker(
            BrokerConfig(session_ttl_s=gw.session_ttl_seconds, relay_port=self.relay.port,
                         proxy_port=self.proxy.port, node_command_timeout_s=gw.node_command_timeout_seconds),
            db=self.db, audit=self.audit, decide=decide_dwa_open, firewall=self.firewall,
            relay=self.relay, commands=self.hub, proxy=self.proxy, routes=self.routes,
            make_open_command=wiring.open_command, make_close_command=wiring.close_command,
            make_route=wiring.route, agent_address=self.hub.peer_ip, supervisor=self.supervisor,
            credentials=CredentialUse(self.db, self.vault), node_id=gw.resolved_node_id,
        )
        # other nodes reach this one's agents and sessions through PostgreSQL LISTEN/NOTIFY (issue 18)
        self.node_commands = NodeCommandBus(self.db, self.broker.node_id, audit=self.audit,
                                            supervisor=self.supervisor)
        self.broker.use_nodes(self.node_commands)
        self.agent_commands = AgentCommandSender(self.hub, self.node_commands)
        broker, relay = self.broker, self.relay
        metrics.SESSIONS_OPEN.set_function(lambda: broker.live_count)
        metrics.TUNNELS_OPEN.set_function(lambda: sum(relay.is_connected(s) for s in relay.live_session_ids()))
        self.fleet_ingest = FleetIngest(self.db)  # readings: bounded in flight, agents told to slow down
        # readings history: next months' partitions (PostgreSQL), retention per dealer in batches
        self.history_upkeep = HistoryUpkeep(self.db, self.audit)
        self.supervisor.add("readings-history", self.history_upkeep.run)
        self.events = AgentEvents(
            db=self.db, audit=self.audit, sessions=self.broker, presence=self.hub,
            loss_grace_s=gw.agent_loss_grace_seconds, ingest=self.fleet_ingest, node_id=self.broker.node_id,
        )

        ch = self.settings.channel
        self.denials = DenialTally(self.audit, window_s=ch.denial_audit_window_seconds, supervisor=self.supervisor)
        await self._stack.enter_async_context(self.denials)  # closed after the channel: flushes last
        self.channel = AgentChannelServer(
            gw.grpc_host, gw.grpc_port, enrol_port=gw.enrol_port, ca=self.ca, db=self.db,
            audit=self.audit, hub=self.hub,
            handlers=self.events.handlers(),
            facts=ChannelFacts(
                relay_address=f"{gw.relay_host}:{self.relay.port}",
                relay_host_key_fingerprint=self.relay.host_key_fingerprint,
                mqtt_url=ch.mqtt_url,
            ),
            denials=self.denials, crl=self._mqtt_crl(), supervisor=self.supervisor,
            node_id=gw.resolved_node_id,
            server_names=list(dict.fromkeys([gw.grpc_host, "localhost", "127.0.0.1", *ch.certificate_names])),
        )
        await self._stack.enter_async_context(self.channel)
        self.agent_ca = AgentCaFacts(
            path=str((self.key_dir / "agent-ca" / "agent-ca.crt").resolve()),
            sha256=":".join(f"{b:02X}" for b in self.ca.cert.fingerprint(hashes.SHA256())),
            pem=self.ca.cert_pem,
        )
        log.info("agent.enrolment", address=self.enrol_address, ca_cert=self.agent_ca.path,
                 ca_sha256=self.agent_ca.sha256,
                 hint="agents enrol with: printgate agent enroll --url ADDRESS --token TOKEN "
                      "--ca-cert <a copy of ca_cert>; compare the copy's fingerprint with "
                      "openssl x509 -noout -fingerprint -sha256 -in <copy>")
        self.mqtt: MqttBridge | None = None
        if ch.mqtt_url:
            await self._start_mqtt_bridge()

        # a newer stream of an agent on another node cuts the older one there, audited (issue 18)
        self.stream_takeover = CrossNodeTakeOver(self.hub, self.node_commands, self.audit, self.broker.node_id,
                                                 denials=self.denials)
        self._stack.push_async_callback(self.stream_takeover.aclose)
        # registered (lease renewed, expired nodes taken over) before the broker reaps this node's leftovers
        self.node = NodeLease(
            self.db, self.broker.node_id,
            NodeAddresses(relay=f"{gw.relay_host}:{self.relay.port}", proxy=f"{gw.proxy_host}:{self.proxy.port}",
                          channel=self.channel.target),
            lease_s=gw.node_lease_seconds, renew_s=gw.node_renew_seconds,
            take_over=self.broker.take_over_expired_nodes, online_agents=self.hub.online_agents,
            supervisor=self.supervisor, on_lease_lost=self.broker.end_sessions_ended_elsewhere,
            on_renewed=self.node_commands.poll,
            on_stream_taken=self.stream_takeover.taken, cut_stream=self.stream_takeover.cut_here,
            key_ids=self.key_ids, has_stream=lambda agent: "grpc" in self.hub.connected_channels(agent))
        await self._stack.enter_async_context(self.node)
        self.hub.add_presence_listener(self.node.presence)
        await self._stack.enter_async_context(self.broker)
        await self._stack.enter_async_context(self.node_commands)  # answers other nodes from now on
        stale = await reconcile_with_sessions(self.firewall, ())  # the broker closed leftovers
        if stale:
            log.info("firewall.reconciled", removed=stale)
        await self._start_portal()

    def _start_integrations(self, kms: FileKms) -> None:
        """Outbound webhooks (issue 20, docs/integrations.md): the outbox dispatcher runs supervised,
        the portal's Integrations page manages the dealers' endpoints."""
        cfg = self.settings.integrations
        self.webhook_endpoints: WebhookEndpoints | None = None
        if not cfg.enabled:
            return
        transport = WebhookTransport(timeout=cfg.webhook_timeout_seconds,
                                     allow_private=cfg.allow_private_endpoints)
        self._stack.push_async_callback(transport.aclose)
        self.webhooks = WebhookDispatcher(
            self.db, kms, transport, audit=self.audit,
            policy=RetryPolicy(max_attempts=cfg.max_attempts, initial_seconds=cfg.retry_initial_seconds,
                               maximum_seconds=cfg.retry_max_seconds, jitter=cfg.retry_jitter),
            per_endpoint=cfg.per_endpoint_concurrency, max_in_flight=cfg.max_in_flight,
            per_dealer=cfg.per_dealer_concurrency, breaker_failures=cfg.breaker_failures,
            breaker_seconds=cfg.breaker_seconds,
            poll_seconds=cfg.poll_seconds, retention=timedelta(days=cfg.retention_days))
        self.supervisor.add("webhooks", self.webhooks.run)
        self.webhook_endpoints = WebhookEndpoints(self.db, kms, self.audit, transport,
                                                  allow_private=cfg.allow_private_endpoints,
                                                  on_redeliver=self.webhooks.wake,
                                                  max_endpoints=cfg.max_endpoints_per_dealer)

    def _mqtt_crl(self) -> CrlPublisher | None:
        """The CRL the MQTT broker checks agents against (``channel.mqtt_crl_file``), if MQTT is on."""
        ch = self.settings.channel
        if not ch.mqtt_url:
            return None
        path = ch.mqtt_crl_file or self.key_dir / "agent-ca" / "agent-ca.crl"
        reload = signal_pid_file(ch.mqtt_broker_pid_file) if ch.mqtt_broker_pid_file else None
        return CrlPublisher(self.ca, path, reload=reload)

    async def _start_mqtt_bridge(self) -> None:
        """MQTT as the agents' second command path (``channel.mqtt_url``)."""
        ch = self.settings.channel
        endpoint = parse_mqtt_url(ch.mqtt_url)
        ca_path, cert_path, key_path = MqttBridge.files_from_ca(self.ca, self.data_dir / "mqtt")
        if ch.mqtt_cert_file or ch.mqtt_key_file:
            if not (ch.mqtt_cert_file and ch.mqtt_key_file):
                raise ConfigError("channel.mqtt_cert_file and channel.mqtt_key_file go together")
            cert_path, key_path = ch.mqtt_cert_file, ch.mqtt_key_file
        self.mqtt = MqttBridge(
            endpoint.host, endpoint.port, ca_path=ch.mqtt_ca_file or ca_path, cert_path=cert_path,
            key_path=key_path, hub=self.hub, handlers=self.channel.handlers, db=self.db,
            denials=self.denials, transport=endpoint.transport, ws_path=endpoint.path,
            supervisor=self.supervisor,  # connection watch and message dispatch, health in /readyz
        )
        await self._stack.enter_async_context(self.mqtt)

    def _proxy_tls(self) -> dict[str, Any]:
        """How the proxy serves session hosts to browsers (``gateway.proxy_scheme`` and friends)."""
        gw = self.settings.gateway
        tls: dict[str, Any] = {"public_scheme": gw.proxy_scheme, "public_port": gw.proxy_public_port}
        if gw.proxy_scheme == "https":
            if gw.proxy_certs:
                tls["certs"] = list(gw.proxy_certs)
            else:
                self.dwa_ca_cert = ensure_own_ca(self.key_dir / "dwa-ca")
                tls["confdir"] = self.key_dir / "dwa-ca"
                log.info("dwa.own_ca", ca_cert=str(self.dwa_ca_cert),
                         hint="browsers must trust this CA for https session hosts (unused when a load "
                              "balancer in front of the proxy terminates TLS; proxy_certs replaces it)")
        return tls

    async def _firewall(self) -> Firewall:
        gw = self.settings.gateway
        if gw.firewall == "inprocess":
            return InProcessFirewall()
        if not gw.relay_port or not gw.proxy_port:
            raise ConfigError("the nftables firewall needs fixed gateway.relay_port and gateway.proxy_port")
        nft = NftablesFirewall("printgate", gw.firewall_netns, protected_ports=(gw.relay_port, gw.proxy_port))
        await nft.install()
        self._stack.push_async_callback(nft.aclose)
        return nft

    def key_ids(self) -> dict[str, str]:
        """The ids of the keys this node uses; every node must use the same (``NodeLease`` refuses to
        start beside a live node that records others, issue 18)."""
        return {"agent-ca": self.ca.ids()[0], "audit": self._audit_signer.key_id,
                **{use: self.keys.current(use).key_id for use in ("command-signing", "relay-ca", "relay-host-key")}}

    @property
    def enrol_address(self) -> str:
        """host:port agents enrol at (``printgate agent enroll --url``): ``[channel] public_enrol_address``
        (a load balancer's) or this node's own."""
        public = self.settings.channel.public_enrol_address
        return public or f"{self.settings.gateway.relay_host}:{self.channel.enrol_port}"

    @property
    def channel_address(self) -> str:
        """host:port agents reach the channel at (their ``cloud_grpc``): ``[channel] public_address`` or
        this node's own."""
        gw = self.settings.gateway
        return self.settings.channel.public_address or f"{gw.grpc_host}:{self.channel.port}"

    async def _start_portal(self) -> None:
        p = self.settings.portal.model_copy(update={"agent_enrol_url": self.enrol_address,
                                                    "agent_channel_url": self.channel_address})
        app = create_app(p, db=self.db, broker=self.broker, audit=self.audit, agent_ca=self.agent_ca,
                         commands=self.agent_commands, vault=self.vault)
        app.state.task_health = self.supervisor.health
        # security-alert webhook subscriptions to private addresses (labs): off unless configured
        app.state.allow_private_webhooks = self.settings.security_alerts.allow_private_webhooks
        app.state.max_security_subscriptions = self.settings.security_alerts.max_subscriptions_per_tenant
        app.state.security_alert_kms = self.security_alert_kms
        app.state.webhook_endpoints = self.webhook_endpoints  # None: integrations off
        proxy = self.proxy  # /readyz: not ready while the proxy cannot audit (it refuses every request then)
        app.state.audit_failing = lambda: bool(getattr(proxy, "audit_failing", False))
        broker = self.broker  # /readyz: not ready while draining, so the load balancer sends new work elsewhere
        app.state.draining = lambda: broker.draining
        self._uvicorn = uvicorn.Server(portal_server_config(app, p))
        self._portal_task = asyncio.create_task(self._uvicorn.serve(), name="portal")
        async with asyncio.timeout(15):
            while not self._uvicorn.started:
                if self._portal_task.done():
                    self._portal_task.result()
                await asyncio.sleep(0.02)

    async def end_sessions(self) -> None:
        """The first step of a stop (docs/scale-out.md "Draining"): the node drains in the registry,
        new sessions are refused and, without a drain grace (one node, the demo), the live sessions
        end now, while their agents still hear the close commands. Once; ``aclose`` does it too.
        ``DemoSystem`` calls it before it stops its agent."""
        if self._sessions_ending:
            return
        self._sessions_ending = True
        if self.node is None:
            return
        await self.node.drain()  # SIGTERM: draining while sessions end, stopped when all is closed
        if self._portal_task is not None:  # started: a graceful drain (a failed start just stops)
            await self.broker.start_draining(self.settings.gateway.drain_grace_seconds)
            if self.settings.gateway.drain_grace_seconds <= 0:
                await self.broker.finish_draining()

    async def aclose(self) -> None:
        started = self.node is not None and self._portal_task is not None
        await self.end_sessions()
        if started:
            await self._drain()
        if self.events is not None:
            await self.events.aclose()
        if self._portal_task is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._portal_task, 5)
            self._portal_task = None
        await self._stack.aclose()

    async def _drain(self) -> None:
        """Rolling upgrade (docs/scale-out.md "Draining"): new sessions refused (and ``/readyz`` 503),
        agents told to reconnect elsewhere (their command streams end with the reason, then the
        channel stops: their connections close and they reconnect with back-off through the load
        balancer), live sessions get ``drain_grace_seconds`` to end before they are ended; audited."""
        gw = self.settings.gateway  # end_sessions() began it: with no grace the sessions have ended
        reason = (f"gateway node {self.broker.node_id} is draining for maintenance: reconnect, the load "
                  "balancer sends this agent to another node")
        agents = sorted(self.hub.online_agents())
        for agent in agents:
            self.hub.cut_agent(agent, reason)
        log.info("node.agents_sent_elsewhere", node=self.broker.node_id, agents=len(agents))
        try:
            await self.channel.aclose()  # its connections end: the agents reach another node
        except Exception as exc:  # the drain goes on: sessions still end gracefully
            log.warning("node.channel_stop_failed", error=str(exc))
        if gw.drain_grace_seconds > 0:
            await self.broker.finish_draining()

    @property
    def portal_url(self) -> str:
        return self.settings.portal.public_url.rstrip("/")

    async def _end_from_browser(self, session_id: str) -> None:
        await self.broker.close_session(SessionId(session_id), reason="ended by the technician",
                                        actor="technician")

    async def _extend_from_browser(self, session_id: str) -> datetime | None:
        return await self.broker.extend_session(session_id)

    async def _end_on_timeout(self, session_id: str, reason: str) -> None:
        await self.broker.close_session(SessionId(session_id), reason=reason, actor="system")
