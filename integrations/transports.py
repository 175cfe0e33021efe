"""The outbound transports in one place (stable names for callers such as security alerting):

- ``WebhookTransport.deliver(url, secret, event_id=, kind=, body=)`` → ``DeliveryResult``
  (signed ``X-Printgate-Signature: t=..,v1=..``; ``verify_signature`` for receivers)
- ``SmtpTransport(SmtpConfig(...)).send(recipients=, subject=, text=)`` → Message-ID
- ``SyslogTransport(SyslogTarget(...)).send_cef(signature_id=, name=, severity=, extensions=)``
  (RFC 5424 over TCP/TLS, RFC 6587 framing, CEF payload)

Failures of SMTP and syslog raise ``IntegrationError``; webhooks report them in the result.
"""

from integrations.errors import (
    EndpointInvalid,
    IntegrationError,
    SignatureExpired,
    SignatureInvalid,
)
from integrations.smtp import SmtpConfig, SmtpSecurity, SmtpTransport
from integrations.syslog import SyslogTarget, SyslogTransport, format_cef, format_rfc5424
from integrations.webhook import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryResult,
    WebhookTransport,
    check_url,
    signature_header,
    verify_signature,
)

__all__ = [
    "EVENT_HEADER", "EVENT_ID_HEADER", "REPLAY_WINDOW_SECONDS", "SIGNATURE_HEADER", "TIMESTAMP_HEADER",
    "DeliveryResult", "EndpointInvalid", "IntegrationError", "SignatureExpired", "SignatureInvalid",
    "SmtpConfig", "SmtpSecurity", "SmtpTransport", "SyslogTarget", "SyslogTransport", "WebhookTransport",
    "check_url", "format_cef", "format_rfc5424", "signature_header", "verify_signature",
]
