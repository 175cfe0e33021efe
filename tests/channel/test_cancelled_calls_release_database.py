"""A client that cancels its calls mid-flight, or dies with calls open, must not leave the
gateway holding a database transaction (issue 12 follow-up, item 1).

On SQLite a pooled connection left inside its transaction keeps the one write lock for
ever: every later writer (heartbeats, portal sign-ins, the audit checkpoint) then waits
out ``busy_timeout`` and fails. The attack here is the tester's: 16 threads of real gRPC
clients calling ``RenewCertificate`` (a write transaction plus an audit append) and
dying abruptly, then rounds of 16 calls each cancelled by the client after 50 ms.
Afterwards the agent's next calls and any other writer must be answered promptly.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc import aio

from agent.channel.enroll import EnrolledIdentity, enroll, make_csr
from gateway.channel.ca import AgentCA
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.domain import AuditEventIn
from printgate.store import channel as channel_store
from printgate.store.db import Database
from printgate.testing.audit import ReadableAuditLog
from printgate.testing.database import migrated
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc
from tests.channel.conftest import Recorder, make_tenancy

PROMPT_S = 8.0  # far below the 30 s busy_timeout a wedged write lock makes writers wait

KILLED_CLIENT = textwrap.dedent("""
    import os, sys, threading, time
    import grpc
    from printgate.wire import agent_pb2 as pb, agent_pb2_grpc as pb_grpc
    target, ca, cert, key, csr = sys.argv[1], *(open(p, "rb").read() for p in sys.argv[2:6])
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    def worker():
        stub = pb_grpc.AgentChannelStub(grpc.secure_channel(target, creds))
        while True:
            try:
                stub.RenewCertificate(pb.RenewRequest(csr_pem=csr), timeout=10)
            except grpc.RpcError:
                pass
    for _ in range(16):
        threading.Thread(target=worker, daemon=True).start()
    time.sleep(float(sys.argv[6]))
    print("dying", flush=True)
    os._exit(1)
""")


class Gateway:
    def __init__(self, db: Database, ca: AgentCA, server: AgentChannelServer, tmp: Path) -> None:
        self.db, self.ca, self.server, self.tmp = db, ca, server, tmp

    async def agent(self, site: str) -> EnrolledIdentity:
        async with self.db.transaction() as s:
            token = await channel_store.create_enrolment_token(s, site, ttl=timedelta(minutes=10),
                                                             created_by="admin@dealer.test")
        return await enroll(self.server.enrol_target, token, self.tmp / "agent", ca_cert_pem=self.ca.cert_pem)


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with migrated(database_url) as db:
        await make_tenancy(db)
        ca = AgentCA.load_or_create(tmp_path / "ca")
        audit = ReadableAuditLog(db, None)
        server = AgentChannelServer(
            "127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=audit, hub=AgentHub(ca.command_key),
            handlers=Recorder().handlers(), enrol_port=free_tcp_port(),
            facts=ChannelFacts(relay_address="127.0.0.1:8422", relay_host_key_fingerprint="SHA256:test"))
        await server.start()
        try:
            yield Gateway(db, ca, server, tmp_path)
        finally:
            await server.aclose()


def _csr(identity: EnrolledIdentity) -> bytes:
    key = serialization.load_pem_private_key(identity.key_pem(), None)
    return make_csr(key, identity.agent_id)  # type: ignore[arg-type]


def _cancel_rounds(target: str, creds: grpc.ChannelCredentials, csr: bytes, rounds: int) -> int:
    """Rounds of 16 concurrent calls, each cancelled by the client after 50 ms (sync gRPC, own thread)."""
    cancelled = 0
    with grpc.secure_channel(target, creds) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        for _ in range(rounds):
            calls = [stub.RenewCertificate.future(pb.RenewRequest(csr_pem=csr), timeout=10) for _ in range(16)]
            calls += [stub.Heartbeat.future(pb.HeartbeatRequest(), timeout=10) for _ in range(4)]
            time.sleep(0.05)
            cancelled += sum(1 for c in calls if c.cancel())
            time.sleep(0.05)
    return cancelled


async def _answers_promptly(gw: Gateway, identity: EnrolledIdentity, creds: grpc.ChannelCredentials) -> None:
    async with aio.secure_channel(gw.server.target, creds) as ch:
        stub = pb_grpc.AgentChannelStub(ch)
        await stub.Heartbeat(pb.HeartbeatRequest(), timeout=PROMPT_S)
        await stub.RenewCertificate(pb.RenewRequest(csr_pem=_csr(identity)), timeout=PROMPT_S)
    # any other writer (a portal sign-in, the audit checkpoint) on a connection of its own
    async with Database(gw.db.url) as other:
        async with asyncio.timeout(PROMPT_S):
            await ReadableAuditLog(other, None).append(AuditEventIn(type="test.after_attack", actor="test"))
        assert await other.writable(timeout=2.0) is None


async def test_cancelled_and_dead_clients_leave_no_transaction_open(gateway: Gateway) -> None:
    identity = await gateway.agent("site-a")
    files = {name: gateway.tmp / name for name in ("ca.pem", "csr.pem")}
    files["ca.pem"].write_bytes(gateway.ca.cert_pem)
    files["csr.pem"].write_bytes(_csr(identity))
    creds = grpc.ssl_channel_credentials(root_certificates=gateway.ca.cert_pem, private_key=identity.key_pem(),
                                         certificate_chain=identity.cert_pem())

    # 1. a client process with 16 threads of calls open dies abruptly
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_CLIENT, gateway.server.target, str(files["ca.pem"]),
        str(identity.cert_path), str(identity.key_path), str(files["csr.pem"]), "2.0",
        stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and b"dying" in out
    # 2. rounds of calls the client cancels mid-flight
    cancelled = await asyncio.to_thread(_cancel_rounds, gateway.server.target, creds, _csr(identity), 40)
    assert cancelled > 0  # the attack really cancelled calls in flight

    await _answers_promptly(gateway, identity, creds)
