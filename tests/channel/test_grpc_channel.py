"""gRPC agent channel against a real mTLS grpc.aio server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import grpc
import pytest
from grpc import aio

from agent.channel.enroll import enroll
from agent.channel.grpc_client import GrpcChannel
from agent.errors import EnrolmentFailed
from printgate.errors import AccessDenied, AgentUnavailable
from printgate.store import channel as channel_store
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc
from tests.channel.conftest import Cloud, eventually, make_session


async def test_enrolment_issues_cert_and_keeps_private_key_0600(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="enrol-ok")
    assert identity.agent_id.startswith("agt-")
    assert identity.site_id == cloud.site_a
    assert stat.S_IMODE(os.stat(identity.key_path).st_mode) == 0o600
    assert identity.command_verify_key == cloud.hub.verify_key_raw
    assert identity.relay_host_key_fingerprint == "SHA256:test"
    async with cloud.db.session() as s:
        certs = await channel_store.certificates_of(s, identity.agent_id)
    assert len(certs) == 1 and certs[0].site_id == cloud.site_a
    assert b"PRIVATE KEY" not in identity.cert_pem()


async def test_enrolment_token_is_one_time(cloud: Cloud) -> None:
    token = await cloud.token()
    await enroll(cloud.server.enrol_target, token, cloud.tmp / "once-1", ca_cert_pem=cloud.ca.cert_pem)
    # another agent (another key) cannot use the token: it already enrolled the first one
    with pytest.raises(EnrolmentFailed, match=r"already enrolled agent .* with another key"):
        await enroll(cloud.server.enrol_target, token, cloud.tmp / "once-2", ca_cert_pem=cloud.ca.cert_pem)


async def test_forged_enrolment_token_is_refused_and_audited(cloud: Cloud) -> None:
    with pytest.raises(EnrolmentFailed):
        await enroll(cloud.server.enrol_target, "pgenrol_forged", cloud.tmp / "forged",
                     ca_cert_pem=cloud.ca.cert_pem)
    await cloud.server.denials.flush()  # refused enrolments are audited in aggregate
    events = await cloud.audit.events()
    assert any(e.type == "agent.rpc.denied" and e.details.get("reason") == "token_invalid"
               and "Enrolment/Enroll" in e.details.get("methods", []) for e in events)


async def test_readings_upload_is_acked_and_processed_once(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="readings")
    async with GrpcChannel(cloud.server.target, identity) as ch:
        await ch.upload_readings("batch-1", json.dumps({"pages": 1}).encode(), deadline_s=10)
        await ch.upload_readings("batch-1", json.dumps({"pages": 1}).encode(), deadline_s=10)
        await ch.upload_readings("batch-2", b"{}", deadline_s=10)
    mine = [b for a, b, _ in cloud.recorder.readings if a == identity.agent_id]
    assert mine == ["batch-1", "batch-2"]


async def test_inventory_lands_under_the_agent(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="inventory")
    device = pb.DiscoveredDevice(ip="127.0.20.5", ews_port=80, ews_scheme="http", serial="CN123",
                                 status=pb.DEVICE_STATUS_PRINTER)
    async with GrpcChannel(cloud.server.target, identity) as ch:
        await ch.upload_inventory([device], deadline_s=10)
    agent, devices = cloud.recorder.inventories[-1]
    assert agent == identity.agent_id and devices[0].serial == "CN123"


async def test_client_without_certificate_is_refused(cloud: Cloud) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=cloud.ca.cert_pem)
    # on the mTLS port the TLS handshake itself fails
    async with aio.secure_channel(cloud.server.target, creds) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await pb_grpc.AgentChannelStub(ch).Heartbeat(pb.HeartbeatRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # on the enrolment port (server TLS only) every channel method is refused
    async with aio.secure_channel(cloud.server.enrol_target, creds) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await pb_grpc.AgentChannelStub(ch).UploadReadings(
                pb.ReadingsBatch(batch_id="x", payload_json=b"{}"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not any(b == "x" for _, b, _ in cloud.recorder.readings)


async def test_certificate_from_another_ca_is_refused(cloud: Cloud) -> None:
    from gateway.channel.ca import AgentCA

    rogue = AgentCA.load_or_create(cloud.tmp / "rogue-ca")
    identity = await cloud.enrol(name="rogue-victim")
    key = identity.key_pem()
    from cryptography.hazmat.primitives import serialization

    from agent.channel.enroll import make_csr
    priv = serialization.load_pem_private_key(key, None)
    forged = rogue.issue_agent_certificate(make_csr(priv, "x"), agent_id=identity.agent_id,  # type: ignore[arg-type]
                                           site_id=identity.site_id, ttl=__import__("datetime").timedelta(hours=1))
    creds = grpc.ssl_channel_credentials(root_certificates=cloud.ca.cert_pem, private_key=key,
                                         certificate_chain=forged.pem)
    async with aio.secure_channel(cloud.server.target, creds) as ch:
        with pytest.raises(aio.AioRpcError) as err:
            await pb_grpc.AgentChannelStub(ch).Heartbeat(pb.HeartbeatRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_agent_cannot_act_for_another_site(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="site-a-agent")
    creds = grpc.ssl_channel_credentials(root_certificates=cloud.ca.cert_pem,
                                         private_key=identity.key_pem(),
                                         certificate_chain=identity.cert_pem())
    async with aio.secure_channel(cloud.server.target, creds) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        with pytest.raises(aio.AioRpcError) as err:
            await stub.UploadReadings(pb.ReadingsBatch(site_id=cloud.site_b, batch_id="evil",
                                                       payload_json=b"{}"), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "may not act for site" in (err.value.details() or "")
        with pytest.raises(aio.AioRpcError):
            await stub.UploadInventory(pb.Inventory(site_id=cloud.site_b), timeout=5)
    assert not any(b == "evil" for _, b, _ in cloud.recorder.readings)


async def test_unknown_method_is_refused(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="unknown-method")
    creds = grpc.ssl_channel_credentials(root_certificates=cloud.ca.cert_pem,
                                         private_key=identity.key_pem(),
                                         certificate_chain=identity.cert_pem())
    async with aio.secure_channel(cloud.server.target, creds) as ch:
        call = ch.unary_unary("/printgate.agent.v1.AgentChannel/ExecShell")
        with pytest.raises(aio.AioRpcError) as err:
            await call(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        call = ch.unary_unary("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        with pytest.raises(aio.AioRpcError) as err:
            await call(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_revoked_agent_is_cut_within_seconds_and_cannot_reconnect(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="to-revoke")
    ch = GrpcChannel(cloud.server.target, identity)
    await ch.connect()
    try:
        await ch.wait_connected(10)
        assert cloud.hub.is_online(identity.agent_id)
        # revoked by another process (the portal): only the store changes
        async with cloud.db.transaction() as s:
            await channel_store.revoke_agent(s, identity.agent_id, reason="host stolen")
        await eventually(lambda: not cloud.hub.is_online(identity.agent_id), timeout=3)
        await eventually(lambda: ch.state == "refused", timeout=3)
        with pytest.raises(AccessDenied, match="revoked"):
            await ch.upload_readings("after-revoke", b"{}", deadline_s=5)
        with pytest.raises(AgentUnavailable):
            await cloud.hub.send(identity.agent_id, pb.Ping(nonce="x"), ttl_s=10)
    finally:
        await ch.aclose()


async def test_command_reaches_agent_over_grpc_stream(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="cmd-grpc")
    async with GrpcChannel(cloud.server.target, identity) as ch:
        await ch.wait_connected(10)
        sent = await cloud.hub.send(identity.agent_id, pb.CloseTunnel(session_id="s1", reason="done"), ttl_s=30)
        commands = ch.commands()
        got = await __import__("asyncio").wait_for(anext(commands), 5)
        assert got.id == sent and got.kind == "close_tunnel" and got.channel == "grpc"
        assert got.command.close_tunnel.session_id == "s1"
        await ch.report_result(got.id, ok=True)
    await eventually(lambda: any(r.command_id == sent for _, r in cloud.recorder.results))
    await eventually(lambda: (identity.agent_id, False) in cloud.recorder.presence)
    assert (identity.agent_id, True) in cloud.recorder.presence


async def test_certificate_renewal_keeps_the_key_and_channel_working(cloud: Cloud) -> None:
    identity = await cloud.enrol(name="renew")
    old_cert, old_key = identity.cert_pem(), identity.key_pem()
    async with GrpcChannel(cloud.server.target, identity) as ch:
        await ch.wait_connected(10)
        renewed = await ch.renew_certificate()
        assert renewed.cert_pem() != old_cert and renewed.key_pem() == old_key
        await ch.wait_connected(10)
        await ch.upload_readings("after-renewal", b"{}", deadline_s=10)
    async with cloud.db.session() as s:
        assert len(await channel_store.certificates_of(s, identity.agent_id)) == 2


async def test_guessing_from_an_address_does_not_lock_out_a_valid_token(cloud: Cloud) -> None:
    from gateway.channel.denials import DenialTally
    from gateway.channel.enrolment import BackOff, EnrolmentThrottle
    from gateway.channel.grpc_server import AgentChannelServer
    from lab.ports import free_tcp_port
    from printgate.testing.audit import RecordingAuditSink

    throttle = EnrolmentThrottle(per_address=BackOff(free=3, base_s=60), per_token=BackOff(free=3, base_s=60))
    refusals = RecordingAuditSink()
    denials = DenialTally(refusals)
    server = AgentChannelServer("127.0.0.1", free_tcp_port(), ca=cloud.ca, db=cloud.db, audit=cloud.audit,
                                hub=cloud.hub, handlers=cloud.recorder.handlers(),
                                enrol_port=free_tcp_port(), enrol_throttle=throttle, denials=denials)
    async with server:
        for i in range(3):
            with pytest.raises(EnrolmentFailed, match="UNAUTHENTICATED"):
                await enroll(server.enrol_target, f"pgenrol_guess{i}", cloud.tmp / f"guess{i}",
                             ca_cert_pem=cloud.ca.cert_pem)
        for i in range(20):  # the address is backed off: guesses are not even checked
            with pytest.raises(EnrolmentFailed, match="RESOURCE_EXHAUSTED"):
                await enroll(server.enrol_target, f"pgenrol_{i:016x}_guess", cloud.tmp / f"more{i}",
                             ca_cert_pem=cloud.ca.cert_pem)
        # a legitimate agent behind the same address still enrols with its valid token
        identity = await enroll(server.enrol_target, await cloud.token(), cloud.tmp / "guess-valid",
                                ca_cert_pem=cloud.ca.cert_pem)
        assert identity.agent_id.startswith("agt-")
        # guessing the secret of a known token is backed off per token
        target = await cloud.token()
        known_id = target[:len("pgenrol_") + 16]
        for i in range(3):
            with pytest.raises(EnrolmentFailed, match="UNAUTHENTICATED"):
                await enroll(server.enrol_target, f"{known_id}_wrong{i}", cloud.tmp / f"secret{i}",
                             ca_cert_pem=cloud.ca.cert_pem)
        with pytest.raises(EnrolmentFailed, match="RESOURCE_EXHAUSTED"):
            await enroll(server.enrol_target, f"{known_id}_wrong9", cloud.tmp / "secret9",
                         ca_cert_pem=cloud.ca.cert_pem)
        # while other valid tokens keep working from that address
        await enroll(server.enrol_target, await cloud.token(), cloud.tmp / "guess-valid-2",
                     ca_cert_pem=cloud.ca.cert_pem)
    await denials.flush()  # 27 refusals: one audit record per reason
    assert sorted((e.type, e.details["reason"], e.details["count"]) for e in refusals.events) == [
        ("agent.rpc.denied", "enrolment_throttled", 21), ("agent.rpc.denied", "token_invalid", 6)]


async def _refusal_events(cloud: Cloud, agent_id: str) -> list:  # type: ignore[type-arg]
    return [e for e in await cloud.audit.events()
            if e.type == "agent.relay_channel_refused" and e.details.get("agent_id") == agent_id]


async def test_relay_refusals_reported_by_the_runtime_are_audited_at_once(cloud: Cloud) -> None:
    from agent.runtime import AgentRuntime

    identity = await cloud.enrol(name="refusals")

    async def nothing_found() -> list:  # type: ignore[type-arg]
        return []

    async def no_tunnels(*_args: object) -> object:
        raise AssertionError("no tunnel is opened in this test")

    async with GrpcChannel(cloud.server.target, identity) as ch:
        runtime = AgentRuntime(channel=ch, discover=nothing_found, open_tunnel=no_tunnels,  # type: ignore[arg-type]
                               heartbeat_s=3600)  # only a refusal can bring the next heartbeat
        session = await make_session(cloud.db, identity.agent_id, identity.site_id)
        async with runtime:
            await eventually(lambda: ch.state == "connected")
            runtime.relay_refused(session, "direct-tcpip", "to 10.0.0.9:445 from relay")
            runtime.relay_refused(session, "session", "")
            events = []
            for _ in range(100):
                events = await _refusal_events(cloud, identity.agent_id)
                if len(events) == 2:
                    break
                await asyncio.sleep(0.05)
    assert [(e.details["kind"], e.session_id, e.outcome) for e in events] == [
        ("direct-tcpip", session, "denied"), ("session", session, "denied"),
    ]
    assert "10.0.0.9:445" in events[0].details["detail"]


async def test_an_agent_cannot_flood_the_audit_trail_with_refusals(cloud: Cloud) -> None:
    """Own-session refusals: the first 20 per agent and window one by one, the rest in one record."""
    identity = await cloud.enrol(name="flood")
    session = await make_session(cloud.db, identity.agent_id, identity.site_id)
    flood = [pb.RelayRefusal(session_id=session, kind="x" * 200, detail="d" * 5000) for _ in range(30)]
    async with GrpcChannel(cloud.server.target, identity) as ch:
        for _ in range(10):
            await ch.heartbeat(relay_refusals=flood)
    await cloud.server.denials.flush()
    events = await _refusal_events(cloud, identity.agent_id)
    single = [e for e in events if "count" not in e.details]
    aggregated = [e for e in events if "count" in e.details]
    assert len(single) == 20
    assert all(len(e.details["kind"]) <= 64 and len(e.details["detail"]) <= 300 for e in single)
    assert single[0].session_id == session
    assert [(e.details["reason"], e.details["count"]) for e in aggregated] == [("relay_refusals_over_budget", 280)]
