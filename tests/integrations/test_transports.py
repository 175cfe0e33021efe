"""The e-mail and syslog transports against real servers on loopback: aiosmtpd plain, with
STARTTLS and authentication, and with implicit TLS; a TLS syslog collector that reads RFC 6587
octet-counted RFC 5424 messages with CEF payloads, drops the connection once (the transport
reconnects), and a collector the transport must not trust (certificate refused)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.errors import IntegrationError
from integrations.smtp import SmtpConfig, SmtpTransport
from integrations.syslog import SyslogTarget, SyslogTransport, format_cef
from integrations.webhook import WebhookTransport
from lab.ports import free_tcp_port
from printgate import __version__


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def self_signed(directory: Path, name: str) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return Tls(directory / f"{name}.crt", directory / f"{name}.key")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return self_signed(tmp_path_factory.mktemp("tls"), "collector")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return self_signed(tmp_path_factory.mktemp("tls-other"), "stranger")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        tls_on = server.transport.get_extra_info("ssl_object") is not None
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content), tls_on))
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok)


@pytest.fixture
def smtp_servers(tls: Tls) -> Iterator[dict[str, tuple[Controller, Inbox]]]:
    servers: dict[str, tuple[Controller, Inbox]] = {}
    plain = Inbox()
    servers["none"] = (Controller(plain, hostname="127.0.0.1", port=free_tcp_port()), plain)
    starttls = Inbox()
    servers["starttls"] = (Controller(starttls, hostname="127.0.0.1", port=free_tcp_port(),
                                      tls_context=tls.server_context(), require_starttls=True,
                                      authenticator=authenticator, auth_required=True), starttls)
    implicit = Inbox()
    servers["tls"] = (Controller(implicit, hostname="127.0.0.1", port=free_tcp_port(),
                                 ssl_context=tls.server_context(), server_hostname="localhost"), implicit)
    for controller, _ in servers.values():
        controller.start()
    yield servers
    for controller, _ in servers.values():
        controller.stop()


async def test_smtp_plain_starttls_with_login_and_implicit_tls(smtp_servers: Any, tls: Tls) -> None:
    for security, username in (("none", ""), ("starttls", "mailer"), ("tls", "")):
        controller, inbox = smtp_servers[security]
        transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=controller.port, security=security,
                                             username=username, password="s3cret" if username else "",
                                             mail_from="alerts@dealer.test", ca_file=str(tls.cert)))
        msg_id = await transport.send(recipients=["ops@customer.test"], subject="Toner empty\r\nBcc: evil@x.test",
                                      text="Front desk LaserJet: toner empty", headers={"X-Printgate-Event": "a.b"})
        [(rcpt, msg, tls_on)] = inbox.messages
        assert rcpt == ["ops@customer.test"] and msg["Message-ID"] == msg_id
        assert tls_on == (security != "none")
        assert msg["Subject"] == "Toner empty  Bcc: evil@x.test" and msg["Bcc"] is None  # no header injection
        assert msg["X-Printgate-Event"] == "a.b" and "toner empty" in msg.get_payload()


async def test_smtp_refuses_an_untrusted_server_and_names_an_unreachable_one(smtp_servers: Any, tls: Tls,
                                                                             stranger: Tls) -> None:
    controller, inbox = smtp_servers["starttls"]
    untrusted = SmtpTransport(SmtpConfig(host="127.0.0.1", port=controller.port, security="starttls",
                                         username="mailer", password="s3cret", ca_file=str(stranger.cert)))
    with pytest.raises(IntegrationError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted.send(recipients=["a@b.test"], subject="s", text="t")
    wrong_login = SmtpTransport(SmtpConfig(host="127.0.0.1", port=controller.port, security="starttls",
                                           username="mailer", password="wrong", ca_file=str(tls.cert),
                                           timeout=3))
    with pytest.raises(IntegrationError, match="did not take the message"):
        await wrong_login.send(recipients=["a@b.test"], subject="s", text="t")
    no_tls = SmtpTransport(SmtpConfig(host="127.0.0.1", port=controller.port, security="none", timeout=3))
    with pytest.raises(IntegrationError):  # the server wants STARTTLS first
        await no_tls.send(recipients=["a@b.test"], subject="s", text="t")
    down = SmtpTransport(SmtpConfig(host="127.0.0.1", port=free_tcp_port(), timeout=2))
    with pytest.raises(IntegrationError, match=r"SMTP server 127\.0\.0\.1:\d+ \(none\)"):
        await down.send(recipients=["a@b.test"], subject="s", text="t")
    assert inbox.messages == []


@dataclass
class Collector:
    """A TLS syslog collector: RFC 6587 octet counting; drops the first connection after one message."""

    frames: list[bytes] = field(default_factory=list)
    connections: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        try:
            while True:
                length = await reader.readuntil(b" ")
                self.frames.append(await reader.readexactly(int(length[:-1])))
                self.got.set()
                if first:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def collector(tls: Tls) -> AsyncIterator[tuple[Collector, int]]:
    c = Collector()
    server = await asyncio.start_server(c.handle, "127.0.0.1", 0, ssl=tls.server_context())
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield c, port


async def wait_frames(c: Collector, n: int) -> None:
    async with asyncio.timeout(5):
        while len(c.frames) < n:
            c.got.clear()
            await c.got.wait()


RFC5424 = re.compile(rb"^<(\d+)>1 (\S+) (\S+) printgate - (\S+) - \xef\xbb\xbf(.*)$", re.S)


async def test_syslog_over_tls_with_cef_and_a_reconnect(collector: tuple[Collector, int], tls: Tls) -> None:
    c, port = collector
    transport = SyslogTransport(SyslogTarget("127.0.0.1", port, tls=True, ca_file=str(tls.cert)),
                                hostname="cloud-1", allow_private=True)
    at = dt.datetime(2026, 12, 5, 9, 30, tzinfo=dt.UTC)
    await transport.send_cef(signature_id="auth.signin_burst", name="Failed sign-ins | burst", severity=8,
                             extensions={"suser": "tech=1@dealer.test", "src": "203.0.113.9", "cnt": 25,
                                         "msg": "25 failures\nin 60 s"}, at=at)
    await wait_frames(c, 1)
    await asyncio.sleep(0.2)  # the collector has closed that connection
    await transport.send_cef(signature_id="agent.revoked_use", name="Revoked agent", severity=10,
                             extensions={"dvchost": "agent-7"})
    await wait_frames(c, 2)
    await transport.aclose()
    assert c.connections == 2  # reconnected once
    m = RFC5424.match(c.frames[0])
    assert m, c.frames[0]
    pri, ts, host, msgid, cef = m.groups()
    assert int(pri) == 4 * 8 + 3 and ts == b"2026-12-05T09:30:00.000000Z" and host == b"cloud-1"
    assert msgid == b"auth.signin_burst"
    assert cef.decode() == (f"CEF:0|printgate|printgate|{__version__}|auth.signin_burst|Failed sign-ins \\| burst|8|"
                            "suser=tech\\=1@dealer.test src=203.0.113.9 cnt=25 msg=25 failures\\nin 60 s")
    second = RFC5424.match(c.frames[1])
    assert second and int(second.group(1)) == 4 * 8 + 2 and second.group(5).startswith(b"CEF:0|")


async def test_syslog_refuses_a_collector_it_does_not_trust(collector: tuple[Collector, int],
                                                            stranger: Tls) -> None:
    c, port = collector
    transport = SyslogTransport(SyslogTarget("127.0.0.1", port, tls=True, ca_file=str(stranger.cert), timeout=3),
                                allow_private=True)
    with pytest.raises(IntegrationError, match="cannot reach syslog collector"):
        await transport.send_cef(signature_id="x", name="x", severity=1)
    down = SyslogTransport(SyslogTarget("127.0.0.1", free_tcp_port(), tls=False, timeout=2), allow_private=True)
    with pytest.raises(IntegrationError, match=r"\(TCP\)"):
        await down.send_cef(signature_id="x", name="x", severity=1)
    assert c.frames == []


def test_cef_refuses_out_of_range_severity() -> None:
    with pytest.raises(ValueError, match=r"0\.\.10"):
        format_cef(signature_id="x", name="x", severity=11)


async def test_a_receiver_that_drips_its_answer_is_cut_off_at_twice_the_timeout() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.3)  # each byte inside the per-read timeout
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = WebhookTransport(timeout=0.5, allow_private=True)
    async with server:
        result = await transport.deliver(f"http://127.0.0.1:{port}/hook", b"k", event_id="evt_1", kind="alert.opened",
                                         body=b"{}")
    await transport.aclose()
    assert not result.ok and result.retryable and "within 1 s" in result.error
    assert result.duration_s < 1.5


async def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_connected_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The address check passed (as for a name that resolved to a public address a moment ago);
    at connect time the name points at loopback: the connection is refused, nothing arrives."""
    arrived: list[bytes] = []

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.append(await reader.read(100))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr("integrations.webhook.check_url", lambda url, **_: url)  # the check said public
    strict, lab = WebhookTransport(timeout=2), WebhookTransport(timeout=2, allow_private=True)
    async with server:
        refused = await strict.deliver(f"http://localhost:{port}/hook", b"k", event_id="evt_1",
                                       kind="alert.opened", body=b"{}")
        assert not refused.ok and "non-public address" in refused.error and arrived == []
        allowed = await lab.deliver(f"http://localhost:{port}/hook", b"k", event_id="evt_2",
                                    kind="alert.opened", body=b"{}")
        assert allowed.ok and len(arrived) == 1  # the same receiver, allowed in a lab
    await strict.aclose()
    await lab.aclose()


async def test_tls_through_the_public_only_connector_checks_the_host_name(
        monkeypatch: pytest.MonkeyPatch, tls: Tls, stranger: Tls) -> None:
    """The connector dials the checked address, TLS still verifies the certificate for the name."""
    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    port = free_tcp_port()
    server = await asyncio.start_server(receiver, "localhost", port, ssl=tls.server_context())
    monkeypatch.setattr("integrations.webhook.check_url", lambda url, **_: url)
    monkeypatch.setattr("integrations.addresses.is_public", lambda address: address in ("127.0.0.1", "::1"))
    trusting, wary = WebhookTransport(timeout=3, verify=str(tls.cert)), WebhookTransport(timeout=3, verify=str(stranger.cert))
    async with server:
        ok = await trusting.deliver(f"https://localhost:{port}/hook", b"k", event_id="evt_1", kind="x", body=b"{}")
        bad = await wary.deliver(f"https://localhost:{port}/hook", b"k", event_id="evt_2", kind="x", body=b"{}")
    await trusting.aclose()
    await wary.aclose()
    assert ok.ok and ok.status == 204
    assert not bad.ok and "CERTIFICATE_VERIFY_FAILED" in bad.error
