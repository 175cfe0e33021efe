"""Composition root: wires a running printgate system.

``Cloud`` is portal + gateway in one process (``printgate serve``);
``DemoSystem`` adds the simulated printer LAN and one enrolled agent, all on
this machine (``printgate demo``, the end-to-end tests, the benchmarks).
This is the one module (with the CLI) allowed to import every package.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import uvicorn
from fastapi import APIRouter
from pydantic import SecretStr

from agent.channel.enroll import enroll
from agent.runtime import AgentRuntime
from agent.service import AgentAssembly
from audit.checkpoint import Signer
from audit.checkpoint_timer import CheckpointTimer
from audit.log import AuditLog
from audit.query import row_to_record
from gateway.broker import BrokerConfig, DwaBroker
from gateway.channel.ca import AgentCA
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.handlers import ChannelHandlers
from gateway.channel.hub import AgentHub
from gateway.dwa_policy import decide_dwa_open
from gateway.dwa_wiring import DwaWiring
from gateway.firewall.base import Firewall
from gateway.firewall.inprocess import InProcessFirewall
from gateway.firewall.nftables import NftablesFirewall
from gateway.firewall.reconcile import reconcile_with_sessions
from gateway.proxy.public_tls import ensure_own_ca
from gateway.proxy.routes import RouteTable
from gateway.proxy.server import DwaProxy
from gateway.proxy.workers import ProxyWorkerPool
from gateway.relay import Relay
from gateway.relay.limits import RelayLimits
from lab.catalog import LAB_DEVICES, PRINTERS
from lab.ews.server import EwsLab
from lab.ports import free_tcp_port
from lab.snmp import SnmpLab
from portal.app import create_app
from portal.audit_views import audit_router
from portal.auth.passwords import hash_password
from portal.deps import require_role
from portal.fleet import fleet_router
from printgate.domain import (
    AuditEventIn,
    AuditRecord,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Device,
    DeviceId,
    Outcome,
    Role,
    SessionId,
    Site,
    SiteId,
    User,
    UserId,
)
from printgate.errors import ConfigError
from printgate.interfaces import SessionLaunch
from printgate.lifecycle import Service
from printgate.logs import configure_logging, get_logger
from printgate.settings import AgentSettings, GatewaySettings, PortalSettings, Settings
from printgate.store import audit as audit_store
from printgate.store import channel as channel_store
from printgate.store import devices, tenants
from printgate.store.db import Database, migrate
from printgate.wire import agent_pb2 as pb
from printgate.wire import convert

log = get_logger("printgate.system")
RESUME_DELAY_S = 1.0  # after an agent's return, before its tunnel-less sessions are reopened


class Cloud(Service):
    """Portal + gateway (relay, proxy, firewall, agent channel, broker) in one process."""

    def __init__(self, settings: Settings, *, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self._stack = contextlib.AsyncExitStack()
        self._portal_task: asyncio.Task[None] | None = None
        self._loss_checks: dict[str, asyncio.Task[None]] = {}
        self._resumes: dict[str, asyncio.Task[None]] = {}
        self.dwa_ca_cert: Path | None = None  # the session CA browsers must trust (https, no proxy_certs)

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
        await migrate(self.settings.database_url)
        self.db = Database(self.settings.database_url)
        self._stack.push_async_callback(self.db.aclose)
        signer = _load_or_create_signer(self.data_dir / "audit-signing.key")
        (self.data_dir / "audit-public.pem").write_text(signer.public_key_pem())
        self.audit = AuditLog(self.db, signer)
        await self._stack.enter_async_context(CheckpointTimer(self.audit, gw.audit_checkpoint_seconds))

        self.firewall = await self._firewall()
        self.relay = Relay(
            gw.relay_host, gw.relay_port, host_key_path=self.data_dir / "relay_host_key",
            ca_key_path=self.data_dir / "relay_ssh_ca", audit=self.audit, firewall=self.firewall,
            limits=RelayLimits(keepalive_s=gw.relay_keepalive_seconds),
        )
        await self._stack.enter_async_context(self.relay)

        self.ca = AgentCA.load_or_create(self.data_dir / "agent-ca")
        self.hub = AgentHub(self.ca.command_key)
        self.routes = RouteTable(launch_token_ttl_s=gw.launch_token_ttl_seconds)
        self.proxy: DwaProxy | ProxyWorkerPool
        tls = self._proxy_tls()
        if gw.proxy_workers > 1:  # one mitmproxy process per core (DESIGN §9)
            self.proxy = ProxyWorkerPool(
                gw.proxy_host, gw.proxy_port, workers=gw.proxy_workers,
                database_url=self.settings.database_url, dwa_domain=gw.dwa_domain,
                routes=self.routes, on_end_request=self._end_from_browser,
                on_session_timeout=self._end_on_timeout, on_extend_request=self._extend_from_browser,
                launch_token_ttl_s=gw.launch_token_ttl_seconds, **tls,
            )
        else:
            self.proxy = DwaProxy(
                gw.proxy_host, gw.proxy_port, dwa_domain=gw.dwa_domain, routes=self.routes,
                audit=self.audit, on_end_request=self._end_from_browser,
                on_session_timeout=self._end_on_timeout, on_extend_request=self._extend_from_browser,
                **tls,
            )
        await self._stack.enter_async_context(self.proxy)

        self.channel = AgentChannelServer(
            gw.grpc_host, gw.grpc_port, enrol_port=gw.enrol_port, ca=self.ca, db=self.db,
            audit=self.audit, hub=self.hub,
            handlers=ChannelHandlers(
                on_inventory=self._on_inventory, on_readings=self._on_readings,
                on_presence=self._on_presence, on_command_result=self._on_command_result,
            ),
            facts=ChannelFacts(
                relay_address=f"{gw.relay_host}:{self.relay.port}",
                relay_host_key_fingerprint=self.relay.host_key_fingerprint,
            ),
        )
        await self._stack.enter_async_context(self.channel)

        wiring = DwaWiring(
            relay_public_host=gw.relay_host, session_host=self.proxy.session_host,
            idle_timeout_s=gw.session_idle_seconds,
        )
        self.broker = DwaBroker(
            BrokerConfig(session_ttl_s=gw.session_ttl_seconds, relay_port=self.relay.port,
                         proxy_port=self.proxy.port),
            db=self.db, audit=self.audit, decide=decide_dwa_open, firewall=self.firewall,
            relay=self.relay, commands=self.hub, proxy=self.proxy, routes=self.routes,
            make_open_command=wiring.open_command, make_close_command=wiring.close_command,
            make_route=wiring.route, agent_address=self.hub.peer_ip,
        )
        await self._stack.enter_async_context(self.broker)
        stale = await reconcile_with_sessions(self.firewall, ())  # the broker closed leftovers
        if stale:
            log.info("firewall.reconciled", removed=stale)
        await self._start_portal()

    def _proxy_tls(self) -> dict[str, Any]:
        """How the proxy serves session hosts to browsers (``gateway.proxy_scheme`` and friends)."""
        gw = self.settings.gateway
        tls: dict[str, Any] = {"public_scheme": gw.proxy_scheme, "public_port": gw.proxy_public_port}
        if gw.proxy_scheme == "https":
            if gw.proxy_certs:
                tls["certs"] = list(gw.proxy_certs)
            else:
                self.dwa_ca_cert = ensure_own_ca(self.data_dir / "dwa-ca")
                tls["confdir"] = self.data_dir / "dwa-ca"
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

    async def _start_portal(self) -> None:
        enrol_at = f"{self.settings.gateway.relay_host}:{self.channel.enrol_port}"
        p = self.settings.portal.model_copy(update={"agent_enrol_url": enrol_at})
        app = create_app(p, db=self.db, broker=self.broker, audit=self.audit,
                         extra_routers=self._extra_routers())
        config = uvicorn.Config(app, host=p.host, port=p.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._uvicorn = uvicorn.Server(config)
        self._portal_task = asyncio.create_task(self._uvicorn.serve(), name="portal")
        async with asyncio.timeout(15):
            while not self._uvicorn.started:
                if self._portal_task.done():
                    self._portal_task.result()
                await asyncio.sleep(0.02)

    def _extra_routers(self) -> Sequence[APIRouter]:
        return [
            fleet_router(self.db),
            audit_router(self.db, self.audit, require_role(Role.AUDITOR)),
        ]

    async def aclose(self) -> None:
        tasks = [*self._loss_checks.values(), *self._resumes.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loss_checks.clear()
        self._resumes.clear()
        if self._portal_task is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._portal_task, 5)
            self._portal_task = None
        await self._stack.aclose()

    @property
    def portal_url(self) -> str:
        return self.settings.portal.public_url.rstrip("/")

    # ---- agent channel handlers -----------------------------------------
    async def _on_inventory(self, agent_id: str, found: list[pb.DiscoveredDevice]) -> None:
        now = datetime.now(UTC)
        async with self.db.transaction() as s:
            agent = await tenants.get_agent(s, agent_id)
            if agent is None:
                return
            printers = [d for d in found if convert.is_printer(d) and d.ews_port]
            displaced: list[tuple[str, str, str]] = []
            for d in printers:
                identity = convert.identity_from_wire(d)
                for old in await devices.displaced_at(s, agent.site_id, d.ip, identity):
                    if not old.identity_verified:
                        continue  # flagged already
                    old.identity_verified = False  # fail closed: no tunnel until re-verified
                    displaced.append((old.id, d.ip, identity.describe()))
                await devices.upsert_discovered(
                    s, device_id=uuid.uuid4().hex[:16], site_id=agent.site_id, agent_id=agent_id,
                    ip=d.ip, identity=identity, ews_port=d.ews_port,
                    ews_scheme=d.ews_scheme or "http", now=now,
                )
        await self.audit.append(AuditEventIn(
            type="agent.inventory", actor=f"agent:{agent_id}",
            details={"printers": len(printers), "reported": len(found)},
        ))
        for device_id, ip, now_there in displaced:
            await self.audit.append(AuditEventIn(
                type="device.identity_changed", outcome=Outcome.FAILURE, actor=f"agent:{agent_id}",
                device_id=device_id,
                details={"ip": ip, "now_answering": now_there,
                         "action": "device marked unverified; remote access refused until re-verified"},
            ))
            log.warning("device.identity_changed", device=device_id, ip=ip, now=now_there)

    async def _on_readings(self, agent_id: str, batch_id: str, payload: bytes) -> None:
        try:
            from printgate.store.readings import ingest_payload
        except ImportError:
            log.info("readings.ignored", agent=agent_id, batch=batch_id, bytes=len(payload))
            return
        await ingest_payload(self.db, agent_id, batch_id, payload)

    async def _on_presence(self, agent_id: str, online: bool) -> None:
        async with self.db.transaction() as s:
            await tenants.set_agent_presence(s, agent_id, online=online, at=datetime.now(UTC))
        pending = self._loss_checks.pop(agent_id, None)
        if pending is not None:
            pending.cancel()
        if online and pending is not None:  # back within the grace period: its tunnels may be gone
            self._resumes[agent_id] = asyncio.create_task(self._resume_tunnels(agent_id),
                                                          name=f"agent-resume-{agent_id}")
        if not online:
            self._loss_checks[agent_id] = asyncio.create_task(
                self._confirm_agent_lost(agent_id), name=f"agent-loss-{agent_id}"
            )

    async def _resume_tunnels(self, agent_id: str) -> None:
        try:
            await asyncio.sleep(RESUME_DELAY_S)  # a tunnel that only blipped reconnects by itself
            resumed = await self.broker.resume_tunnels(agent_id)
            if resumed:
                log.info("dwa.tunnels_resumed", agent=agent_id, sessions=resumed)
        finally:
            if self._resumes.get(agent_id) is asyncio.current_task():
                del self._resumes[agent_id]

    async def _confirm_agent_lost(self, agent_id: str) -> None:
        """A reconnect within the grace period keeps the agent's sessions; otherwise they end."""
        await asyncio.sleep(self.settings.gateway.agent_loss_grace_seconds)
        self._loss_checks.pop(agent_id, None)
        if not self.hub.is_online(agent_id):
            await self.broker.agent_lost(agent_id)

    async def _on_command_result(self, agent_id: str, result: pb.CommandResult) -> None:
        failing = self.broker.command_result(result.command_id, ok=result.ok, message=result.message)
        if failing is None:
            return
        await self.audit.append(AuditEventIn(
            type="device.identity_mismatch" if result.error_code == "identity_mismatch" else "tunnel.failed",
            outcome=Outcome.FAILURE, actor=f"agent:{agent_id}", session_id=failing,
            details={"code": result.error_code, "message": result.message},
        ))
        await self.broker.close_session(SessionId(failing), reason=result.message, actor=f"agent:{agent_id}")

    async def _end_from_browser(self, session_id: str) -> None:
        await self.broker.close_session(SessionId(session_id), reason="ended by the technician",
                                        actor="technician")

    async def _extend_from_browser(self, session_id: str) -> datetime | None:
        return await self.broker.extend_session(session_id)

    async def _end_on_timeout(self, session_id: str, reason: str) -> None:
        await self.broker.close_session(SessionId(session_id), reason=reason, actor="system")


def _load_or_create_signer(path: Path) -> Signer:
    if path.is_file():
        return Signer.load(path)
    signer = Signer.generate()
    signer.save(path)
    return signer


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    password: str
    totp_secret: str


DEMO_DEALER = Dealer(DealerId("dealer-demo"), "Demo Print Services")
DEMO_CUSTOMER = Customer(CustomerId("cust-acme"), DEMO_DEALER.id, "Acme Offices")
DEMO_SITE = Site(SiteId("site-acme-hq"), DEMO_CUSTOMER.id, "Acme HQ")


class DemoSystem(Service):
    """Lab LAN + cloud + one enrolled agent, all on this machine, on free ports."""

    def __init__(
        self, base_dir: Path, *, log_level: str = "info", fixed_ports: bool = False,
        with_agent: bool = True, database_url: str | None = None,
        agent_overrides: dict[str, Any] | None = None,
        gateway_overrides: dict[str, Any] | None = None,
    ) -> None:
        """``with_agent=False``: the caller enrols and runs an agent itself (``enrolment_token``)."""
        self.base_dir = base_dir
        self._with_agent = with_agent
        self._database_url = database_url
        self._agent_overrides = agent_overrides or {}
        self._gateway_overrides = gateway_overrides or {}
        self._log_level = log_level
        self._fixed_ports = fixed_ports
        self._stack = contextlib.AsyncExitStack()
        self.demo_user = DemoUser(
            email="tech@demo.printgate.test", password=secrets.token_urlsafe(12),
            totp_secret=pyotp.random_base32(),
        )

    def _settings(self) -> Settings:
        if self._fixed_ports:
            defaults = Settings()
            portal, gw = defaults.portal, defaults.gateway
            ports = (portal.port, gw.relay_port, gw.proxy_port, gw.grpc_port, gw.enrol_port,
                     free_tcp_port())
        else:
            ports = tuple(free_tcp_port() for _ in range(6))  # type: ignore[assignment]
        portal_port, relay_port, proxy_port, grpc_port, enrol_port, self.ews_port = ports
        return Settings(
            database_url=self._database_url or f"sqlite+aiosqlite:///{self.base_dir / 'printgate.db'}",
            log_level=self._log_level,
            portal=PortalSettings(port=portal_port, public_url=f"http://127.0.0.1:{portal_port}",
                                  secret_key=SecretStr(secrets.token_urlsafe(32))),
            gateway=GatewaySettings(relay_port=relay_port, proxy_port=proxy_port,
                                    grpc_port=grpc_port, enrol_port=enrol_port,
                                    data_dir=self.base_dir / "gateway",
                                    **self._gateway_overrides),
        )

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> None:
        configure_logging(self._log_level)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.settings = self._settings()
        self.snmp = await self._stack.enter_async_context(SnmpLab(workdir=self.base_dir / "snmpsim"))
        self.ews = await self._stack.enter_async_context(EwsLab(PRINTERS, port=self.ews_port))
        self.cloud = await self._stack.enter_async_context(
            Cloud(self.settings, data_dir=self.settings.gateway.data_dir)
        )
        await self._seed()
        if self._with_agent:
            await self._start_agent()

    async def add_technician(self, email: str) -> tuple[str, DemoUser]:
        """Another technician of the demo dealer (its own password and TOTP secret); (id, login)."""
        login = DemoUser(email=email, password=secrets.token_urlsafe(12), totp_secret=pyotp.random_base32())
        user_id = "user-" + secrets.token_hex(6)
        async with self.cloud.db.transaction() as s:
            await tenants.add_user(
                s, User(UserId(user_id), email, email.split("@")[0], frozenset({Role.TECHNICIAN}),
                        dealer_id=DEMO_DEALER.id),
                password_hash=hash_password(login.password), totp_secret=login.totp_secret,
            )
        return user_id, login

    async def _seed(self) -> None:
        async with self.cloud.db.transaction() as s:
            if await tenants.get_customer(s, DEMO_CUSTOMER.id) is None:
                await tenants.add_dealer(s, DEMO_DEALER)
                await s.flush()
                await tenants.add_customer(s, DEMO_CUSTOMER)
                await s.flush()
                await tenants.add_site(s, DEMO_SITE)
            row = await tenants.get_user_row_by_email(s, self.demo_user.email)
            if row is None:
                await tenants.add_user(
                    s, User(UserId("user-demo-tech"), self.demo_user.email, "Demo Technician",
                            frozenset({Role.TECHNICIAN}), dealer_id=DEMO_DEALER.id),
                    password_hash=hash_password(self.demo_user.password),
                    totp_secret=self.demo_user.totp_secret,
                )
            else:
                row.password_hash = hash_password(self.demo_user.password)
                row.totp_secret = self.demo_user.totp_secret
                row.totp_last_step = None
            self.enrolment_token = await channel_store.create_enrolment_token(
                s, DEMO_SITE.id, ttl=timedelta(minutes=10), created_by="demo"
            )

    def agent_settings(self, data_dir: Path) -> AgentSettings:
        """Settings for an agent on the lab LAN (also written out for `printgate agent run`)."""
        return AgentSettings(
            cloud_grpc=self.cloud.channel.target, data_dir=data_dir,
            targets=[d.ip for d in LAB_DEVICES], snmp_port=self.snmp.port,
            ews_candidates=[f"{self.ews_port}/https", f"{self.ews_port}/http"],
            snmp_timeout=1.0, snmp_retries=1, **self._agent_overrides,
        )

    async def _start_agent(self) -> None:
        identity = await enroll(
            self.cloud.channel.enrol_target, self.enrolment_token, self.base_dir / "agent",
            ca_cert_pem=self.cloud.ca.cert_pem,
        )
        self.agent = AgentAssembly(self.agent_settings(self.base_dir / "agent"), identity)
        self.runtime: AgentRuntime = await self._stack.enter_async_context(self.agent)

    async def aclose(self) -> None:
        await self._stack.aclose()

    # ---- conveniences for the demo, tests and benchmarks ----------------
    @property
    def portal_url(self) -> str:
        return self.cloud.portal_url

    async def wait_for_devices(self, *, minimum: int, timeout: float) -> int:
        """Wait until ``minimum`` printers are known and their agent is online."""
        async with asyncio.timeout(timeout):
            while True:
                async with self.cloud.db.session() as s:
                    found = await devices.list_devices_of_dealer(s, DEMO_DEALER.id)
                online = all(self.cloud.hub.is_online(d.agent_id) for d, _ in found)
                if len(found) >= minimum and online:
                    return len(found)
                await asyncio.sleep(0.2)

    async def device_at(self, ip: str) -> Device:
        async with self.cloud.db.session() as s:
            for device, _customer in await devices.list_devices_of_dealer(s, DEMO_DEALER.id):
                if device.ip == ip:
                    return device
        raise LookupError(f"no device discovered at {ip}")

    async def open_session_as_demo_user(self, ip: str) -> str:
        """Open a DWA session for the demo technician as the portal would; the launch URL."""
        device = await self.device_at(ip)
        async with self.cloud.db.session() as s:
            user = await tenants.get_user(s, "user-demo-tech")
        assert user is not None
        result = await self.cloud.broker.open_session(
            user, DeviceId(device.id), source_ip="127.0.0.1", mfa_age_seconds=1.0
        )
        if not isinstance(result, SessionLaunch):
            raise RuntimeError(f"session refused: {result.message} {result.decision.explain()}")
        return result.launch_url

    async def audit_events(self) -> list[AuditRecord]:
        """Every record of the audit log, in order (tests and the demo's summary)."""
        out: list[AuditRecord] = []
        async for batch in audit_store.iter_records(self.cloud.db):
            out.extend(row_to_record(row) for row in batch)
        return out

    async def close_all_sessions(self, *, reason: str) -> None:
        for session in list(self.cloud.broker.live_sessions_of("user-demo-tech")):
            await self.cloud.broker.close_session(session.id, reason=reason, actor="test")
