"""Handing alerts to channels through the ``integrations`` transports.

- ``email``: one message per alert to the target address (SMTP settings of the cloud);
- ``webhook``: the alert's JSON, signed ``X-Printgate-Signature: t=..,v1=..`` with the
  subscription's secret, event id = the alert id (receivers de-duplicate on it);
- ``syslog``: RFC 5424 over TCP or TLS (``tcp://host:port``, ``tls://host:port``) with a
  CEF line (``alerting.cef``).

``send`` raises ``DeliveryFailed`` with the cause; the follower retries with back-off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from alerting.cef import cef_severity, extension
from alerting.engine import from_payload
from alerting.errors import DeliveryFailed, SubscriptionInvalid
from alerting.rules import Category, Severity
from integrations.addresses import check_literal, resolve_public
from integrations.errors import EndpointInvalid, IntegrationError
from integrations.smtp import SmtpConfig, SmtpTransport
from integrations.syslog import SyslogTarget, SyslogTransport
from integrations.webhook import WebhookTransport, check_url

EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$|^[^@\s,;<>]+@localhost$")
SYSLOG = re.compile(r"^(tcp|tls)://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")
EVENT_KIND = "security.alert"
DEFAULT_MAX_SUBSCRIPTIONS = 20  # per tenant; [security_alerts] max_subscriptions_per_tenant


def parse_syslog_target(target: str, *, ca_file: str | None = None, allow_private: bool = False) -> SyslogTarget:
    """``tls://host:port`` or ``tcp://host:port``; unless ``allow_private``, an IP literal (or an
    obviously local name) must be a public address, as for webhooks (``integrations.addresses``)."""
    m = SYSLOG.match(target.strip())
    if m is None or not 0 < int(m.group(3)) < 65536:
        raise SubscriptionInvalid(f"syslog target {target!r}: use tls://host:port or tcp://host:port")
    if not allow_private:
        try:
            check_literal(m.group(2), what="syslog")
        except EndpointInvalid as exc:
            raise SubscriptionInvalid(f"syslog target {target!r}: {exc.message}") from None
    return SyslogTarget(host=m.group(2).strip("[]"), port=int(m.group(3)), tls=m.group(1) == "tls",
                        ca_file=ca_file)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A validated subscription request (what the portal and the CLI store)."""

    channel: str
    target: str
    categories: tuple[str, ...]
    min_severity: int
    secret: str | None


def validate(*, channel: str, target: str, categories: str | list[str] | tuple[str, ...] = (),
             min_severity: str = "medium", secret: str | None = None,
             allow_private_webhooks: bool = False) -> Subscription:
    """Check a subscription before it is stored; ``SubscriptionInvalid`` says what to fix."""
    channel = channel.strip().lower()
    target = target.strip()
    if isinstance(categories, str):
        categories = [c for c in (x.strip().lower() for x in categories.split(",")) if c]
    known = {c.value for c in Category}
    unknown = sorted(set(categories) - known)
    if unknown:
        raise SubscriptionInvalid(f"unknown categories {', '.join(unknown)}: use {', '.join(sorted(known))}")
    try:
        severity = int(Severity.parse(min_severity))
    except ValueError as exc:
        raise SubscriptionInvalid(str(exc)) from None
    if channel == "email":
        if not EMAIL.match(target) or len(target) > 320:
            raise SubscriptionInvalid(f"{target!r} is not an e-mail address")
        secret = None
    elif channel == "webhook":
        try:
            check_url(target, allow_private=allow_private_webhooks, resolve=False)
        except EndpointInvalid as exc:
            raise SubscriptionInvalid(f"webhook {target!r}: {exc.message}") from None
        if not secret or len(secret) < 16:
            raise SubscriptionInvalid("a webhook subscription needs a signing secret of at least 16 characters")
    elif channel == "syslog":  # the same public-address rule as webhooks (SSRF)
        parse_syslog_target(target, allow_private=allow_private_webhooks)
        secret = None
    else:
        raise SubscriptionInvalid(f"unknown channel {channel!r}: use email, webhook or syslog")
    return Subscription(channel, target, tuple(categories), severity, secret)


async def check_resolves_public(sub: Subscription, *, allow_private_webhooks: bool = False) -> None:
    """At save time, after ``validate``: a webhook's or syslog collector's host NAME that resolves
    must resolve to public addresses only (resolved on the dedicated, bounded resolver pool; it is checked
    again at every connect). ``SubscriptionInvalid`` says which address was refused."""
    if allow_private_webhooks or sub.channel == "email":
        return
    if sub.channel == "webhook":
        parts = urlsplit(sub.target)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    else:
        spec = parse_syslog_target(sub.target, allow_private=True)
        host, port = spec.host, spec.port
    try:
        await resolve_public(host, port, what=sub.channel)
    except EndpointInvalid as exc:
        if "non-public" not in exc.message:
            return  # no answer now (DNS set up later): refused at connect time if it stays so
        raise SubscriptionInvalid(f"{sub.channel} {sub.target!r}: {exc.message}") from None


def subscription_cap_message(cap: int, customer_id: str | None) -> str:
    """The refusal when a tenant already has ``cap`` subscriptions (portal and CLI say the same)."""
    whose = f"customer {customer_id}" if customer_id else "the dealer"
    return (f"{whose} already has the maximum of {cap} security-alert subscriptions "
            "([security_alerts] max_subscriptions_per_tenant); delete one first or send several "
            "contacts to one list address")


class Channels:
    """The transports, built once from the settings; ``send`` one alert to one target."""

    def __init__(self, *, smtp: SmtpConfig | None, allow_private_webhooks: bool = False,
                 syslog_ca_file: str | None = None, timeout: float = 10.0,
                 trusted_syslog: Collection[str] = ()) -> None:
        """``allow_private_webhooks`` also lets syslog targets reach private/loopback addresses
        (labs, tests); ``trusted_syslog`` are the operator's own collectors (``operator_syslog``),
        which may be on the cloud's internal network."""
        self._allow_private = allow_private_webhooks
        self._trusted_syslog = frozenset(trusted_syslog)
        self._smtp = SmtpTransport(smtp) if smtp is not None else None
        self._webhook = WebhookTransport(timeout=timeout, allow_private=allow_private_webhooks)
        self._syslog_ca = syslog_ca_file
        self._syslog: dict[str, SyslogTransport] = {}
        self._timeout = timeout

    async def send(self, channel: str, target: str, secret: str | None, payload: Mapping[str, Any]) -> None:
        alert = from_payload(dict(payload))
        try:
            if channel == "email":
                if self._smtp is None:
                    raise DeliveryFailed("no SMTP server is configured ([security_alerts] smtp_host)")
                severity = str(payload.get("severity", "")).upper()
                await self._smtp.send(
                    recipients=[target], subject=f"[printgate {severity}] {alert.title}",
                    text=_mail_text(payload), headers={"X-Printgate-Alert-Id": alert.id},
                )
            elif channel == "webhook":
                body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
                result = await self._webhook.deliver(target, (secret or "").encode(), event_id=alert.id,
                                                     kind=EVENT_KIND, body=body)
                if not result.ok:
                    raise DeliveryFailed(f"webhook {target}: {result.error}")
            elif channel == "syslog":
                transport = self._syslog.get(target)
                if transport is None:
                    private = self._allow_private or target in self._trusted_syslog
                    spec = parse_syslog_target(target, ca_file=self._syslog_ca, allow_private=private)
                    spec = SyslogTarget(spec.host, spec.port, spec.tls, spec.ca_file, None, self._timeout)
                    transport = self._syslog[target] = SyslogTransport(spec, hostname="printgate",
                                                                       allow_private=private)
                await transport.send_cef(signature_id=alert.rule, name=alert.title, severity=cef_severity(alert),
                                         extensions=extension(alert), at=alert.last_at)
            else:
                raise DeliveryFailed(f"unknown channel {channel!r}")
        except IntegrationError as exc:
            raise DeliveryFailed(exc.message) from exc
        except SubscriptionInvalid as exc:
            raise DeliveryFailed(exc.message) from exc

    async def aclose(self) -> None:
        await self._webhook.aclose()
        for t in self._syslog.values():
            await t.aclose()
        self._syslog.clear()


def _mail_text(p: Mapping[str, Any]) -> str:
    lines = [
        str(p.get("text", "")), "",
        f"Rule:      {p.get('rule')} ({p.get('category')}, severity {p.get('severity')})",
        f"Count:     {p.get('count')}",
        f"About:     {p.get('subject')}",
    ]
    if p.get("source_ip"):
        lines.append(f"Source:    {p.get('source_ip')}")
    lines += [
        f"Tenant:    dealer {p.get('dealer_id') or '-'}, customer {p.get('customer_id') or '-'}",
        f"Between:   {p.get('first_at')} and {p.get('last_at')}",
        f"Audit log: records {p.get('first_seq')} to {p.get('last_seq')}",
        f"Alert id:  {p.get('id')}",
        "",
        "The audit records behind this alert are in the portal (Audit) and in printgate audit export.",
    ]
    return "\n".join(lines)
