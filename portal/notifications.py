"""Telling people about access requests and decisions: e-mail through the configured SMTP
server and a signed JSON webhook (``NotifySettings``), both through the outbound transports of
``integrations`` (the same signature scheme as dealers' webhooks: docs/integrations.md).

A notice that cannot be delivered is logged (``notify.failed``) and never fails the request
that caused it: the decision itself is already stored and audited.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from integrations.errors import IntegrationError
from integrations.smtp import SmtpConfig, SmtpSecurity, SmtpTransport
from integrations.webhook import SIGNATURE_HEADER, WebhookTransport
from printgate.logs import get_logger
from printgate.settings import NotifySettings
from printgate.store.outbox import new_event_id

log = get_logger("portal.notifications")
__all__ = ["SIGNATURE_HEADER", "Notice", "Notifier"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One event to tell: ``event`` names it in the webhook, the rest is for people."""

    event: str
    subject: str
    text: str
    recipients: tuple[str, ...]
    data: dict[str, object] = field(default_factory=dict)


def _security(cfg: NotifySettings) -> SmtpSecurity:
    if cfg.smtp_security:
        return cfg.smtp_security
    return "starttls" if cfg.smtp_starttls else "none"


class Notifier:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._smtp = SmtpTransport(SmtpConfig(
            host=settings.smtp_host, port=settings.smtp_port, security=_security(settings),
            username=settings.smtp_username, password=settings.smtp_password.get_secret_value(),
            mail_from=settings.mail_from, timeout=settings.timeout_seconds, ca_file=settings.smtp_ca_file))

    async def send(self, notice: Notice) -> None:
        """E-mail the recipients and call the webhook, each as configured; failures are logged."""
        jobs = []
        if self.settings.smtp_host and notice.recipients:
            jobs.append(self._mail(notice))
        if self.settings.webhook_url:
            jobs.append(self._webhook(notice))
        await asyncio.gather(*jobs)

    async def _mail(self, notice: Notice) -> None:
        try:
            await self._smtp.send(recipients=notice.recipients, subject=notice.subject, text=notice.text)
        except IntegrationError as exc:
            log.warning("notify.failed", channel="email", notice=notice.event, server=self.settings.smtp_host,
                        error=exc.message[:300])
            return
        log.info("notify.sent", channel="email", notice=notice.event, recipients=len(notice.recipients))

    async def _webhook(self, notice: Notice) -> None:
        cfg = self.settings
        event_id = new_event_id()
        body = json.dumps({"id": event_id, "event": notice.event, "subject": notice.subject,
                           "text": notice.text, **notice.data}, sort_keys=True).encode()
        # the operator configured this address (not a dealer): a private address is allowed
        transport = WebhookTransport(timeout=cfg.timeout_seconds, allow_private=True)
        try:
            result = await transport.deliver(cfg.webhook_url, cfg.webhook_secret.get_secret_value().encode(),
                                             event_id=event_id, kind=notice.event, body=body)
        finally:
            await transport.aclose()
        if not result.ok:
            log.warning("notify.failed", channel="webhook", notice=notice.event, error=result.error[:300])
            return
        log.info("notify.sent", channel="webhook", notice=notice.event, status=result.status)
