"""Per-call authorisation of the agent channel, attacked with real gRPC stubs holding another
agent's (or a revoked) certificate."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from agent.channel.enroll import EnrolledIdentity, make_csr
from agent.channel.grpc_client import GrpcChannel
from printgate.domain import AuditRecord
from printgate.store import channel as channel_store
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc
from tests.channel.conftest import Cloud, make_session

CLI = "from printgate.cli import main; main()"


def creds(cloud: Cloud, identity: EnrolledIdentity, cert_pem: bytes | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=cloud.ca.cert_pem, private_key=identity.key_pem(),
                                        certificate_chain=cert_pem or identity.cert_pem())


async def denied_records(cloud: Cloud, agent_id: str, reason: str | None = None) -> list[AuditRecord]:
    await cloud.server.denials.flush()
    return [e for e in await cloud.audit.events()
            if e.type == "agent.rpc.denied" and e.details.get("agent_id") == agent_id
            and (reason is None or e.details.get("reason") == reason)]


async def test_result_for_another_agents_command_is_refused(cloud: Cloud) -> None:
    a, b = await cloud.enrol(name="authz-a"), await cloud.enrol(name="authz-b")
    envelope = cloud.hub.sign(b.agent_id, pb.OpenTunnel(session_id="victim-session"), ttl_s=60)
    command_id = pb.Command.FromString(envelope.command).id
    async with aio.secure_channel(cloud.server.target, creds(cloud, a)) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await pb_grpc.AgentChannelStub(ch).ReportCommandResult(pb.CommandResult(
                command_id=command_id, ok=False, error_code="identity_mismatch", message="forged"), timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "was not sent to agent" in (err.value.details() or "")
    assert not any(r.command_id == command_id for _, r in cloud.recorder.results)
    # control: the agent the command was sent to may report it
    async with aio.secure_channel(cloud.server.target, creds(cloud, b)) as ch:
        await pb_grpc.AgentChannelStub(ch).ReportCommandResult(pb.CommandResult(command_id=command_id, ok=True),
                                                               timeout=5)
    assert (b.agent_id, command_id) in [(agent, r.command_id) for agent, r in cloud.recorder.results]
    assert [e.details["count"] for e in await denied_records(cloud, a.agent_id, "foreign_command")] == [1]


async def test_relay_refusal_naming_another_agents_session_is_not_audited_under_it(cloud: Cloud) -> None:
    a, b = await cloud.enrol(name="refuse-a"), await cloud.enrol(name="refuse-b")
    own = await make_session(cloud.db, a.agent_id, a.site_id)
    victim = await make_session(cloud.db, b.agent_id, b.site_id)
    async with GrpcChannel(cloud.server.target, a) as ch:
        await ch.heartbeat(relay_refusals=[
            pb.RelayRefusal(session_id=victim, kind="direct-tcpip", detail="framed"),
            pb.RelayRefusal(session_id="no-such-session", kind="direct-tcpip", detail="framed"),
            pb.RelayRefusal(session_id=own, kind="session", detail="real"),
        ])
    events = [e for e in await cloud.audit.events() if e.type == "agent.relay_channel_refused"]
    assert not any(e.session_id == victim for e in events)
    assert [e.session_id for e in events if e.session_id in (own, victim)] == [own]
    assert [e.details["count"] for e in await denied_records(cloud, a.agent_id, "foreign_session")] == [1]


async def test_certificate_of_a_revoked_agent_stops_working_at_once(cloud: Cloud) -> None:
    """A certificate the revocation missed (issued in the race window) is refused on the next call."""
    identity = await cloud.enrol(name="missed-by-revocation")
    async with cloud.db.transaction() as s:
        await channel_store.revoke_agent(s, identity.agent_id, reason="host stolen")
    key = ec.generate_private_key(ec.SECP256R1())  # any key: the CA signs what it is given
    late = cloud.ca.issue_agent_certificate(make_csr(key, "x"), agent_id=identity.agent_id,
                                            site_id=identity.site_id, ttl=timedelta(hours=1))
    async with cloud.db.transaction() as s:
        await channel_store.record_certificate(s, late.record)  # not revoked: issued "after" the revocation
    from cryptography.hazmat.primitives import serialization

    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    late_creds = grpc.ssl_channel_credentials(root_certificates=cloud.ca.cert_pem, private_key=key_pem,
                                              certificate_chain=late.pem)
    async with aio.secure_channel(cloud.server.target, late_creds) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        calls = {
            "Heartbeat": lambda: stub.Heartbeat(pb.HeartbeatRequest(), timeout=5),
            "UploadReadings": lambda: stub.UploadReadings(pb.ReadingsBatch(batch_id="late", payload_json=b"{}"),
                                                          timeout=5),
            "UploadInventory": lambda: stub.UploadInventory(pb.Inventory(), timeout=5),
            "RenewCertificate": lambda: stub.RenewCertificate(pb.RenewRequest(csr_pem=make_csr(key, "x")),
                                                              timeout=5),
        }
        for name, call in calls.items():
            with pytest.raises(aio.AioRpcError) as err:
                await call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
            assert "revoked" in (err.value.details() or ""), name
        stream = stub.CommandStream(pb.CommandStreamRequest(), timeout=5)
        with pytest.raises(aio.AioRpcError) as err:
            await stream.read()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not any(b == "late" for _, b, _ in cloud.recorder.readings)
    assert not cloud.hub.is_online(identity.agent_id)


async def test_renewal_for_another_key_needs_an_authorised_rekey(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="rekey")
    other = ec.generate_private_key(ec.SECP256R1())
    async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        with pytest.raises(aio.AioRpcError) as err:
            await stub.RenewCertificate(pb.RenewRequest(csr_pem=make_csr(other, "x")), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "authorise-rekey" in (err.value.details() or "")
        async with cloud.db.transaction() as s:
            await channel_store.grant_rekey(s, identity.agent_id, granted_by="admin@dealer.test")
        answer = await stub.RenewCertificate(pb.RenewRequest(csr_pem=make_csr(other, "x")), timeout=5)
        assert b"BEGIN CERTIFICATE" in answer.client_cert_pem
        # the permission was for one re-key only
        with pytest.raises(aio.AioRpcError) as err:
            await stub.RenewCertificate(pb.RenewRequest(csr_pem=make_csr(ec.generate_private_key(ec.SECP256R1()),
                                                                         "x")), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    rekeyed = [e for e in await cloud.audit.events()
               if e.type == "agent.certificate.rekeyed" and e.details.get("agent_id") == identity.agent_id]
    assert len(rekeyed) == 1 and rekeyed[0].details["authorised_by"] == "admin@dealer.test"
    async with cloud.db.session() as s:
        assert len(await channel_store.certificates_of(s, identity.agent_id)) == 2


async def test_a_flood_of_denied_calls_is_audited_in_aggregate(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="denial-flood")
    await cloud.server.denials.flush()  # what earlier tests left counted
    before = len(await cloud.audit.events())
    async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        shell = ch.unary_unary("/printgate.agent.v1.AgentChannel/ExecShell")

        async def forged(i: int) -> grpc.StatusCode:
            try:
                if i % 2:
                    await stub.ReportCommandResult(pb.CommandResult(command_id=f"guess-{i}", ok=False), timeout=10)
                else:
                    await shell(b"", timeout=10)
            except aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        codes: list[grpc.StatusCode] = []
        for start in range(0, 400, 50):
            codes += await asyncio.gather(*(forged(i) for i in range(start, start + 50)))
    assert set(codes) == {grpc.StatusCode.PERMISSION_DENIED}
    records = await denied_records(cloud, identity.agent_id, "foreign_command")
    assert 1 <= len(records) <= 2 and sum(int(e.details["count"]) for e in records) == 200
    assert {"count", "window_start", "window_end"} <= set(records[0].details)
    unknown = [e for e in await cloud.audit.events()
               if e.type == "agent.rpc.denied" and e.details.get("reason") == "unknown_method"]
    assert sum(int(e.details["count"]) for e in unknown) >= 200
    assert len(await cloud.audit.events()) - before <= 6  # 400 refusals, a handful of records


async def test_rekey_authorised_with_the_cli_lets_the_agent_renew_for_a_new_key_once(cloud: Cloud) -> None:
    import os
    import sys

    identity = await cloud.enrol(name="rekey-cli")
    env = {**os.environ, "PRINTGATE_DATABASE_URL": cloud.db.url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "agent", "authorise-rekey", identity.agent_id,
        "--by", "admin@dealer.test", "--minutes", "5", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out
    assert b"may renew once for a new key" in out
    from printgate.store.audit import iter_records

    authorised = [r async for rows in iter_records(cloud.db) for r in rows
                  if r.type == "agent.rekey.authorised" and identity.agent_id in (r.entry or "")]
    assert len(authorised) == 1  # in the chained audit log
    other = ec.generate_private_key(ec.SECP256R1())
    async with aio.secure_channel(cloud.server.target, creds(cloud, identity)) as ch:
        answer = await pb_grpc.AgentChannelStub(ch).RenewCertificate(
            pb.RenewRequest(csr_pem=make_csr(other, "x")), timeout=5)
    assert b"BEGIN CERTIFICATE" in answer.client_cert_pem
    # an unknown agent is a clear error, nothing is written
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "agent", "authorise-rekey", "agt-nobody", "--by", "admin",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"does not exist" in out
