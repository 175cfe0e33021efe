"""RFC 5424 forwarding to a real TCP and TLS collector on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from audit.checkpoint import Checkpoint, Signer
from audit.errors import SyslogError
from audit.log import AuditLog
from audit.syslog import SyslogForwarder, format_rfc5424
from printgate.domain import AuditEventIn, AuditRecord
from printgate.store.db import Database


class Collector:
    """A minimal RFC 6587 octet-counting syslog receiver."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.got = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = await reader.readuntil(b" ")
                self.messages.append(await reader.readexactly(int(length[:-1])))
                self.got.set()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def wait_for(self, n: int) -> None:
        for _ in range(100):
            if len(self.messages) >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"collector got {len(self.messages)} of {n} messages")


def make_tls(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    client = ssl.create_default_context(cafile=str(tmp / "c.pem"))
    return server, client


@pytest.fixture
async def records(db: Database) -> list[AuditRecord]:
    log = AuditLog(db, None)
    return await log.append_many([
        AuditEventIn(type="dwa.request", actor="tech@dealer", source_ip="127.0.0.9", dealer_id="d1",
                     session_id="s1", details={"path": "/a]b\"c", "status": 200}),
        AuditEventIn(type="auth.login", outcome="failure", details={"reason": "bad password"}),  # type: ignore[arg-type]
    ])


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, asyncio.Server]]:
    c = Collector()
    server = await asyncio.start_server(c.handle, "127.0.0.1", 0)
    yield c, server
    server.close()
    await server.wait_closed()


async def test_records_arrive_at_a_tcp_collector_as_rfc5424(records: list[AuditRecord], collector) -> None:  # type: ignore[no-untyped-def]
    c, server = collector
    port = server.sockets[0].getsockname()[1]
    async with SyslogForwarder("127.0.0.1", port, hostname="gw1") as fwd:
        await fwd.send(records)
    await c.wait_for(2)
    first = c.messages[0].decode()
    assert re.match(r"<110>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z gw1 printgate - dwa.request \[printgate@32473 ", first)
    assert f'seq="{records[0].seq}"' in first and f'hash="{records[0].hash}"' in first
    assert 'path":"/a]b\\"c"' in first  # details JSON after the BOM
    assert "tech@dealer" not in first  # personal values stay out by default
    assert c.messages[1].startswith(b"<108>1 ")  # log audit, warning for a failure


async def test_records_arrive_over_tls_and_an_untrusted_collector_is_refused(
    records: list[AuditRecord], tmp_path: Path
) -> None:
    server_ctx, client_ctx = make_tls(tmp_path)
    c = Collector()
    server = await asyncio.start_server(c.handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        async with SyslogForwarder("127.0.0.1", port, tls=client_ctx, include_personal=True) as fwd:
            await fwd.send(records)
        await c.wait_for(2)
        assert b'actor="tech@dealer"' in c.messages[0]
        with pytest.raises(SyslogError, match="cannot reach"):
            await SyslogForwarder("127.0.0.1", port, tls=ssl.create_default_context(), timeout=5).start()
    finally:
        server.close()
        await server.wait_closed()


def test_header_fields_never_contain_spaces(records: list[AuditRecord]) -> None:
    msg = format_rfc5424(records[0], hostname="gate way\n1")
    assert msg.split(b" ")[2] == b"gateway1"


async def test_the_shipper_forwards_new_records_in_order_as_they_are_appended(db: Database, collector) -> None:  # type: ignore[no-untyped-def]
    from audit.forwarding import SyslogShipper

    c, server = collector
    port = server.sockets[0].getsockname()[1]
    signer = Signer.generate()
    log = AuditLog(db, signer, checkpoint_every=3)
    await log.append_many([AuditEventIn(type="auth.login", details={"n": i}) for i in range(3)])
    async with SyslogShipper(db, SyslogForwarder("127.0.0.1", port, hostname="gw"), interval=0.05) as shipper:
        await c.wait_for(4)
        await log.append(AuditEventIn(type="auth.logout", details={"n": 3}))
        await c.wait_for(5)
    assert shipper.shipped_seq == 4
    records = [m for m in c.messages if b" audit.checkpoint " not in m]
    seqs = [int(re.search(rb'seq="(\d+)"', m).group(1)) for m in records]  # type: ignore[union-attr]
    assert seqs == [1, 2, 3, 4]
    (cp_msg,) = [m.decode() for m in c.messages if b" audit.checkpoint " in m]
    fields = dict(re.findall(r'(\w+)="([^"]*)"', cp_msg))
    cp = Checkpoint.from_json({**fields, "tree_size": int(fields["tree_size"]), "v": int(fields["v"])})
    assert cp.tree_size == 3 and signer.verifier().is_valid(cp)
