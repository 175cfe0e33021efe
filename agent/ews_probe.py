"""Find a printer's embedded web server: which port, which scheme, which certificate.

Tried in order of the configured candidates (HTTPS first by default). For
HTTPS the certificate's SHA-256 fingerprint (DER) is returned so the cloud can
pin it on first discovery.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from agent.verify import tls_certificate_sha256
from printgate.errors import PrintgateError


@dataclass(frozen=True, slots=True)
class EwsEndpoint:
    port: int
    scheme: str
    tls_fingerprint: str | None = None


DEFAULT_CANDIDATES: tuple[tuple[int, str], ...] = ((443, "https"), (80, "http"))


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
                fingerprint = await tls_certificate_sha256(ip, port, timeout=timeout)
            except (OSError, TimeoutError, ssl.SSLError, PrintgateError):
                continue
            return EwsEndpoint(port, "https", fingerprint)
        return EwsEndpoint(port, scheme)
    return None
