"""Upstream TLS towards the device: accept its self-signed/expired certificate only if pinned.

The proxy runs with mitmproxy's CA verification off towards upstreams (devices
use self-signed certificates); this addon replaces it with a fingerprint pin
checked during the handshake, so a changed certificate never gets a request.
Old TLS versions are allowed towards the device only (set in ``server.py``).
"""

from __future__ import annotations

import hashlib

from mitmproxy import tls
from OpenSSL import SSL, crypto

from gateway.proxy.routes import RouteTable
from printgate.logs import get_logger

log = get_logger(__name__)


def der_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _normalise(fingerprint: str) -> str:
    return fingerprint.replace(":", "").strip().lower()


class UpstreamTls:
    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes

    def tls_start_server(self, data: tls.TlsData) -> None:
        conn = data.ssl_conn
        if conn is None:
            return
        pins = self._pins_for(data)

        def verify(_c: SSL.Connection, cert: crypto.X509, _errno: int, depth: int, _ok: int) -> bool:
            if depth > 0:
                return True  # only the leaf is pinned
            der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
            ok = der_fingerprint(der) in pins
            if not ok:
                log.warning("dwa.upstream_cert_mismatch", address=str(data.context.server.address), got=der_fingerprint(der))
            return ok

        conn.set_verify(SSL.VERIFY_PEER, verify)

    def _pins_for(self, data: tls.TlsData) -> set[str]:
        """Pins of the live sessions whose tunnel ends at this upstream address."""
        address = data.context.server.address
        return {
            _normalise(r.pinned_fingerprint)
            for r in self._routes.live_routes()
            if r.pinned_fingerprint and (r.upstream_host, r.upstream_port) == address
        }
