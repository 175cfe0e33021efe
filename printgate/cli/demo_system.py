"""``DemoSystem``: the simulated printer LAN, the cloud and one enrolled agent on this machine.

Used by ``printgate demo``, the end-to-end tests and the benchmarks. With the
tests and benchmarks, this is the only importer of ``lab/``: ``printgate serve``
never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
from pydantic import SecretStr

from agent.channel.enroll import enroll
from agent.runtime import AgentRuntime
from agent.service import AgentAssembly
from audit.query import row_to_record
from gateway.channel.ca import AgentCA
from lab.catalog import LAB_DEVICES, PRINTERS
from lab.ews.server import EwsLab
from lab.mosquitto import Broker
from lab.ports import free_tcp_port
from lab.snmp import SnmpLab
from portal.auth.passwords import hash_password
from printgate.cli.cloud import Cloud
from printgate.domain import (
    AuditRecord,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Device,
    DeviceId,
    Role,
    Site,
    SiteId,
    User,
    UserId,
)
from printgate.interfaces import SessionLaunch
from printgate.lifecycle import Service
from printgate.logs import configure_logging
from printgate.settings import (
    AgentSettings,
    ChannelSettings,
    GatewaySettings,
    IntegrationSettings,
    PortalSettings,
    SecurityAlertSettings,
    Settings,
)
from printgate.store import audit as audit_store
from printgate.store import channel as channel_store
from printgate.store import devices, tenants
from printgate.store import users as users_store


@dataclass(frozen=True, slots=True)
class DemoUser:
    email: str
    password: str
    totp_secret: str


DEMO_DEALER = Dealer(DealerId("dealer-demo"), "Demo Print Services")
DEMO_CUSTOMER = Customer(CustomerId("cust-acme"), DEMO_DEALER.id, "Acme Offices")
DEMO_SITE = Site(SiteId("site-acme-hq"), DEMO_CUSTOMER.id, "Acme HQ")
# the accounts besides the technician: label -> (e-mail local part, user)
DEMO_ACCOUNTS: dict[str, tuple[str, User]] = {
    "dealer admin": ("admin", User(UserId("user-demo-admin"), "admin@demo.printgate.test", "Demo Dealer Admin",
                                   frozenset({Role.DEALER_ADMIN}), dealer_id=DEMO_DEALER.id)),
    "auditor": ("auditor", User(UserId("user-demo-auditor"), "auditor@demo.printgate.test", "Demo Auditor",
                                frozenset({Role.AUDITOR}), dealer_id=DEMO_DEALER.id)),
    "customer approver": ("approver", User(UserId("user-demo-approver"), "approver@demo.printgate.test",
                                           "Acme Approver", frozenset({Role.CUSTOMER_ADMIN}),
                                           customer_id=DEMO_CUSTOMER.id)),
}


class DemoSystem(Service):
    """Lab LAN + cloud + one enrolled agent, all on this machine, on free ports."""

    def __init__(
        self, base_dir: Path, *, log_level: str = "info", fixed_ports: bool = False,
        with_agent: bool = True, database_url: str | None = None,
        agent_overrides: dict[str, Any] | None = None,
        gateway_overrides: dict[str, Any] | None = None, mqtt: bool = False,
    ) -> None:
        """``with_agent=False``: the caller enrols and runs an agent itself (``enrolment_token``).
        ``mqtt``: a Mosquitto from the reference config too, as the agents' second command path."""
        self._mqtt = mqtt
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
        # one account per role, so every part of the portal can be tried (role label -> login)
        self.accounts: dict[str, DemoUser] = {"technician": self.demo_user} | {
            label: DemoUser(email=f"{local}@demo.printgate.test", password=secrets.token_urlsafe(12),
                            totp_secret=pyotp.random_base32())
            for label, (local, _user) in DEMO_ACCOUNTS.items()
        }

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
                                    # one node on one machine: a stop ends its sessions at once (no drain grace)
                                    **{"drain_grace_seconds": 0.0, **self._gateway_overrides}),
            # the lab's webhook receivers listen on loopback (a real server refuses such addresses)
            integrations=IntegrationSettings(allow_private_endpoints=True, poll_seconds=0.2),
            security_alerts=SecurityAlertSettings(allow_private_webhooks=True),
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
        self.mosquitto: Broker | None = None
        if self._mqtt:
            await self._start_mosquitto()
        self.cloud = await self._stack.enter_async_context(
            Cloud(self.settings, data_dir=self.settings.gateway.data_dir)
        )
        await self._seed()
        if self._with_agent:
            await self._start_agent()

    async def _start_mosquitto(self) -> None:
        """The reference Mosquitto with certificates from the gateway's agent CA (created here
        first; the cloud loads the same one); the gateway keeps its CRL and reloads it."""
        ca = AgentCA.load_or_create(self.settings.gateway.data_dir / "agent-ca")
        self.mosquitto = await self._stack.enter_async_context(Broker.prepare(ca))
        channel = ChannelSettings(mqtt_url=self.mosquitto.url, mqtt_crl_file=self.mosquitto.crl_path,
                                  mqtt_broker_pid_file=self.mosquitto.pid_file)
        self.settings = self.settings.model_copy(update={"channel": channel})

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
            users = {"technician": User(UserId("user-demo-tech"), self.demo_user.email, "Demo Technician",
                                        frozenset({Role.TECHNICIAN}), dealer_id=DEMO_DEALER.id)}
            users |= {label: user for label, (_local, user) in DEMO_ACCOUNTS.items()}
            for label, user in users.items():
                login = self.accounts[label]
                found = await users_store.get_user_by_email(s, login.email)
                if found is None:
                    await tenants.add_user(s, user, password_hash=hash_password(login.password),
                                           totp_secret=login.totp_secret)
                else:
                    await users_store.set_password_hash(s, found.id, hash_password(login.password))
                    await users_store.enrol_totp(s, found.id, login.totp_secret, used_step=None)
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
        cloud: Cloud | None = getattr(self, "cloud", None)
        try:
            if cloud is not None:  # sessions end while the agent still runs and hears the close commands
                await cloud.end_sessions()
        finally:
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
