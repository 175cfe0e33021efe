"""Forwarding audit records as RFC 5424 syslog over TCP (RFC 6587 octet
counting) or TLS (RFC 5425) to a collector.

Message: ``<PRI>1 TIMESTAMP HOSTNAME printgate - TYPE [printgate@32473 seq=..
hash=.. outcome=.. dealer=.. customer=.. device=.. session=..] details-json``
with facility 13 (log audit) and a severity derived from the outcome.
Personal values are sent only when ``include_personal`` is set.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Sequence

from audit.checkpoint import Checkpoint
from audit.errors import SyslogError
from printgate.domain import AuditRecord
from printgate.lifecycle import Service
from printgate.logs import get_logger

log = get_logger("audit.syslog")

FACILITY_LOG_AUDIT = 13
ENTERPRISE_ID = 32473  # IANA example PEN (RFC 5612)
_SEVERITY = {"success": 6, "failure": 4, "denied": 5, "blocked": 5}


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"


def format_rfc5424(rec: AuditRecord, *, hostname: str, app_name: str = "printgate",
                   include_personal: bool = False) -> bytes:
    pri = FACILITY_LOG_AUDIT * 8 + _SEVERITY.get(rec.outcome, 6)
    ts = rec.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params: list[tuple[str, str]] = [("seq", str(rec.seq)), ("hash", rec.hash), ("outcome", rec.outcome)]
    for name, value in (("dealer", rec.dealer_id), ("customer", rec.customer_id),
                        ("device", rec.device_id), ("session", rec.session_id)):
        if value is not None:
            params.append((name, value))
    if include_personal:
        for name, value in (("actor", rec.actor), ("src", rec.source_ip)):
            if value is not None:
                params.append((name, value))
    sd = f"[printgate@{ENTERPRISE_ID} " + " ".join(f'{k}="{_sd_value(v)}"' for k, v in params) + "]"
    msg = json.dumps(rec.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    header = (f"<{pri}>1 {ts} {_header_token(hostname, 255)} {_header_token(app_name, 48)} - "
              f"{_header_token(rec.type, 32)} {sd} ")
    return header.encode("utf-8") + b"\xef\xbb\xbf" + msg.encode("utf-8")


def format_checkpoint(cp: Checkpoint, *, hostname: str, app_name: str = "printgate") -> bytes:
    """A signed tree head as a syslog message (MSGID ``audit.checkpoint``), so a
    collector holds checkpoints to verify the log against later (``--anchor``)."""
    pri = FACILITY_LOG_AUDIT * 8 + 6
    params = " ".join(f'{k}="{_sd_value(str(v))}"' for k, v in sorted(cp.to_json().items()))
    header = (f"<{pri}>1 {cp.at} {_header_token(hostname, 255)} {_header_token(app_name, 48)} - "
              f"audit.checkpoint [printgate-checkpoint@{ENTERPRISE_ID} {params}]")
    return header.encode("utf-8")


def frame(message: bytes) -> bytes:
    """RFC 6587 octet-counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


class SyslogForwarder(Service):
    """One TCP or TLS connection to a collector; ``async with`` or start()/aclose()."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 hostname: str | None = None, include_personal: bool = False,
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.hostname = hostname or socket.gethostname()
        self.include_personal = include_personal
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        try:
            _, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.tls,
                                        server_hostname=self.host if self.tls else None),
                self.timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise SyslogError(f"cannot reach syslog collector {self.host}:{self.port}: {exc}") from exc
        log.info("syslog.connected", host=self.host, port=self.port, tls=self.tls is not None)

    async def send(self, records: Sequence[AuditRecord]) -> None:
        await self.send_messages([format_rfc5424(r, hostname=self.hostname,
                                                 include_personal=self.include_personal)
                                  for r in records])

    async def send_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        await self.send_messages([format_checkpoint(cp, hostname=self.hostname) for cp in checkpoints])

    async def send_messages(self, messages: Sequence[bytes]) -> None:
        if self._writer is None:
            raise SyslogError("syslog forwarder not started")
        payload = b"".join(frame(m) for m in messages)
        try:
            self._writer.write(payload)
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise SyslogError(f"syslog collector {self.host}:{self.port} went away: {exc}") from exc

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await asyncio.wait_for(self._writer.wait_closed(), self.timeout)
            except (OSError, TimeoutError, ssl.SSLError):
                pass
            self._writer = None

