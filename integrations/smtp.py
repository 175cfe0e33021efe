"""E-mail over SMTP: plain (port 25, internal relays only), STARTTLS (587) or implicit TLS
(465), with optional authentication; the server's certificate is verified (system roots or
``ca_file``) whenever TLS is used."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from integrations.errors import IntegrationError
from printgate.logs import get_logger

log = get_logger("integrations.smtp")

SmtpSecurity = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    security: SmtpSecurity = "none"
    username: str = ""
    password: str = ""
    mail_from: str = "printgate@localhost"
    timeout: float = 10.0
    ca_file: str | None = None  # verify the server against this CA instead of the system roots

    def __repr__(self) -> str:  # never print the password
        return (f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r}, "
                f"username={self.username!r}, mail_from={self.mail_from!r})")


def _tls_context(cfg: SmtpConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cfg.ca_file)


class SmtpTransport:
    """Sends one message per call (a new connection each time, in a worker thread)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def build(self, *, recipients: Sequence[str], subject: str, text: str,
              headers: Mapping[str, str] | None = None) -> EmailMessage:
        cfg = self.config
        msg = EmailMessage()
        msg["From"] = cfg.mail_from
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject.replace("\r", " ").replace("\n", " ")
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=cfg.mail_from.rpartition("@")[2] or "printgate")
        for name, value in (headers or {}).items():
            msg[name] = value.replace("\r", " ").replace("\n", " ")
        msg.set_content(text)
        return msg

    async def send(self, *, recipients: Sequence[str], subject: str, text: str,
                   headers: Mapping[str, str] | None = None) -> str:
        """Send; return the Message-ID. Raises ``IntegrationError`` naming the server and cause."""
        if not recipients:
            raise IntegrationError("e-mail has no recipients")
        msg = self.build(recipients=recipients, subject=subject, text=text, headers=headers)
        await self.send_message(msg)
        return str(msg["Message-ID"])

    async def send_message(self, msg: EmailMessage) -> None:
        cfg = self.config
        try:
            await asyncio.wait_for(asyncio.to_thread(self._send_blocking, msg), cfg.timeout + 1)
        except (OSError, smtplib.SMTPException, TimeoutError, ssl.SSLError) as exc:
            raise IntegrationError(f"SMTP server {cfg.host}:{cfg.port} ({cfg.security}) did not take the "
                                   f"message: {type(exc).__name__}: {exc}"[:400]) from exc

    def _send_blocking(self, msg: EmailMessage) -> None:
        cfg = self.config
        smtp: smtplib.SMTP
        if cfg.security == "tls":
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=_tls_context(cfg))
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        with smtp:
            if cfg.security == "starttls":
                smtp.starttls(context=_tls_context(cfg))
            if cfg.username:
                smtp.login(cfg.username, cfg.password)
            smtp.send_message(msg)
