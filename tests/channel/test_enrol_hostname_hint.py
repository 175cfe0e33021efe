"""Issue 18 finding 3: ``printgate agent enroll --url <a name the gateway's certificate lacks>`` (a
load balancer's name not in ``[channel] public_names``) says what to set, not only gRPC's
"Hostname Verification Check failed"."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gateway.channel.ca import AgentCA
from gateway.channel.enrolment import ChannelFacts
from gateway.channel.grpc_server import AgentChannelServer
from gateway.channel.hub import AgentHub
from lab.ports import free_tcp_port
from printgate.store.db import Database
from printgate.testing.audit import ReadableAuditLog
from tests.channel.conftest import Recorder

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


async def test_a_name_missing_from_the_certificate_gets_the_public_names_hint(db: Database, tmp_path: Path) -> None:
    ca = AgentCA.load_or_create(tmp_path / "ca")
    (tmp_path / "agent-ca.crt").write_bytes(ca.cert_pem)
    server = AgentChannelServer("127.0.0.1", free_tcp_port(), ca=ca, db=db, audit=ReadableAuditLog(db, None),
                                hub=AgentHub(ca.command_key), handlers=Recorder().handlers(),
                                enrol_port=free_tcp_port(), facts=ChannelFacts(), revocation_poll_s=5.0,
                                server_names=["gw.example.com"])  # not 127.0.0.1: the address used below
    await server.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            PRINTGATE, "agent", "enroll", "--url", server.enrol_target, "--token", "pgenrol_x",
            "--data-dir", str(tmp_path / "agent"), "--ca-cert", str(tmp_path / "agent-ca.crt"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await server.aclose()
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Hostname Verification" in text and "[channel] public_names" in text and "'127.0.0.1'" in text, text
