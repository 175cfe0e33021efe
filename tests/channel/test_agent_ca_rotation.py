"""Agent CA rotation over a real mTLS gRPC channel (issue 18 item 4).

An agent enrolled under the old CA (it trusts only that CA) keeps working with
a gateway restarted on the rotated CA (the server certificate carries the new
CA cross-signed by the old one; the old CA stays trusted for client
certificates), renews, and then holds a certificate of the new CA.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from agent.channel.enroll import enroll
from agent.channel.grpc_client import GrpcChannel
from gateway.channel.ca import AgentCA, ca_id, rotate_agent_ca
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.errors import AgentUnavailable
from printgate.store import channel as channel_store
from printgate.store.db import Database
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.database import migrated, sqlite_url
from tests.channel.conftest import Recorder, make_tenancy


@asynccontextmanager
async def _gateway(db: Database, ca_dir: Path) -> AsyncIterator[tuple[AgentChannelServer, AgentCA]]:
    ca = AgentCA.load_or_create(ca_dir)
    server = AgentChannelServer(
        "127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=ReadableAuditLog(db, None),
        hub=AgentHub(ca.command_key), handlers=Recorder().handlers(), enrol_port=free_tcp_port(),
        facts=ChannelFacts(relay_address="127.0.0.1:8422", relay_host_key_fingerprint="SHA256:test"),
    )
    await server.start()
    try:
        yield server, ca
    finally:
        await server.aclose()


async def _token(db: Database, site: str) -> str:
    async with db.transaction() as s:
        return await channel_store.create_enrolment_token(s, site, ttl=timedelta(minutes=10), created_by="admin@dealer.test")


def _issuer_id(cert_pem: bytes, ca: AgentCA) -> str:
    issuer = x509.load_pem_x509_certificate(cert_pem).issuer
    return next(ca_id(c) for c in [ca.cert, *(c for _, c in ca.previous)] if c.subject == issuer)


async def test_an_agent_of_the_old_ca_keeps_working_and_renews_onto_the_new_ca(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    async with migrated(sqlite_url(tmp_path / "cloud.db")) as db:
        site, _ = await make_tenancy(db)
        async with _gateway(db, ca_dir) as (server, ca):
            old_id = ca.ids()[0]
            identity = await enroll(server.enrol_target, await _token(db, site), tmp_path / "agent",
                                    ca_cert_pem=ca.cert_pem)
            assert identity.ca_pem().count(b"BEGIN CERTIFICATE") == 1  # trusts only the old CA
            async with GrpcChannel(server.target, identity) as ch:
                await ch.wait_connected(10)
                await ch.heartbeat()

        assert rotate_agent_ca(ca_dir)[0] == old_id

        async with _gateway(db, ca_dir) as (server, ca):
            new_id = ca.ids()[0]
            assert ca.ids() == [new_id, old_id]
            async with GrpcChannel(server.target, identity) as ch:
                await ch.wait_connected(10)
                await ch.heartbeat()  # old client certificate, old trust anchor: still served
                assert _issuer_id(identity.cert_pem(), ca) == old_id
                renewed = await ch.renew_certificate()
                assert _issuer_id(renewed.cert_pem(), ca) == new_id
                await ch.wait_connected(10)
                await ch.heartbeat()
            # an agent enrolled now trusts both CAs
            fresh = await enroll(server.enrol_target, await _token(db, site), tmp_path / "agent2",
                                 ca_cert_pem=ca.cert_pem)
            assert fresh.ca_pem().count(b"BEGIN CERTIFICATE") == 2
            assert _issuer_id(fresh.cert_pem(), ca) == new_id
            # the CRL covers both issuers (Mosquitto checks a client certificate against its issuer's CRL)
            crls = ca.issue_crl({"abc"}).count(b"BEGIN X509 CRL")
            assert crls == 2


async def test_without_the_cross_certificate_an_old_agent_is_cut_off(tmp_path: Path) -> None:
    """The control: what the cross certificate prevents."""
    ca_dir = tmp_path / "ca"
    async with migrated(sqlite_url(tmp_path / "cloud.db")) as db:
        site, _ = await make_tenancy(db)
        async with _gateway(db, ca_dir) as (server, ca):
            identity = await enroll(server.enrol_target, await _token(db, site), tmp_path / "agent",
                                    ca_cert_pem=ca.cert_pem)
        rotate_agent_ca(ca_dir)
        (ca_dir / "cross.crt").unlink()
        async with _gateway(db, ca_dir) as (server, ca):
            ch = GrpcChannel(server.target, identity)
            try:
                await ch.connect()
                try:
                    await ch.wait_connected(3)
                except AgentUnavailable:
                    return  # refused: the agent cannot verify the new CA's server certificate
                raise AssertionError("an agent that trusts only the old CA verified the new CA's server")
            finally:
                await ch.aclose()


def test_keys_rotate_agent_ca_is_audited_and_listed(database_url: str, tmp_path: Path) -> None:
    import asyncio
    import json

    from typer.testing import CliRunner

    from printgate.cli import build_app
    from printgate.domain import event_types
    from printgate.store import audit as audit_store
    from printgate.store.db import migrate

    asyncio.run(migrate(database_url))
    old_id = AgentCA.load_or_create(tmp_path / "gw" / "agent-ca").ids()[0]
    runner = CliRunner()
    res = runner.invoke(build_app(), ["keys", "rotate", "agent-ca", "--data-dir", str(tmp_path / "gw"),
                                      "--database-url", database_url])
    assert res.exit_code == 0, res.output
    ca = AgentCA.load_or_create(tmp_path / "gw" / "agent-ca")
    new_id = ca.ids()[0]
    assert ca.ids() == [new_id, old_id] and ca.cross is not None

    async def rotated() -> dict[str, object]:
        async with Database(database_url) as db:
            recs = [r for b in [b async for b in audit_store.iter_records(db)] for r in b]
        return next(json.loads(r.entry)["details"] for r in recs
                    if r.entry and event_types.KEYS_ROTATED in r.entry)

    assert asyncio.run(rotated()) == {"use": "agent-ca", "old_key_id": old_id, "new_key_id": new_id}
    res = runner.invoke(build_app(), ["keys", "list", "--data-dir", str(tmp_path / "gw")])
    assert res.exit_code == 0, res.output
    assert any(new_id in ln and "issuing" in ln for ln in res.output.splitlines()), res.output
    assert any(old_id in ln and "verify only" in ln for ln in res.output.splitlines()), res.output
