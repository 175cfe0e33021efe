"""UpstreamTls alone: an in-memory TLS handshake succeeds with the pinned device certificate only."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from gateway.proxy.addons.upstream_tls import UpstreamTls, der_fingerprint
from gateway.proxy.routes import RouteTable
from tests.unit.gateway.proxy.addons.flows import route

UPSTREAM = ("127.0.0.1", 40001)


def _self_signed() -> tuple[crypto.X509, crypto.PKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "printer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return crypto.X509.from_cryptography(cert), crypto.PKey.from_cryptography_key(key), der_fingerprint(der)


def _handshake(addon: UpstreamTls, cert: crypto.X509, key: crypto.PKey) -> None:
    server_ctx = SSL.Context(SSL.TLS_METHOD)
    server_ctx.use_certificate(cert)
    server_ctx.use_privatekey(key)
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    addon.tls_start_server(SimpleNamespace(ssl_conn=client,  # type: ignore[arg-type]
                                           context=SimpleNamespace(server=SimpleNamespace(address=UPSTREAM))))
    for _ in range(20):
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                b.bio_write(a.bio_read(65536))
            except SSL.WantReadError:
                pass
        try:
            client.do_handshake()
            return
        except SSL.WantReadError:
            continue
    raise AssertionError("handshake did not finish")


def test_the_pinned_certificate_is_accepted() -> None:
    cert, key, fingerprint = _self_signed()
    routes = RouteTable()
    routes.add(route(upstream_host=UPSTREAM[0], upstream_port=UPSTREAM[1], device_scheme="https",
                     pinned_fingerprint=fingerprint.upper()))
    _handshake(UpstreamTls(routes), cert, key)


def test_another_certificate_fails_the_handshake() -> None:
    cert, key, _ = _self_signed()
    _, _, other = _self_signed()
    routes = RouteTable()
    routes.add(route(upstream_host=UPSTREAM[0], upstream_port=UPSTREAM[1], device_scheme="https",
                     pinned_fingerprint=other))
    with pytest.raises(SSL.Error):
        _handshake(UpstreamTls(routes), cert, key)
