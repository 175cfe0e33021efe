"""The agent reaches the relay through a real HTTP CONNECT proxy (tinyproxy)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent.tunnel import open_tunnel
from lab.ports import free_tcp_port
from printgate.errors import TunnelError
from tests.relay.conftest import Ews, RelayEnv, need_tool

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
async def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Path]]:
    exe = need_tool("tinyproxy")
    # tinyproxy drops to nobody: its log directory must be reachable by nobody
    d = Path(tempfile.mkdtemp(prefix="printgate-tinyproxy-"))
    d.chmod(0o777)
    port = free_tcp_port()
    conf = d / "tinyproxy.conf"
    conf.write_text(
        f"User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 60\nLogLevel Info\n"
        f'LogFile "{d}/tinyproxy.log"\nPidFile "{d}/tinyproxy.pid"\nMaxClients 20\nAllow 127.0.0.1\n'
    )
    proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", d / "tinyproxy.log"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        shutil.rmtree(d, ignore_errors=True)


async def test_tunnel_works_through_http_connect_proxy(
    relay_env: RelayEnv, ews: Ews, tinyproxy: tuple[str, Path]
) -> None:
    proxy_url, proxy_log = tinyproxy
    sid, cred = await relay_env.new_session()
    tunnel = await open_tunnel(
        "127.0.0.1", relay_env.relay.port, host_key_fingerprint=relay_env.relay.host_key_fingerprint,
        credential_private_key=cred.private_key, credential_certificate=cred.certificate,
        session_id=sid, target=ews.target, verify=None, http_proxy=proxy_url,
    )
    try:
        host, port = await relay_env.relay.wait_forward(sid, timeout=5)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{host}:{port}/big")).status_code == 200
        assert f"CONNECT 127.0.0.1:{relay_env.relay.port}" in proxy_log.read_text()
    finally:
        await tunnel.aclose()
        await relay_env.relay.end_session(sid, "test over")


async def test_proxy_refusal_is_a_clear_tunnel_error(relay_env: RelayEnv, ews: Ews) -> None:
    sid, cred = await relay_env.new_session()
    dead = f"http://127.0.0.1:{free_tcp_port()}"
    with pytest.raises(TunnelError, match="cannot reach HTTP proxy"):
        await open_tunnel(
            "127.0.0.1", relay_env.relay.port, host_key_fingerprint=relay_env.relay.host_key_fingerprint,
            credential_private_key=cred.private_key, credential_certificate=cred.certificate,
            session_id=sid, target=ews.target, verify=None, http_proxy=dead,
        )
    await relay_env.relay.end_session(sid, "test over")
