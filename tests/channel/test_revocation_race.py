"""Revocation racing renewal, on SQLite and the real PostgreSQL: many threads renew (each with
the newest certificate it got, as a thief would) while the agent is revoked from the store (the
portal's path). No certificate may come out of it that still works."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from agent.channel.enroll import enroll, make_csr
from gateway.channel.ca import AgentCA
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.store import channel as channel_store
from printgate.store.db import Database
from printgate.testing.audit import ReadableAuditLog
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc
from tests.channel.conftest import Recorder, make_tenancy

THREADS = 8


def _renew_until(stop: threading.Event, target: str, ca_pem: bytes, key_pem: bytes, cert_pem: bytes,
                 issued: list[bytes], lock: threading.Lock) -> None:
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    request = pb.RenewRequest(csr_pem=make_csr(key, "renewer"))
    while not stop.is_set():
        creds = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem,
                                             certificate_chain=cert_pem)
        with grpc.secure_channel(target, creds) as ch:
            try:
                answer = pb_grpc.AgentChannelStub(ch).RenewCertificate(request, timeout=10)
            except grpc.RpcError:
                continue  # refused (or busy): keep trying with the newest certificate, until told to stop
        cert_pem = answer.client_cert_pem
        with lock:
            issued.append(cert_pem)


async def test_renewals_racing_a_revocation_leave_no_working_certificate(db: Database, tmp_path: Path) -> None:
    site, _ = await make_tenancy(db)
    ca = AgentCA.load_or_create(tmp_path / "ca")
    audit = ReadableAuditLog(db, None)
    server = AgentChannelServer("127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=audit,
                                hub=AgentHub(ca.command_key), handlers=Recorder().handlers(),
                                enrol_port=free_tcp_port(), revocation_poll_s=0.2)
    async with server:
        async with db.transaction() as s:
            token = await channel_store.create_enrolment_token(s, site, ttl=channel_store.MAX_TOKEN_TTL,
                                                               created_by="admin")
        identity = await enroll(server.enrol_target, token, tmp_path / "agent", ca_cert_pem=ca.cert_pem)
        stop, lock, issued = threading.Event(), threading.Lock(), []  # type: ignore[var-annotated]
        renewers = [asyncio.create_task(asyncio.to_thread(
            _renew_until, stop, server.target, ca.cert_pem, identity.key_pem(), identity.cert_pem(), issued, lock))
            for _ in range(THREADS)]
        try:
            for _ in range(200):  # renewals are flowing before the revocation
                if len(issued) >= THREADS:
                    break
                await asyncio.sleep(0.05)
            async with db.transaction() as s:
                await channel_store.revoke_agent(s, identity.agent_id, reason="host stolen")
            before_revocation = len(issued)
            await asyncio.sleep(1.5)  # renewals keep hammering the revoked agent
        finally:
            stop.set()
            await asyncio.gather(*renewers)
        assert before_revocation >= THREADS  # the race was on
        async with db.session() as s:
            certs = await channel_store.certificates_of(s, identity.agent_id)
        assert [c.serial for c in certs if c.revoked_at is None] == []
        for cert_pem in [identity.cert_pem(), *issued]:
            creds = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem, private_key=identity.key_pem(),
                                                 certificate_chain=cert_pem)
            async with aio.secure_channel(server.target, creds) as ch:
                try:
                    await pb_grpc.AgentChannelStub(ch).Heartbeat(pb.HeartbeatRequest(), timeout=5)
                except aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
                else:
                    raise AssertionError(f"a certificate issued around the revocation still works "
                                         f"({len(issued)} issued, {before_revocation} before the revocation)")
        # the refused renewals (the threads retried without pause) are a handful of audit records
        await server.denials.flush()
        denied = [e for e in await audit.events()
                  if e.type == "agent.rpc.denied" and e.details.get("agent_id") == identity.agent_id]
        assert sum(int(e.details["count"]) for e in denied) >= THREADS
        assert len(denied) <= 6, [(e.details["reason"], e.details["count"]) for e in denied]
