"""A real network cut (nftables drop in a netns the test creates) while readings flow."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.channel.broker import ROOT
from tests.channel.conftest import Cloud, eventually

pytestmark = pytest.mark.root


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str, str, str]]:
    """(gateway ns, agent ns, gateway-side address, agent-side address) joined by a veth."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        if os.environ.get("CI"):
            raise RuntimeError("network-cut test needs root, iproute2 and nftables")
        pytest.skip("needs root, ip and nft")
    tag = secrets.token_hex(3)
    gw, ag = f"pgc-gw-{tag}", f"pgc-ag-{tag}"
    octet = int(tag[:2], 16) % 250 + 1
    gw_ip, ag_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
    sh("ip", "netns", "add", gw)
    sh("ip", "netns", "add", ag)
    try:
        sh("ip", "link", "add", f"pgg{tag}", "type", "veth", "peer", "name", f"pga{tag}")
        sh("ip", "link", "set", f"pgg{tag}", "netns", gw)
        sh("ip", "link", "set", f"pga{tag}", "netns", ag)
        sh("ip", "-n", gw, "addr", "add", f"{gw_ip}/30", "dev", f"pgg{tag}")
        sh("ip", "-n", ag, "addr", "add", f"{ag_ip}/30", "dev", f"pga{tag}")
        for ns, dev in ((gw, f"pgg{tag}"), (ag, f"pga{tag}")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield gw, ag, gw_ip, ag_ip
    finally:
        subprocess.run(["ip", "netns", "del", ag], capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "del", gw], capture_output=True, timeout=20)


def listen_in_netns(ns: str, address: str) -> socket.socket:
    """A listening socket created inside ``ns`` (setns affects only the calling thread)."""
    box: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            with open(f"/run/netns/{ns}") as f:
                os.setns(f.fileno(), os.CLONE_NEWNET)
            s = socket.socket()
            s.bind((address, 0))
            s.listen(64)
            s.setblocking(False)
            box.append(s)
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=work)  # the thread dies with it; the socket stays in ns
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


AGENT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from agent.channel.backoff import Backoff
    from agent.channel.enroll import EnrolledIdentity
    from agent.channel.grpc_client import GrpcChannel
    async def main():
        ident = EnrolledIdentity.load(Path(sys.argv[1]))
        ch = GrpcChannel(sys.argv[2], ident, server_name="localhost", rpc_timeout=3,
                         backoff=Backoff(initial=0.2, maximum=2.0))
        await ch.connect(); await ch.wait_connected(15)
        print("connected", flush=True)
        for i in range(40):
            await ch.upload_readings(f"cut-{i}", b"{}", deadline_s=90)
            print(f"acked cut-{i}", flush=True)
            await asyncio.sleep(0.1)
        await ch.wait_connected(30)
        print(f"done reconnects={ch.reconnects}", flush=True)
        await ch.aclose()
    asyncio.run(main())
""")


async def test_network_cut_agent_reconnects_and_each_reading_arrives_once(
    cloud: Cloud, netns_pair: tuple[str, str, str, str]
) -> None:
    gw_ns, ag_ns, gw_ip, _ = netns_pair
    identity = await cloud.enrol(name="net-cut")
    listener = listen_in_netns(gw_ns, gw_ip)
    port = listener.getsockname()[1]

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", cloud.server.port)
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    server = await asyncio.start_server(forward, sock=listener)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ag_ns, sys.executable, "-c", AGENT, str(identity.data_dir), f"{gw_ip}:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=str(ROOT))
    assert proc.stdout is not None
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            lines.append(line.decode().strip())

    reader_task = asyncio.create_task(read())
    try:
        await eventually(lambda: "connected" in lines, timeout=20)
        mine = lambda: [b for a, b, _ in cloud.recorder.readings if a == identity.agent_id]  # noqa: E731
        await eventually(lambda: len(mine()) >= 5, timeout=20)
        subprocess.run(["ip", "netns", "exec", ag_ns, "nft", "-f", "-"], check=True, timeout=10,
                       input=b"table inet cut {\n chain out { type filter hook output priority 0; policy drop; }\n"
                             b" chain inp { type filter hook input priority 0; policy drop; }\n}\n")
        during = len(mine())
        await asyncio.sleep(12)  # longer than keepalive (5 s) + ping timeout (3 s): the stream dies
        assert len(mine()) <= during + 1  # nothing gets through while cut
        sh("ip", "netns", "exec", ag_ns, "nft", "delete", "table", "inet", "cut")
        await asyncio.wait_for(proc.wait(), 120)
        await reader_task
        counts = Counter(mine())
        assert set(counts) == {f"cut-{i}" for i in range(40)} and max(counts.values()) == 1
        assert any(line.startswith("done") for line in lines)
        done = next(line for line in lines if line.startswith("done"))
        assert int(done.split("=")[1]) >= 1, done
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader_task.cancel()
        server.close()
