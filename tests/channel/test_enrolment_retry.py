"""Enrolment survives a lost answer: the real `printgate agent enroll` process is killed, or
fails to save, after the gateway redeemed its token; the retry with the same token enrols
the same agent (same key), while another key presenting the used token is refused and
audited. On both database backends, against a real mTLS gRPC enrolment server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from agent.channel.enroll import EnrolledIdentity
from gateway.channel.ca import AgentCA
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.store import channel as channel_store
from printgate.store.db import Database
from printgate.store.models.channel import AgentCertificateRow, EnrolmentTokenRow
from printgate.testing.audit import ReadableAuditLog
from tests.channel.conftest import Recorder, make_tenancy

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


@dataclass
class Gateway:
    db: Database
    server: AgentChannelServer
    audit: ReadableAuditLog
    ca_file: Path
    site: str

    async def token(self) -> str:
        async with self.db.transaction() as s:
            return await channel_store.create_enrolment_token(
                s, self.site, ttl=timedelta(minutes=10), created_by="admin@dealer.test")

    async def used_by(self, token: str) -> str | None:
        async with self.db.session() as s:
            row = (await s.execute(select(EnrolmentTokenRow).where(
                EnrolmentTokenRow.token_hash == channel_store.hash_token(token)))).scalar_one()
            return row.used_by_agent


@pytest.fixture
async def gateway(db: Database, tmp_path: Path) -> AsyncIterator[Gateway]:
    site, _ = await make_tenancy(db)
    ca = AgentCA.load_or_create(tmp_path / "ca")
    ca_file = tmp_path / "agent-ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    audit = ReadableAuditLog(db, None)
    server = AgentChannelServer("127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=audit,
                                hub=AgentHub(ca.command_key), handlers=Recorder().handlers(),
                                enrol_port=free_tcp_port(), facts=ChannelFacts(), revocation_poll_s=5.0)
    await server.start()
    try:
        yield Gateway(db, server, audit, ca_file, site)
    finally:
        await server.aclose()


async def run_enrol(gw: Gateway, token: str, data_dir: Path, *, target: str | None = None,
                    ) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PRINTGATE, "agent", "enroll", "--url", target or gw.server.enrol_target, "--token", token,
        "--data-dir", str(data_dir), "--ca-cert", str(gw.ca_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def enrol_done(gw: Gateway, token: str, data_dir: Path) -> tuple[int, str]:
    proc = await run_enrol(gw, token, data_dir)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


def key_matches_certificate(data_dir: Path) -> bool:
    key = serialization.load_pem_private_key((data_dir / "agent.key").read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate((data_dir / "agent.crt").read_bytes())
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


async def assert_enrolled_as_token_agent(gw: Gateway, token: str, data_dir: Path) -> str:
    identity = EnrolledIdentity.load(data_dir)
    assert identity.agent_id == await gw.used_by(token)
    assert key_matches_certificate(data_dir)
    assert not (data_dir / "agent.key.pending").exists()
    async with gw.db.session() as s:
        serials = (await s.execute(select(AgentCertificateRow.serial).where(
            AgentCertificateRow.agent_id == identity.agent_id))).scalars().all()
    assert len(serials) == 2  # the lost answer's certificate and the retry's, for one agent
    return identity.agent_id


class AnswerCutter:
    """A TCP relay in front of the enrolment port that lets the TLS and HTTP/2 set-up through
    but, the moment the gateway answers after it committed the token's redemption, SIGKILLs
    the agent process instead of forwarding the answer (the answer is lost for good)."""

    def __init__(self, gw: Gateway, token: str) -> None:
        self.gw, self.token = gw, token
        self.victim: asyncio.subprocess.Process | None = None
        self.killed = False
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.gw.server.enrol_port)

        async def up() -> None:
            while data := await cr.read(65536):
                sw.write(data)
                await sw.drain()

        async def down() -> None:
            while data := await sr.read(65536):
                if await self.gw.used_by(self.token) is not None:  # answered after the commit
                    assert self.victim is not None
                    self.victim.send_signal(signal.SIGKILL)
                    self.killed = True
                    return
                cw.write(data)
                await cw.drain()

        tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        for w in (cw, sw):
            w.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


async def test_agent_killed_before_it_got_the_answer_enrols_on_retry(gateway: Gateway, tmp_path: Path) -> None:
    token = await gateway.token()
    data = tmp_path / "agent"
    cutter = AnswerCutter(gateway, token)
    target = await cutter.start()
    try:
        proc = await run_enrol(gateway, token, data, target=target)
        cutter.victim = proc
        await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await cutter.aclose()
    assert cutter.killed and proc.returncode == -signal.SIGKILL
    assert await gateway.used_by(token) is not None  # the gateway redeemed the token ...
    assert not (data / "identity.json").exists()  # ... the agent never saved the answer

    code, out = await enrol_done(gateway, token, data)
    assert code == 0, out
    agent_id = await assert_enrolled_as_token_agent(gateway, token, data)
    enrolled = [e for e in await gateway.audit.events() if e.type == "agent.enrolment"
                and e.details.get("agent_id") == agent_id]
    assert [e.details["retry"] for e in enrolled] == [False, True]


async def test_agent_that_could_not_save_enrols_on_retry_and_another_key_is_refused(
        gateway: Gateway, tmp_path: Path) -> None:
    token = await gateway.token()
    data = tmp_path / "agent"
    data.mkdir(mode=0o700)
    for blocker in ("identity.json", "identity.json.tmp"):  # saving the identity fails after the answer
        (data / blocker).mkdir()
    code, out = await enrol_done(gateway, token, data)
    assert code != 0, out
    assert await gateway.used_by(token) is not None
    for blocker in ("identity.json", "identity.json.tmp"):
        (data / blocker).rmdir()

    code, out = await enrol_done(gateway, token, data)
    assert code == 0, out
    agent_id = await assert_enrolled_as_token_agent(gateway, token, data)

    thief = tmp_path / "elsewhere"  # the same token from another host (another key)
    code, out = await enrol_done(gateway, token, thief)
    assert code == 2 and "another key" in out, out
    assert not (thief / "identity.json").exists()
    refused = [e for e in await gateway.audit.events()
               if e.type == "agent.enrolment" and e.details.get("reason") == "enrolment_key_mismatch"]
    assert len(refused) == 1 and agent_id in refused[0].details["detail"]
    assert EnrolledIdentity.load(data).agent_id == agent_id  # the real agent is untouched
