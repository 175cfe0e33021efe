"""Another gateway node beside a running one (issue 18): a ``printgate serve`` process on the same
database and shared keys, its own ports and data directory; for the cross-node tests and
``benchmarks/dwa_setup.py --through-nodes``."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from lab.ports import free_tcp_port

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


@dataclass(frozen=True)
class ServedNode:
    node_id: str
    portal_url: str
    proxy_port: int
    log: Path


def write_node_config(base: Path, node_id: str, database_url: str, ports: Sequence[int], *,
                      log_level: str = "warning", gateway_extra: str = "") -> Path:
    """``<base>/<node_id>.toml`` for one ``printgate serve`` node on loopback: ``ports`` are its portal,
    relay, proxy, gRPC and enrolment ports; its data directory is ``<base>/<node_id>``."""
    portal, relay, proxy, grpc, enrol = ports
    data = base / node_id
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = base / f"{node_id}.toml"
    config.write_text(f"""
database_url = "{database_url}"
log_level = "{log_level}"
[portal]
host = "127.0.0.1"
port = {portal}
public_url = "http://127.0.0.1:{portal}"
secret_key = "{secrets.token_urlsafe(48)}"
[gateway]
relay_port = {relay}
proxy_port = {proxy}
grpc_port = {grpc}
enrol_port = {enrol}
firewall = "inprocess"
data_dir = "{data}"
node_id = "{node_id}"
{gateway_extra}
""")
    return config


@asynccontextmanager
async def node_served(base: Path, *, node_id: str, database_url: str, key_dir: Path,
                      extra_gateway: str = "", start_timeout_s: float = 60.0) -> AsyncIterator[ServedNode]:
    """``printgate serve`` as ``node_id`` until the block ends (SIGTERM, then SIGKILL)."""
    ports = [free_tcp_port() for _ in range(5)]
    portal, proxy = ports[0], ports[2]
    config = write_node_config(base, node_id, database_url, ports,
                               gateway_extra=f'key_dir = "{key_dir}"\n{extra_gateway}')
    log = base / f"{node_id}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([PRINTGATE, "serve", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,  # noqa: ASYNC220 (returns at once)
                                env={**os.environ, "PRINTGATE_LOG_JSON": "false"}, start_new_session=True)
    url = f"http://127.0.0.1:{portal}"
    try:
        deadline = time.monotonic() + start_timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                try:
                    if (await client.get(url + "/login")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"node {node_id} did not start: {log.read_text()[-3000:]}")
                await asyncio.sleep(0.1)
        yield ServedNode(node_id, url, proxy, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
