"""Telling people about access requests and decisions: e-mail through the configured SMTP
server and a signed JSON webhook (``NotifySettings``).

A notice that cannot be delivered is logged (``notify.failed``) and never fails the request
that caused it: the decision itself is already stored and audited.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

import httpx

from printgate.logs import get_logger
from printgate.settings import NotifySettings

log = get_logger("portal.notifications")
SIGNATURE_HEADER = "X-Printgate-Signature"


@dataclass(frozen=True, slots=True)
class Notice:
    """One event to tell: ``event`` names it in the webhook, the rest is for people."""

    event: str
    subject: str
    text: str
    recipients: tuple[str, ...]
    data: dict[str, object] = field(default_factory=dict)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    async def send(self, notice: Notice) -> None:
        """E-mail the recipients and call the webhook, each as configured; failures are logged."""
        jobs = []
        if self.settings.smtp_host and notice.recipients:
            jobs.append(self._mail(notice))
        if self.settings.webhook_url:
            jobs.append(self._webhook(notice))
        await asyncio.gather(*jobs)

    async def _mail(self, notice: Notice) -> None:
        cfg = self.settings
        msg = EmailMessage()
        msg["From"] = cfg.mail_from
        msg["To"] = ", ".join(notice.recipients)
        msg["Subject"] = notice.subject
        msg["Message-ID"] = make_msgid(domain=cfg.mail_from.rpartition("@")[2] or "printgate")
        msg.set_content(notice.text)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._smtp_send, msg), cfg.timeout_seconds + 1)
        except (OSError, smtplib.SMTPException, TimeoutError) as exc:
            log.warning("notify.failed", channel="email", notice=notice.event, server=cfg.smtp_host,
                        error=f"{type(exc).__name__}: {exc}"[:300])
            return
        log.info("notify.sent", channel="email", notice=notice.event, recipients=len(notice.recipients))

    def _smtp_send(self, msg: EmailMessage) -> None:
        cfg = self.settings
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_seconds) as smtp:
            if cfg.smtp_starttls:
                smtp.starttls()
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password.get_secret_value())
            smtp.send_message(msg)

    async def _webhook(self, notice: Notice) -> None:
        cfg = self.settings
        body = json.dumps({"event": notice.event, "subject": notice.subject, "text": notice.text,
                           **notice.data}, sort_keys=True).encode()
        headers = {"content-type": "application/json"}
        if cfg.webhook_secret.get_secret_value():
            headers[SIGNATURE_HEADER] = signature(cfg.webhook_secret.get_secret_value(), body)
        try:
            async with httpx.AsyncClient(timeout=cfg.timeout_seconds) as client:
                r = await client.post(cfg.webhook_url, content=body, headers=headers)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("notify.failed", channel="webhook", notice=notice.event,
                        error=f"{type(exc).__name__}: {exc}"[:300])
            return
        log.info("notify.sent", channel="webhook", notice=notice.event, status=r.status_code)
