"""Settings: built once at start-up (env ``PRINTGATE_*`` or a TOML file), passed down.

Nested sections use ``__`` in environment names, e.g.
``PRINTGATE_GATEWAY__DWA_DOMAIN=dwa.example.com``. No module reads
``os.environ`` itself; the composition root builds a ``Settings`` and hands it
(or the section a component needs) to each constructor.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from printgate import agent_settings

if TYPE_CHECKING:
    from printgate.agent_settings import AgentSettings
else:
    # the agent's section is a plain dataclass, loaded without pydantic by `printgate agent run`
    # (printgate.agent_settings); here pydantic's flavour of it -- a subclass, so every instance
    # is an agent_settings.AgentSettings -- validated from the same annotations, with nested
    # environment names (PRINTGATE_AGENT__TARGETS) and unknown keys refused as load_agent_config does
    AgentSettings = pydantic_dataclass(agent_settings.AgentSettings, config=ConfigDict(extra="forbid"))


class NotifySettings(BaseModel):
    """Who hears about access requests and decisions: e-mail through an SMTP server (customer
    administrators when a technician asks, the technician when they decide) and a webhook
    (JSON POST, signed ``X-Printgate-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of
    "<t>." + body>`` with ``webhook_secret``; docs/integrations.md). Empty ``smtp_host`` /
    ``webhook_url``: not sent."""

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False  # the same as smtp_security = "starttls"
    # "none" (port 25, internal relays), "starttls" (587) or "tls" (465); empty: from smtp_starttls
    smtp_security: Literal["", "none", "starttls", "tls"] = ""
    smtp_ca_file: str | None = None  # verify the SMTP server against this CA instead of the system roots
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    mail_from: str = "printgate@localhost"
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    timeout_seconds: float = Field(default=10.0, gt=0)


class IntegrationSettings(BaseModel):
    """Outbound webhooks to dealers' endpoints (the outbox dispatcher; docs/integrations.md)."""

    enabled: bool = True
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    max_attempts: int = Field(default=8, ge=1, le=50)  # then a dead letter (portal: Integrations)
    retry_initial_seconds: float = Field(default=5.0, gt=0)  # doubled per attempt, +/- jitter
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    retry_jitter: float = Field(default=0.2, ge=0, le=1)
    per_endpoint_concurrency: int = Field(default=2, ge=1, le=32)  # a slow receiver holds only these
    max_in_flight: int = Field(default=64, ge=1, le=1024)
    # one dealer's calls in flight at most (well below max_in_flight: its dead receivers cannot
    # hold up other dealers); dealers take turns
    per_dealer_concurrency: int = Field(default=16, ge=1, le=1024)
    breaker_failures: int = Field(default=5, ge=1, le=1000)  # consecutive failures: endpoint backed off
    breaker_seconds: float = Field(default=60.0, gt=0, le=3600)  # first back-off, doubled while failing
    max_endpoints_per_dealer: int = Field(default=20, ge=1, le=1000)
    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    retention_days: int = Field(default=7, ge=1)  # delivered events are forgotten after this
    # dealers' endpoints must resolve to public addresses; True only for a lab or tests
    allow_private_endpoints: bool = False


class PortalSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8400
    public_url: str = "http://127.0.0.1:8400"
    secret_key: SecretStr = SecretStr("change-me-in-production-please")  # `serve` refuses this placeholder
    secret_key_file: Path | None = None  # with no secret_key: read from here, made (random, 0600) on first start
    # /metrics: with a token, only `Authorization: Bearer <token>` is answered; without one, only
    # direct loopback clients are (no proxy in between) -- see docs/operations.md
    metrics_token: SecretStr | None = None
    cookie_secure: bool = False
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    mfa_fresh_minutes: int = 15
    agent_enrol_url: str = ""  # gateway enrolment address host:port shown on /agents (set by the composition root)
    agent_channel_url: str = ""  # agent channel address host:port shown on /agents (set by the composition root)
    # the load balancers/reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the portal believes
    # (addresses or networks, "*" for any): the technician's address they pass on is the one policy
    # source-IP rules, audit and sign-in alerts see. From any other peer the headers are ignored.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    notify: NotifySettings = Field(default_factory=NotifySettings)  # env PRINTGATE_PORTAL__NOTIFY__SMTP_HOST ...


class GatewaySettings(BaseModel):
    relay_host: str = "127.0.0.1"
    relay_port: int = 8422
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 8480
    # what browsers see: "https" serves session hosts over TLS with proxy_certs or, when
    # none are given, a certificate per host from the gateway's own CA (<data_dir>/dwa-ca)
    proxy_scheme: Literal["http", "https"] = "http"
    proxy_public_port: int | None = None  # port in session URLs (a load balancer's 443); default: proxy_port
    proxy_certs: list[str] = Field(default_factory=list)  # "*.dwa.example.com=/etc/printgate/dwa.pem" (cert + key)
    proxy_workers: int = 1  # >1: the DWA proxy runs as that many processes on one port (gateway.proxy.workers)
    dwa_domain: str = "dwa.localhost"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 8443  # agent channel (mutual TLS)
    enrol_port: int = 8444  # agent enrolment (server TLS + one-time token)
    firewall: Literal["inprocess", "nftables"] = "inprocess"
    firewall_netns: str | None = None  # nftables: manage the table in this network namespace
    session_ttl_seconds: int = 1200  # a session's first length; "More time" adds 10 min up to the policy's maximum
    session_idle_seconds: int = 600
    # user-supplied data a technician's browser may send towards a device (query, form fields,
    # JSON/text bodies, script-set headers, new cookies, WebSocket frames); per-vendor overrides
    # in gateway/proxy/vendor_endpoints.toml ([[profile]]); docs/transfer-blocking.md
    dwa_request_budget_bytes: int = Field(default=16 * 1024, gt=0)
    dwa_session_budget_bytes: int = Field(default=256 * 1024, gt=0)
    launch_token_ttl_seconds: int = 60
    # browser connections to the proxy (gateway/proxy/connection_limits.py, docs/transfer-blocking.md)
    proxy_header_timeout_seconds: float = Field(default=10.0, gt=0)  # first request's headers (slowloris)
    proxy_idle_timeout_seconds: float = Field(default=60.0, gt=0)  # between requests on one connection
    proxy_request_timeout_seconds: float = Field(default=120.0, gt=0)  # headers to answer
    proxy_max_connections_per_source: int = Field(default=256, ge=1)  # raise for a large office NAT
    proxy_max_refused_bodies_per_source: int = Field(default=30, ge=1)  # per 10 s, then 30 s refused
    agent_loss_grace_seconds: float = 10.0  # an agent offline this long loses its sessions
    relay_keepalive_seconds: float = 10.0  # a silently lost agent connection is dropped after ~3x this
    # relay admission: SSH handshakes in progress at once (all, per source address), and new
    # connections per source per window that do not authenticate as a session's agent
    relay_max_unauthenticated: int = Field(default=64, ge=1)
    relay_max_unauthenticated_per_source: int = Field(default=16, ge=1)
    relay_connections_per_source: int = Field(default=20, ge=1)
    relay_source_window_seconds: float = Field(default=10.0, gt=0)
    data_dir: Path = Path("var/gateway")
    audit_checkpoint_seconds: float = 60.0  # sign a Merkle tree head at least this often
    audit_witness_silence_seconds: float = Field(default=1800.0, gt=0)  # then audit.witness.failed (unreachable)
    # the credential vault's master key (docs/credential-injection.md): created 0600 on first use;
    # default <data_dir>/vault-master.key
    vault_master_key_file: Path | None = None
    # the shared key directory (docs/scale-out.md "Keys"): audit signing key, agent CA, command-signing
    # key, relay SSH CA and host key, session CA, keys.json; default the data directory
    key_dir: Path | None = None
    # scale-out (docs/scale-out.md): this process's name in the node registry; default
    # <hostname>-<hash of the data dir>. Its lease is renewed every node_renew_seconds; a node
    # silent for node_lease_seconds is taken over by another node (its sessions ended, audited)
    node_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    node_lease_seconds: float = Field(default=15.0, ge=1.0, le=3600.0)
    node_renew_seconds: float = Field(default=3.0, gt=0.0, le=600.0)
    # a session opened on one node for an agent whose stream another node holds is set up by that
    # node (docs/scale-out.md "Sessions through any node"); how long to wait for its answer
    node_command_timeout_seconds: float = Field(default=20.0, gt=0.0, le=300.0)
    # several nodes behind a load balancer: session hosts name the node (s-<session>-<node label>.<dwa
    # domain>) and the balancer routes them by the label (printgate nodes haproxy); off: s-<session>.<domain>
    host_routing: bool = False
    # SIGTERM (rolling upgrade): new sessions refused, agents sent elsewhere, live sessions get this long
    # to end before they are ended ("gateway maintenance"), audited; then the process exits 0
    drain_grace_seconds: float = Field(default=60.0, ge=0.0, le=86400.0)

    @property
    def key_directory(self) -> Path:
        return self.key_dir or self.data_dir

    @property
    def vault_master_key_path(self) -> Path:
        return self.vault_master_key_file or self.data_dir / "vault-master.key"

    @model_validator(mode="after")
    def _renew_within_lease(self) -> GatewaySettings:
        if self.node_renew_seconds * 2 > self.node_lease_seconds:
            raise ValueError(f"gateway.node_renew_seconds ({self.node_renew_seconds}) must be at most half of "
                             f"gateway.node_lease_seconds ({self.node_lease_seconds}): a late renewal would "
                             "let another node take this one over")
        return self

    @property
    def resolved_node_id(self) -> str:
        """``node_id`` or ``<hostname>-<8 hex of the resolved data dir>`` (stable across restarts)."""
        if self.node_id:
            return self.node_id
        import hashlib
        import socket

        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:8]
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:100] or "node"
        return f"{host}-{digest}"


class ChannelSettings(BaseModel):
    """The agent channel beyond gRPC: MQTT through a broker (docs/agent-channel.md), refusal audit.

    ``mqtt_url`` ("mqtts://broker:8883" or "wss://broker/mqtt"; env PRINTGATE_CHANNEL__MQTT_URL)
    makes MQTT a second command path: the gateway bridges to the broker and tells agents at
    enrolment. The bridge's client certificate (CN printgate-gateway) and the CA the broker's
    server certificate is checked against default to ones from the agent CA (written to
    <gateway.data_dir>/mqtt). The gateway writes the CRL of revoked agent certificates to
    ``mqtt_crl_file`` (the broker's ``crlfile``) and sends SIGHUP to the pid in
    ``mqtt_broker_pid_file`` after each change (or let deploy/mosquitto/printgate-mqtt-crl.path do it).
    """

    mqtt_url: str = ""
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_crl_file: Path | None = None  # default <gateway.data_dir>/agent-ca/agent-ca.crl
    mqtt_broker_pid_file: Path | None = None
    denial_audit_window_seconds: float = Field(default=60.0, gt=0)  # refused calls: one record per agent+reason
    # behind a load balancer (docs/scale-out.md "Deployment"): the names and addresses agents use to
    # reach the cloud there. public_names are added to the gRPC/enrolment server certificate (made at
    # every start, so a changed list takes effect at the next start); public_address (agent channel)
    # and public_enrol_address (enrolment), host:port, are what the portal's enrolment page and the
    # `printgate serve` hints show instead of this node's own grpc_host/relay_host addresses.
    public_names: list[str] = Field(default_factory=list)
    public_address: str = ""
    public_enrol_address: str = ""

    @property
    def certificate_names(self) -> list[str]:
        """public_names plus the hosts of public_address and public_enrol_address, in order, once each."""
        names = [*self.public_names, *(a.rpartition(":")[0].strip("[]") for a in
                                       (self.public_address, self.public_enrol_address) if a)]
        return list(dict.fromkeys(n for n in names if n))


class SecurityAlertSettings(BaseModel):
    """Real-time security alerting (``alerting/``, docs/security-alerting.md): the follower of
    the audit table, its delivery retries, the SMTP server for e-mail alerts, and the
    operators' targets for platform alerts (about no tenant). Tenants subscribe in the
    portal or with ``printgate admin security-alerts``."""

    enabled: bool = True
    poll_seconds: float = Field(default=1.0, gt=0)
    batch: int = Field(default=500, gt=0)
    max_attempts: int = Field(default=8, gt=0)  # then the delivery is kept as dead
    retry_base_seconds: float = Field(default=5.0, gt=0)  # doubled per attempt, at most 1 h
    delivery_concurrency: int = Field(default=8, gt=0, le=256)  # targets sent to at once
    delivery_timeout_seconds: float = Field(default=30.0, gt=0)  # one attempt to one target
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_ca_file: str | None = None
    mail_from: str = "printgate-security@localhost"
    syslog_ca_file: str | None = None  # CA for tls:// syslog targets (default: the system roots)
    allow_private_webhooks: bool = False  # webhook and syslog targets on private/loopback addresses (labs, tests)
    max_subscriptions_per_tenant: int = Field(default=20, ge=1, le=1000)  # per dealer, and per customer
    operator_emails: list[str] = Field(default_factory=list)
    operator_webhooks: list[str] = Field(default_factory=list)  # URLs, signed with operator_webhook_secret
    operator_webhook_secret: SecretStr = SecretStr("")
    operator_syslog: list[str] = Field(default_factory=list)  # "tls://host:6514" or "tcp://host:514"


class Settings(BaseSettings):
    """The whole configuration of a printgate process."""

    model_config = SettingsConfigDict(
        env_prefix="PRINTGATE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    database_url: str = "sqlite+aiosqlite:///var/printgate.db"
    # `serve` waits this long for a server database at start-up (back-off, one line per attempt)
    database_start_wait_seconds: float = Field(default=120.0, ge=0)
    log_level: str = "info"
    log_json: bool = True
    portal: PortalSettings = Field(default_factory=PortalSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    channel: ChannelSettings = Field(default_factory=ChannelSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    integrations: IntegrationSettings = Field(default_factory=IntegrationSettings)
    security_alerts: SecurityAlertSettings = Field(default_factory=SecurityAlertSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = init_settings.init_kwargs.pop("_toml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, toml_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides > environment > TOML file > defaults."""
        if toml_file is not None and not Path(toml_file).is_file():
            from printgate.errors import ConfigError

            raise ConfigError(f"configuration file {toml_file} does not exist")
        return cls(_toml_file=toml_file, **overrides)  # type: ignore[call-arg]
