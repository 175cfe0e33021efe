"""Detection rules over audit records: pure, no I/O, no clock.

Each rule looks at one ``AuditRecord`` and says whether it is an occurrence of
a security-relevant situation (a ``Hit``) and under which key it is counted
(per user, per source address, per agent, per device). Thresholds, windows,
de-duplication and rate limiting are the engine's job (``alerting.engine``).

The event types are the ones the parts really write (see
``printgate/domain/event_types.py`` and the modules named beside each rule).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from printgate.domain import AuditRecord, event_types


class Severity(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}: use one of {names}") from None


class Category(enum.StrEnum):
    SIGN_IN = "sign_in"  # failed sign-in bursts, TOTP replays
    TRANSFER = "transfer"  # blocked uploads/downloads through the proxy
    DEVICE = "device"  # a printer that is not the one expected
    CHANNEL = "channel"  # relay and agent-channel refusals, revoked agents
    CREDENTIALS = "credentials"  # break-glass reveals of device credentials
    PLATFORM = "platform"  # audit checkpoint/witness failures, audit outages (operators)


FAILED_SIGN_IN_TYPES = frozenset({event_types.AUTH_LOGIN, event_types.AUTH_MFA, event_types.AUTH_SSO})
FAILED_OUTCOMES = frozenset({"failure", "denied"})
# producers: gateway/proxy/addons/audit_requests.py, websocket_guard.py
TRANSFER_BLOCKED = event_types.DWA_TRANSFER_BLOCKED
# producers: gateway/agent_events.py (command result, inventory)
DEVICE_IDENTITY_TYPES = frozenset({event_types.DEVICE_IDENTITY_MISMATCH, event_types.DEVICE_IDENTITY_CHANGED})
# producers: gateway/relay/relay.py (aggregated per source and window)
RELAY_REFUSAL_TYPES = frozenset({event_types.RELAY_CONNECTIONS_REFUSED, event_types.RELAY_AUTH_FAILED, event_types.RELAY_REQUEST_REFUSED})
# producers: gateway/channel/denials.py (aggregated), gateway/channel/grpc_server.py
CHANNEL_REFUSAL_TYPES = frozenset({event_types.AGENT_RPC_DENIED, event_types.AGENT_MQTT_IGNORED, event_types.AGENT_RELAY_CHANNEL_REFUSED})
REVOKED_AGENT_REASON = "agent_revoked"
# producers: gateway/channel/grpc_server.py (one node, aggregated), gateway/channel/takeover.py (across nodes)
STREAM_TAKEN_OVER = event_types.AGENT_STREAM_TAKEN_OVER
# producer: portal/routers/device_credentials.py (break-glass reveal)
CREDENTIAL_REVEALED = event_types.VAULT_CREDENTIAL_REVEALED
# Platform integrity. producers: audit/checkpoint_timer.py (checkpoint failed, witness silent),
# portal/routers/audit_witness.py (a witness's refusal, a split view), audit/metered_log.py
# (audit.recovered after an outage); "audit.outage" stays reserved (an outage cannot be written
# while it lasts) (docs/security-alerting.md).
PLATFORM_TYPES = frozenset({
    event_types.AUDIT_CHECKPOINT_FAILED, event_types.AUDIT_WITNESS_FAILED, event_types.AUDIT_OUTAGE, event_types.AUDIT_RECOVERED,
})


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule: ``name`` (stable id, in CEF Signature ID), its category and severity,
    ``threshold`` occurrences within ``window_s`` seconds (1 = every occurrence), and the
    window during which further alerts of the same (rule, tenant, key) are folded."""

    name: str
    title: str
    category: Category
    severity: Severity
    threshold: int = 1
    window_s: int = 300
    quiet_s: int = 600  # de-duplication window: one alert, then a summary per window


@dataclass(frozen=True, slots=True)
class Hit:
    """One occurrence (or ``count`` aggregated occurrences) of ``rule`` under ``key``."""

    rule: Rule
    key: str
    count: int
    record: AuditRecord
    subject: str  # what it is about, for people: a user, an address, an agent, a device

    @property
    def dealer_id(self) -> str | None:
        return self.record.dealer_id

    @property
    def customer_id(self) -> str | None:
        return self.record.customer_id


SIGN_IN_BY_SOURCE = Rule("signin.burst.source", "Burst of failed sign-ins from one address",
                         Category.SIGN_IN, Severity.HIGH, threshold=10, window_s=300)
SIGN_IN_BY_USER = Rule("signin.burst.user", "Burst of failed sign-ins for one account",
                       Category.SIGN_IN, Severity.HIGH, threshold=10, window_s=300)
TOTP_REPLAY = Rule("signin.totp_replay", "A second-factor code was used twice",
                   Category.SIGN_IN, Severity.HIGH)
BLOCKED_TRANSFER = Rule("transfer.blocked", "A transfer through the device proxy was blocked",
                        Category.TRANSFER, Severity.MEDIUM)
DEVICE_IDENTITY = Rule("device.identity", "A printer did not match its recorded identity",
                       Category.DEVICE, Severity.HIGH)
RELAY_REFUSED = Rule("relay.refused", "The SSH relay refused connections",
                     Category.CHANNEL, Severity.MEDIUM)
CHANNEL_REFUSED = Rule("channel.refused", "The agent channel refused calls",
                       Category.CHANNEL, Severity.MEDIUM)
REVOKED_AGENT = Rule("agent.revoked_used", "A revoked agent tried to connect",
                     Category.CHANNEL, Severity.CRITICAL)
AGENT_CERT_SHARED = Rule("agent.certificate_shared", "One agent certificate was connected twice at once",
                         Category.CHANNEL, Severity.HIGH)
CREDENTIAL_REVEAL = Rule("credentials.revealed", "A device credential was revealed (break-glass)",
                         Category.CREDENTIALS, Severity.HIGH)
PLATFORM_INTEGRITY = Rule("platform.audit", "Audit trail integrity or availability problem",
                          Category.PLATFORM, Severity.CRITICAL)

RULES: tuple[Rule, ...] = (SIGN_IN_BY_SOURCE, SIGN_IN_BY_USER, TOTP_REPLAY, BLOCKED_TRANSFER,
                           DEVICE_IDENTITY, RELAY_REFUSED, CHANNEL_REFUSED, REVOKED_AGENT,
                           AGENT_CERT_SHARED, CREDENTIAL_REVEAL, PLATFORM_INTEGRITY)


def _count(r: AuditRecord, *names: str) -> int:
    """How many occurrences an aggregated record stands for (at least 1)."""
    for name in names:
        value = r.details.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def failed_sign_in(r: AuditRecord) -> bool:
    if r.type not in FAILED_SIGN_IN_TYPES or r.outcome not in FAILED_OUTCOMES:
        return False
    return not (r.type == event_types.AUTH_MFA and r.details.get("reason") == "replayed")


def _totp_replay(r: AuditRecord) -> list[Hit]:
    if r.type == event_types.AUTH_MFA and r.outcome in FAILED_OUTCOMES and r.details.get("reason") == "replayed":
        who = r.actor or "(unknown account)"
        return [Hit(TOTP_REPLAY, f"user:{who}", 1, r, who)]
    return []


def _blocked(r: AuditRecord) -> list[Hit]:
    if r.type != TRANSFER_BLOCKED:
        return []
    key = r.session_id or r.device_id or r.source_ip or "-"
    return [Hit(BLOCKED_TRANSFER, f"session:{key}", 1, r, f"session {key}")]


def _device(r: AuditRecord) -> list[Hit]:
    if r.type not in DEVICE_IDENTITY_TYPES:
        return []
    key = r.device_id or r.session_id or "-"
    return [Hit(DEVICE_IDENTITY, f"device:{key}", 1, r, f"device {key}")]


def _relay(r: AuditRecord) -> list[Hit]:
    if r.type not in RELAY_REFUSAL_TYPES:
        return []
    # one key for every source: a spray from 400 addresses is one alert and a summary per quiet
    # window (the addresses are the alert's samples, "from: ..."), not one alert per address
    return [Hit(RELAY_REFUSED, RELAY_KEY, _count(r, "refused", "count"), r, RELAY_SUBJECT)]


RELAY_KEY = "relay:all-sources"
RELAY_SUBJECT = "the SSH relay (all source addresses)"


def _channel(r: AuditRecord) -> list[Hit]:
    if r.type not in CHANNEL_REFUSAL_TYPES:
        return []
    agent = _text(r.details.get("agent_id")) or (r.actor or "").removeprefix("agent:")
    if r.details.get("reason") == REVOKED_AGENT_REASON:
        return [Hit(REVOKED_AGENT, f"agent:{agent or '-'}", _count(r, "count"), r, f"agent {agent or '?'}")]
    key = f"agent:{agent}" if agent else f"source:{r.source_ip or '-'}"
    subject = f"agent {agent}" if agent else (r.source_ip or "(unknown source)")
    return [Hit(CHANNEL_REFUSED, key, _count(r, "count"), r, subject)]


def _stream_taken_over(r: AuditRecord) -> list[Hit]:
    """A second connection with one agent's certificate took its command stream over (on one node or
    from another node): the key may be copied (aggregated records: ``details.count``)."""
    if r.type != STREAM_TAKEN_OVER:
        return []
    agent = _text(r.details.get("agent_id")) or (r.actor or "").removeprefix("agent:")
    return [Hit(AGENT_CERT_SHARED, f"agent:{agent or '-'}", _count(r, "count"), r, f"agent {agent or '?'}")]


def _reveal(r: AuditRecord) -> list[Hit]:
    if r.type != CREDENTIAL_REVEALED:
        return []
    who = r.actor or "(unknown user)"
    return [Hit(CREDENTIAL_REVEAL, f"device:{r.device_id or '-'}", 1, r, f"{who} on device {r.device_id}")]


def _platform(r: AuditRecord) -> list[Hit]:
    if r.type not in PLATFORM_TYPES:
        return []
    return [Hit(PLATFORM_INTEGRITY, f"type:{r.type}", 1, r, r.type)]


SIMPLE: tuple[Callable[[AuditRecord], list[Hit]], ...] = (
    _totp_replay, _blocked, _device, _relay, _channel, _stream_taken_over, _reveal, _platform,
)


def simple_hits(r: AuditRecord) -> list[Hit]:
    """Hits of every rule that needs no counting across records (threshold 1)."""
    return [h for rule in SIMPLE for h in rule(r)]


def sign_in_hits(r: AuditRecord) -> list[Hit]:
    """A failed sign-in counts once per source and once per account (the engine applies the
    thresholds)."""
    if not failed_sign_in(r):
        return []
    hits = []
    if r.source_ip:
        hits.append(Hit(SIGN_IN_BY_SOURCE, f"source:{r.source_ip}", 1, r, r.source_ip))
    if r.actor:
        hits.append(Hit(SIGN_IN_BY_USER, f"user:{r.actor}", 1, r, r.actor))
    return hits


def rule_named(name: str) -> Rule:
    for rule in RULES:
        if rule.name == name:
            return rule
    raise KeyError(name)
