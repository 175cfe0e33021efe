"""Enrolment, gRPC and raw tunnels through a real tinyproxy (HTTP CONNECT, Basic auth)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.channel.enroll import enroll
from agent.channel.grpc_client import GrpcChannel
from agent.errors import EnrolmentFailed
from agent.proxy_connect import open_tunnel
from lab.ports import free_tcp_port
from printgate.errors import AgentUnavailable
from tests.channel.conftest import Cloud

USER, PASSWORD = "corp", "s3cret-proxy"


class Tinyproxy:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="printgate-tp-"))
        self.dir.chmod(0o777)
        self.port = free_tcp_port()
        (self.dir / "tinyproxy.conf").write_text(f"""
User nobody
Group nogroup
Port {self.port}
Listen 127.0.0.1
Timeout 60
LogLevel Connect
LogFile "{self.dir}/tinyproxy.log"
PidFile "{self.dir}/tinyproxy.pid"
MaxClients 50
Allow 127.0.0.1
BasicAuth {USER} {PASSWORD}
""")
        exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        self.proc = subprocess.Popen([exe, "-d", "-c", str(self.dir / "tinyproxy.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("tinyproxy did not start")

    @property
    def url(self) -> str:
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def connects_to(self, port: int) -> int:
        log = (self.dir / "tinyproxy.log").read_text(errors="replace")
        return log.count(f"CONNECT 127.0.0.1:{port}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[Tinyproxy]:
    if not (shutil.which("tinyproxy") or os.path.exists("/usr/bin/tinyproxy")):
        if os.environ.get("CI"):
            raise RuntimeError("tinyproxy missing (scripts/system-deps.sh installs it)")
        pytest.skip("tinyproxy not installed")
    tp = Tinyproxy()
    yield tp
    tp.close()


async def test_enrolment_and_grpc_work_through_an_authenticating_proxy(cloud: Cloud, tinyproxy: Tinyproxy) -> None:
    identity = await enroll(cloud.server.enrol_target, await cloud.token(), cloud.tmp / "via-proxy",
                            ca_cert_pem=cloud.ca.cert_pem, http_proxy=tinyproxy.url)
    assert tinyproxy.connects_to(cloud.server.enrol_port) >= 1
    async with GrpcChannel(cloud.server.target, identity, http_proxy=tinyproxy.url) as ch:
        await ch.wait_connected(10)
        await ch.upload_readings("proxied-1", b"{}", deadline_s=10)
    assert tinyproxy.connects_to(cloud.server.port) >= 1
    assert ("proxied-1" in [b for a, b, _ in cloud.recorder.readings if a == identity.agent_id])


async def test_proxy_without_credentials_refuses_enrolment(cloud: Cloud, tinyproxy: Tinyproxy) -> None:
    with pytest.raises(EnrolmentFailed):
        await enroll(cloud.server.enrol_target, await cloud.token(), cloud.tmp / "no-proxy-auth",
                     ca_cert_pem=cloud.ca.cert_pem, http_proxy=f"http://127.0.0.1:{tinyproxy.port}",
                     timeout=5)


async def test_raw_tunnel_through_proxy_reaches_target(tinyproxy: Tinyproxy) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello " + await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sock = await open_tunnel(tinyproxy.url, "127.0.0.1", port)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"ssh\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"hello ssh\n"
        writer.close()
        with pytest.raises(AgentUnavailable, match="407"):
            await open_tunnel(f"http://127.0.0.1:{tinyproxy.port}", "127.0.0.1", port)


async def test_mqtt_commands_flow_through_an_authenticating_proxy(cloud: Cloud, tinyproxy: Tinyproxy,
                                                                  broker, bridge) -> None:  # type: ignore[no-untyped-def]
    from agent.channel.command_guard import CommandGuard
    from agent.channel.mqtt_client import MqttChannel
    from printgate.wire import agent_pb2 as pb
    from tests.channel.conftest import eventually

    identity = await cloud.enrol(name="mqtt-via-proxy")
    ch = MqttChannel("127.0.0.1", broker.port, identity, http_proxy=tinyproxy.url,
                     guard=CommandGuard(identity.agent_id, identity.command_verify_key))
    async with ch:
        await ch.wait_connected(10)
        assert tinyproxy.connects_to(broker.port) >= 1
        await eventually(lambda: cloud.hub.channel_of(identity.agent_id) == "mqtt")
        sent = await cloud.hub.send(identity.agent_id, pb.Ping(nonce="via-proxy"), ttl_s=30)
        got = await asyncio.wait_for(anext(ch.commands()), 5)
        assert got.id == sent
