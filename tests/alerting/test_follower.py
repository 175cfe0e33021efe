"""Security alerting end to end on both databases: real audit appends (the hash-chained
AuditLog), the follower with its persisted cursor, and real receivers on loopback: an SMTP
server (aiosmtpd), a webhook receiver that checks signatures, a syslog TCP collector."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from alerting.delivery import Channels, validate
from alerting.follower import OperatorTargets, SecurityAlertFollower
from alerting.secrets import seal
from audit.log import AuditLog
from integrations.smtp import SmtpConfig
from integrations.webhook import SIGNATURE_HEADER, verify_signature
from lab.sites import serve
from printgate.domain import AuditEventIn, Outcome
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.testing.clock import FrozenClock
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy
from printgate.vault.kms import FileKms

SECRET = "a-webhook-secret-of-32-characters!"
KMS = FileKms(Path(tempfile.mkdtemp(prefix="printgate-alerting-")) / "vault-master.key")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receivers:
    mails: list[tuple[list[str], bytes]] = field(default_factory=list)
    hooks: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    syslog: list[bytes] = field(default_factory=list)
    smtp_port: int = 0
    hook_url: str = ""
    syslog_url: str = ""
    secret: str = SECRET  # what the webhook receiver checks signatures with


class _Smtp:
    def __init__(self, rx: Receivers) -> None:
        self.rx = rx

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls its hooks by this name
        self.rx.mails.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    rx = Receivers()
    rx.smtp_port = free_port()
    smtp = Controller(_Smtp(rx), hostname="127.0.0.1", port=rx.smtp_port)
    smtp.start()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify_signature(rx.secret.encode(), request.headers.get(SIGNATURE_HEADER, ""), body)
        except Exception:
            rx.bad_signatures += 1
            return web.Response(status=401)
        rx.hooks.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = await serve(runner)
    rx.hook_url = f"http://127.0.0.1:{port}/hook"

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            length = await reader.readuntil(b" ")
            if not length:
                break
            rx.syslog.append(await reader.readexactly(int(length[:-1])))

    async def collect_safely(reader, writer) -> None:
        try:
            await collect(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(collect_safely, "127.0.0.1", 0)
    rx.syslog_url = f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield rx
    server.close()
    await runner.cleanup()
    smtp.stop()


async def world(db: Database) -> None:
    await (Tenancy().chain(dealer="d1", customer="cA", site="sA", agent="agA")
           .customer("cB", "d1").site("sB", "cB").agent("agB", "sB").save(db))


async def subscribe(db: Database, *, dealer: str, customer: str | None, channel: str, target: str,
                    categories: str = "", severity: str = "medium") -> None:
    sub = validate(channel=channel, target=target, categories=categories, min_severity=severity,
                   secret=SECRET if channel == "webhook" else None, allow_private_webhooks=True)
    sealed = await seal(KMS, sub.secret, dealer_id=dealer, target=sub.target) if sub.secret else None
    async with db.transaction() as s:
        await subs.add_subscription(s, dealer_id=dealer, customer_id=customer, contact="SecOps",
                                    channel=sub.channel, target=sub.target, secret=sealed,
                                    categories=sub.categories, min_severity=sub.min_severity,
                                    now=datetime.now(UTC), created_by="test")


def follower(db: Database, rx: Receivers, clock: FrozenClock, **kw) -> SecurityAlertFollower:
    channels = Channels(smtp=SmtpConfig(host="127.0.0.1", port=rx.smtp_port, timeout=5),
                        allow_private_webhooks=True, timeout=5)
    return SecurityAlertFollower(db, channels, KMS, clock=clock, retry_base_s=1, **kw)


async def drain(f: SecurityAlertFollower) -> None:
    await f.evaluate_once()
    while not f.caught_up:
        await f.evaluate_once()
    await f.deliver_once()


async def test_an_attack_of_500_failed_sign_ins_gives_at_most_3_messages_per_channel(
        db: Database, receivers: Receivers) -> None:
    await world(db)
    victim, _ = await create_user(db, dealer="d1", customer="cA")
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="secops@a.example")
    await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=receivers.hook_url)
    await subscribe(db, dealer="d1", customer=None, channel="syslog", target=receivers.syslog_url)
    await subscribe(db, dealer="d1", customer="cB", channel="email", target="secops@b.example")
    clock = FrozenClock()
    f = follower(db, receivers, clock)
    await f.evaluate_once()  # first start: the cursor is set at the head
    log = AuditLog(db, None)
    for i in range(0, 500, 50):
        await log.append_many([
            AuditEventIn(type="auth.login", outcome=Outcome.FAILURE, actor=victim.email,
                         source_ip="203.0.113.66", details={"reason": "bad_credentials"})
            for _ in range(50)])
    await drain(f)
    clock.now += timedelta(minutes=11)  # the quiet window ends: the storm's summary
    await drain(f)
    await asyncio.sleep(0.3)  # the syslog collector reads what was written

    texts = [m.decode() for _, m in receivers.mails]
    assert 1 <= len(receivers.mails) <= 3 and all(r == ["secops@a.example"] for r, _ in receivers.mails)
    assert sum(1 for t in texts if "203.0.113.66" in t) == len(texts)
    assert 1 <= len(receivers.hooks) <= 3 and receivers.bad_signatures == 0
    assert sum(h["count"] for h in receivers.hooks) == 500
    assert {h["customer_id"] for h in receivers.hooks} == {"cA"}
    assert all(h["source_ip"] == "203.0.113.66" for h in receivers.hooks)
    assert "490 more" in receivers.hooks[-1]["text"]
    assert 1 <= len(receivers.syslog) <= 3
    assert b"CEF:0|printgate|printgate|" in receivers.syslog[0] and b"cnt=10" in receivers.syslog[0]
    assert b"src=203.0.113.66" in receivers.syslog[0]
    subject = " ".join(str(message_from_bytes(receivers.mails[0][1])["Subject"]).split())
    assert subject.startswith("[printgate HIGH] Burst of failed sign-ins")


async def test_a_restart_mid_stream_neither_loses_nor_doubles(db: Database, receivers: Receivers) -> None:
    await world(db)
    await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=receivers.hook_url,
                    severity="low")
    clock = FrozenClock()
    first = follower(db, receivers, clock, batch=7)
    await first.evaluate_once()
    log = AuditLog(db, None)
    events = [AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED, customer_id="cA",
                           dealer_id="d1", session_id=f"s{i}", details={"rule": "upload.blocked"})
              for i in range(20)]
    await log.append_many(events)
    await first.evaluate_once()  # one batch of 7, then the process "dies"
    second = follower(db, receivers, clock, batch=7)  # a new process, the same database
    await drain(second)
    await drain(second)
    got = sorted(h["details"]["session_id"] for h in receivers.hooks)
    assert got == sorted(f"s{i}" for i in range(20))  # each once, none lost
    async with db.session() as s:
        assert await subs.count_alerts(s) == 20


async def test_a_dead_channel_does_not_stop_the_others_and_ends_dead(db: Database, receivers: Receivers) -> None:
    await world(db)
    await subscribe(db, dealer="d1", customer="cA", channel="syslog", target=f"tcp://127.0.0.1:{free_port()}")
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="secops@a.example")
    clock = FrozenClock()
    f = follower(db, receivers, clock, max_attempts=2)
    await f.evaluate_once()
    await AuditLog(db, None).append(AuditEventIn(
        type="vault.credential_revealed", actor="tech@dealer.example", dealer_id="d1", customer_id="cA",
        device_id="dev1", details={"request_id": "r1"}))
    await drain(f)
    assert len(receivers.mails) == 1 and "break-glass" in receivers.mails[0][1].decode()
    clock.now += timedelta(seconds=5)
    await f.deliver_once()
    async with db.session() as s:
        [alert] = await subs.recent_alerts(s, customer_id="cA")
        states = {d.channel: (d.status, d.attempts) for d in await subs.deliveries_of(s, alert.id)}
    assert states == {"email": ("sent", 1), "syslog": ("dead", 2)}


async def test_tenancy_is_resolved_for_records_that_name_none(db: Database, receivers: Receivers) -> None:
    await world(db)
    await subscribe(db, dealer="d1", customer="cB", channel="webhook", target=receivers.hook_url)
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="secops@a.example")
    clock = FrozenClock()
    f = follower(db, receivers, clock, operators=OperatorTargets(emails=("ops@platform.example",)))
    await f.evaluate_once()
    await AuditLog(db, None).append_many([
        AuditEventIn(type="agent.rpc.denied", outcome=Outcome.DENIED, actor="agent:agB",
                     details={"reason": "agent_revoked", "count": 4, "agent_id": "agB"}),
        AuditEventIn(type="relay.connections.refused", outcome=Outcome.DENIED, source_ip="198.51.100.9",
                     details={"refused": 300, "admitted": 0}),
    ])
    await drain(f)
    assert [(h["rule"], h["customer_id"], h["count"]) for h in receivers.hooks] == [("agent.revoked_used", "cB", 4)]
    assert [r for r, _ in receivers.mails] == [["ops@platform.example"]]  # customer A hears nothing of B
    assert "198.51.100.9" in receivers.mails[0][1].decode()


async def test_a_restart_mid_storm_keeps_the_folded_count_and_raises_no_second_alert(
        db: Database, receivers: Receivers) -> None:
    await world(db)
    await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=receivers.hook_url)
    clock = FrozenClock()
    first = follower(db, receivers, clock, batch=30)
    await first.evaluate_once()
    log = AuditLog(db, None)
    storm = [AuditEventIn(type="auth.login", outcome=Outcome.FAILURE, actor="nobody@example.org",
                          dealer_id="d1", customer_id="cA", source_ip="192.0.2.44") for _ in range(130)]
    await log.append_many(storm)
    await first.evaluate_once()
    await first.deliver_once()  # 30 read: the alert is out, 20 folded; then the process "dies"
    second = follower(db, receivers, clock, batch=30)
    await drain(second)
    clock.now += timedelta(minutes=11)
    await drain(second)
    assert [h["kind"] for h in receivers.hooks] == ["alert", "summary"]
    assert sum(h["count"] for h in receivers.hooks) == 130


def self_signed(tmp: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syslog collector")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "collector.pem", tmp / "collector.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_syslog_over_tls_to_a_verified_collector(db: Database, receivers: Receivers, tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    lines: list[bytes] = []

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = await reader.readuntil(b" ")
                lines.append(await reader.readexactly(int(length[:-1])))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(collect, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        await world(db)
        await subscribe(db, dealer="d1", customer=None, channel="syslog", target=f"tls://127.0.0.1:{port}",
                        categories="device")
        clock = FrozenClock()
        channels = Channels(smtp=None, syslog_ca_file=str(cert), timeout=5, allow_private_webhooks=True)
        f = SecurityAlertFollower(db, channels, KMS, clock=clock)
        untrusted = SecurityAlertFollower(db, Channels(smtp=None, timeout=5, allow_private_webhooks=True), KMS, clock=clock, max_attempts=1)
        await f.evaluate_once()
        await AuditLog(db, None).append(AuditEventIn(
            type="device.identity_changed", outcome=Outcome.FAILURE, actor="agent:agA", device_id="dev|9",
            details={"ip": "10.0.0.5", "now_answering": "serial=X=1"}))
        await f.evaluate_once()
        await untrusted.deliver_once()  # the system roots do not know this collector: refused, kept dead
        async with db.session() as s:
            [alert] = await subs.recent_alerts(s, dealer_id="d1")
            [state] = await subs.deliveries_of(s, alert.id)
        assert state.status == "dead" and "CERTIFICATE_VERIFY_FAILED" in (state.last_error or "")
        assert lines == []
        # an operator fixes the CA and redelivers: a new evaluation of new records is sent over TLS
        await AuditLog(db, None).append(AuditEventIn(
            type="device.identity_mismatch", outcome=Outcome.FAILURE, actor="agent:agA", device_id="dev=7"))
        await drain(f)
        for _ in range(50):
            if lines:
                break
            await asyncio.sleep(0.05)
        [line] = lines
        assert b"CEF:0|printgate|printgate|" in line and b"|device.identity|" in line
        assert b"cs2=cA" in line and b"deviceExternalId=dev\\=7" in line  # CEF escaping of "="
        await channels.aclose()
        await untrusted.channels.aclose()
    finally:
        server.close()


async def test_a_customer_staff_record_without_dealer_reaches_the_customer_and_the_dealer(
        db: Database, receivers: Receivers) -> None:
    await world(db)
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="secops@a.example")
    await subscribe(db, dealer="d1", customer=None, channel="webhook", target=receivers.hook_url)
    await subscribe(db, dealer="d1", customer="cB", channel="email", target="secops@b.example")
    f = follower(db, receivers, FrozenClock())
    await f.evaluate_once()
    # the portal records a customer user's events with the user's tenant: customer set, dealer None
    await AuditLog(db, None).append(AuditEventIn(
        type="auth.mfa", outcome=Outcome.FAILURE, actor="admin@a.example", customer_id="cA",
        source_ip="192.0.2.7", details={"reason": "replayed"}))
    await drain(f)
    assert [r for r, _ in receivers.mails] == [["secops@a.example"]]
    assert [(h["rule"], h["dealer_id"], h["customer_id"]) for h in receivers.hooks] == [
        ("signin.totp_replay", "d1", "cA")]
