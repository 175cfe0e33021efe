"""Find a printer's embedded web server: which port, which scheme, which certificate.

Tried in order of the configured candidates (HTTPS first by default). For
HTTPS the certificate's SHA-256 fingerprint (DER) is returned so the cloud can
pin it on first discovery.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EwsEndpoint:
    port: int
    scheme: str
    tls_fingerprint: str | None = None


DEFAULT_CANDIDATES: tuple[tuple[int, str], ...] = ((443, "https"), (80, "http"))


def _no_verify_context() -> ssl.SSLContext:
    # Printers use self-signed certificates: we only read the fingerprint here;
    # trust is decided by pinning in the cloud, never by this probe.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    return ctx


async def tls_fingerprint(ip: str, port: int, *, timeout: float = 2.0) -> str:
    """SHA-256 hex of the DER certificate the server at ``ip:port`` presents."""
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, ssl=_no_verify_context(), server_hostname=None),
        timeout,
    )
    try:
        ssl_obj = writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
        if not der:
            raise ConnectionError(f"{ip}:{port} presented no certificate")
        return hashlib.sha256(der).hexdigest()
    finally:
        writer.close()


async def _tcp_open(ip: str, port: int, timeout: float) -> bool:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except (OSError, TimeoutError):
        return False
    w.close()
    return True


async def find_ews(
    ip: str, candidates: Sequence[tuple[int, str]] = DEFAULT_CANDIDATES, *, timeout: float = 2.0
) -> EwsEndpoint | None:
    """The first candidate port that answers, with its scheme and certificate."""
    for port, scheme in candidates:
        if not await _tcp_open(ip, port, timeout):
            continue
        if scheme == "https":
            try:
                return EwsEndpoint(port, "https", await tls_fingerprint(ip, port, timeout=timeout))
            except (OSError, TimeoutError, ssl.SSLError, ConnectionError):
                continue
        return EwsEndpoint(port, scheme)
    return None
