"""Syslog to a collector: RFC 5424 messages, RFC 6587 octet-counting framing over TCP or TLS
(RFC 5425), with an ArcSight CEF payload (``format_cef``) for SIEMs that parse it.

The transport keeps one connection, opens it on first use and once more after a failure;
``send`` raises ``IntegrationError`` when the collector cannot be reached.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from integrations.addresses import resolve_public
from integrations.errors import EndpointInvalid, IntegrationError
from printgate import __version__
from printgate.logs import get_logger

log = get_logger("integrations.syslog")

FACILITY_SECURITY = 4  # security/authorization messages (RFC 5424 table 1)
FACILITY_LOG_AUDIT = 13
ENTERPRISE_ID = 32473  # IANA example PEN (RFC 5612)
CEF_VENDOR, CEF_PRODUCT, CEF_VERSION = "printgate", "printgate", __version__  # as audit.export writes them


def _token(value: str, limit: int) -> str:
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(value: str) -> str:
    return "".join(c for c in value if 33 <= ord(c) <= 126 and c not in '= ]"')[:32] or "x"


def format_rfc5424(*, severity: int, msgid: str, message: str, hostname: str,
                   app_name: str = "printgate", facility: int = FACILITY_SECURITY,
                   params: Mapping[str, str] | None = None, at: datetime | None = None,
                   sd_id: str = f"printgate@{ENTERPRISE_ID}") -> bytes:
    """``<PRI>1 TIMESTAMP HOST APP - MSGID [SD] BOM MSG`` (severity 0 emergency .. 7 debug)."""
    if not 0 <= severity <= 7:
        raise ValueError(f"syslog severity {severity} is not 0..7")
    pri = facility * 8 + severity
    ts = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sd = "-"
    if params:
        sd = f"[{sd_id} " + " ".join(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    header = f"<{pri}>1 {ts} {_token(hostname, 255)} {_token(app_name, 48)} - {_token(msgid, 32)} {sd} "
    return header.encode("utf-8") + b"\xef\xbb\xbf" + message.encode("utf-8")


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\\n")
            .replace("\n", "\\n").replace("\r", "\\r"))


def _cef_key(value: str) -> str:
    return "".join(c for c in value if c.isalnum() or c in "_.")[:63] or "x"


def format_cef(*, signature_id: str, name: str, severity: int,
               extensions: Mapping[str, str | int] | None = None) -> str:
    """``CEF:0|printgate|printgate|<version>|<id>|<name>|<severity 0-10>|k=v ...`` with CEF escaping
    (``\\|`` in the header, ``\\=`` and ``\\n`` in extension values)."""
    if not 0 <= severity <= 10:
        raise ValueError(f"CEF severity {severity} is not 0..10")
    head = "|".join(_cef_header(v) for v in (CEF_VENDOR, CEF_PRODUCT, CEF_VERSION, signature_id, name))
    ext = " ".join(f"{_cef_key(k)}={_cef_value(str(v))}" for k, v in (extensions or {}).items())
    return f"CEF:0|{head}|{severity}|{ext}"


def cef_to_syslog_severity(cef: int) -> int:
    """CEF 0-10 → syslog: 9-10 critical (2), 7-8 error (3), 4-6 warning (4), else notice (5)."""
    return 2 if cef >= 9 else 3 if cef >= 7 else 4 if cef >= 4 else 5


def frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    host: str
    port: int = 6514
    tls: bool = True
    ca_file: str | None = None  # verify the collector against this CA instead of the system roots
    server_name: str | None = None  # TLS name to check; default ``host``
    timeout: float = 10.0


class SyslogTransport:
    """One TCP/TLS connection to a collector, (re)opened on demand. Unless ``allow_private``, the
    collector's name is resolved (``integrations.addresses``), every address must be public and
    the connection goes to the checked address (TLS still verifies the name): a tenant's
    collector never reaches the cloud's own network."""

    def __init__(self, target: SyslogTarget, *, hostname: str | None = None, allow_private: bool = False) -> None:
        self.target = target
        self.allow_private = allow_private
        self.hostname = hostname or socket.gethostname()
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> asyncio.StreamWriter:
        t = self.target
        ctx = ssl.create_default_context(cafile=t.ca_file) if t.tls else None
        address = t.host
        if not self.allow_private:
            try:
                address = (await resolve_public(t.host, t.port, what="syslog", timeout=t.timeout))[0]
            except EndpointInvalid as exc:
                raise IntegrationError(f"refused syslog collector {t.host}:{t.port}: {exc.message}") from exc
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(address, t.port, ssl=ctx,
                                        server_hostname=(t.server_name or t.host) if ctx else None),
                t.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise IntegrationError(f"cannot reach syslog collector {t.host}:{t.port} "
                                   f"({'TLS' if t.tls else 'TCP'}): {type(exc).__name__}: {exc}") from exc
        log.info("integrations.syslog.connected", host=t.host, port=t.port, tls=t.tls)
        return writer

    async def send(self, messages: Sequence[bytes]) -> None:
        """Frame and write ``messages`` (from ``format_rfc5424``); one reconnect on failure."""
        payload = b"".join(frame(m) for m in messages)
        async with self._lock:
            for attempt in (1, 2):
                if self._writer is None:
                    self._writer = await self._connect()
                try:
                    self._writer.write(payload)
                    await asyncio.wait_for(self._writer.drain(), self.target.timeout)
                    return
                except (OSError, TimeoutError, ssl.SSLError) as exc:
                    await self._drop()
                    if attempt == 2:
                        raise IntegrationError(f"syslog collector {self.target.host}:{self.target.port} "
                                               f"went away: {type(exc).__name__}: {exc}") from exc

    async def send_cef(self, *, signature_id: str, name: str, severity: int,
                       extensions: Mapping[str, str | int] | None = None, at: datetime | None = None) -> None:
        """One CEF event as an RFC 5424 message (MSGID = ``signature_id``)."""
        cef = format_cef(signature_id=signature_id, name=name, severity=severity, extensions=extensions)
        await self.send([format_rfc5424(severity=cef_to_syslog_severity(severity), msgid=signature_id,
                                        message=cef, hostname=self.hostname, at=at)])

    async def _drop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), self.target.timeout)
            except (OSError, TimeoutError, ssl.SSLError):
                pass

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()
