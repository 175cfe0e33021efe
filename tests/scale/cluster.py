"""Several real ``printgate serve`` nodes behind a real HAProxy on loopback (issue 18): each node on
its own loopback address (127.0.0.1N) with the same ports, like nodes on their own hosts; HAProxy
on 127.0.0.1 with the shipped ``deploy/haproxy/haproxy.cfg`` and the backends and host map
``printgate nodes haproxy`` generates from the registry."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lab.ports import free_tcp_port
from printgate.store import nodes
from printgate.store.db import Database

ROOT = Path(__file__).resolve().parents[2]
PRINTGATE = str(Path(sys.executable).with_name("printgate"))
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
# the keys every node must share (docs/scale-out.md "Keys"): copied from the first node's data dir
SHARED = ("audit-signing.key", "audit-public.pem", "audit-keys.json", "keys.json", "agent-ca", "relay_ssh_ca",
          "relay_host_key", "dwa-ca", "vault-master.key")


@dataclass
class Ports:
    """The same on every node (like nodes on their own hosts); relay ports are free ports per node."""

    portal: int = field(default_factory=free_tcp_port)
    proxy: int = field(default_factory=free_tcp_port)
    grpc: int = field(default_factory=free_tcp_port)
    enrol: int = field(default_factory=free_tcp_port)


@dataclass
class LbPorts:
    portal: int = field(default_factory=free_tcp_port)
    proxy: int = field(default_factory=free_tcp_port)
    channel: int = field(default_factory=free_tcp_port)
    enrol: int = field(default_factory=free_tcp_port)


@dataclass
class NodeProc:
    index: int
    node_id: str
    ip: str
    config: Path
    data: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen([PRINTGATE, "serve", "--config", str(self.config)], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PRINTGATE_LOG_JSON": "false"})
        finally:
            out.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class Cluster:
    def __init__(self, base: Path, url: str, *, count: int = 3, lease_s: float = 3.0, renew_s: float = 0.5,
                 drain_grace_s: float = 2.0, loss_grace_s: float = 10.0) -> None:
        self.base, self.url = base, url
        self.ports, self.lb = Ports(), LbPorts()
        self.secret = secrets.token_urlsafe(48)  # the portal's secret_key: shared by every node
        self.lease_s, self.renew_s = lease_s, renew_s
        self.nodes: list[NodeProc] = []
        for i in range(1, count + 1):
            ip = f"127.0.0.{10 + i}"
            node_id = f"node-{i}"
            data = base / node_id
            data.mkdir(mode=0o700, parents=True, exist_ok=True)
            config = base / f"{node_id}.toml"
            config.write_text(f"""
database_url = "{url}"
log_level = "info"
[portal]
host = "{ip}"
port = {self.ports.portal}
public_url = "http://127.0.0.1:{self.lb.portal}"
secret_key = "{self.secret}"
[gateway]
relay_host = "{ip}"
relay_port = {free_tcp_port()}
proxy_host = "{ip}"
proxy_port = {self.ports.proxy}
proxy_public_port = {self.lb.proxy}
grpc_host = "{ip}"
grpc_port = {self.ports.grpc}
enrol_port = {self.ports.enrol}
firewall = "inprocess"
data_dir = "{data}"
node_id = "{node_id}"
host_routing = true
node_lease_seconds = {lease_s}
node_renew_seconds = {renew_s}
drain_grace_seconds = {drain_grace_s}
agent_loss_grace_seconds = {loss_grace_s}
audit_checkpoint_seconds = 1
""")
            self.nodes.append(NodeProc(i, node_id, ip, config, data, base / f"{node_id}.log"))
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.map_dir = base / "haproxy"
        self.lb_addr = "127.0.0.1"  # where HAProxy's frontends listen

    def node(self, node_id: str) -> NodeProc:
        return next(n for n in self.nodes if n.node_id == node_id)

    def portal_of(self, node: NodeProc) -> str:
        return f"http://{node.ip}:{self.ports.portal}"

    @property
    def lb_portal(self) -> str:
        return f"http://{self.lb_addr}:{self.lb.portal}"

    @property
    def lb_channel(self) -> str:
        return f"{self.lb_addr}:{self.lb.channel}"

    @property
    def lb_enrol(self) -> str:
        return f"{self.lb_addr}:{self.lb.enrol}"

    def share_keys(self) -> None:
        first = self.nodes[0].data
        for node in self.nodes[1:]:
            for name in SHARED:
                src, dst = first / name, node.data / name
                if src.is_dir():
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                elif src.exists():
                    shutil.copy2(src, dst)

    async def wait_state(self, db: Database, node: NodeProc, state: str, timeout: float = 60) -> None:
        async def reached() -> bool:
            try:
                async with db.session() as s:
                    row = await nodes.get_node(s, node.node_id)
            except Exception:  # the first node has not migrated the schema yet
                return False
            return row is not None and row.state == state
        await until(f"{node.node_id} {state}", reached, timeout, node)

    async def wait_serving(self, db: Database, node: NodeProc, timeout: float = 60) -> None:
        """Registered and serving: its portal answers ``/readyz`` (SIGTERM is handled from then on)."""
        await self.wait_state(db, node, nodes.ACTIVE, timeout)

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{self.portal_of(node)}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False
        await until(f"{node.node_id} serving", ready, timeout, node)

    def haproxy_map(self) -> str:
        out = subprocess.run([PRINTGATE, "nodes", "haproxy", "--out", str(self.map_dir), "--database-url", self.url,
                              "--portal-port", str(self.ports.portal), "--enrol-port", str(self.ports.enrol)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def start_haproxy(self) -> None:
        env = {**os.environ, "PRINTGATE_LB_ADDR": self.lb_addr,
               "PRINTGATE_LB_PORTAL_PORT": str(self.lb.portal), "PRINTGATE_LB_PROXY_PORT": str(self.lb.proxy),
               "PRINTGATE_LB_CHANNEL_PORT": str(self.lb.channel), "PRINTGATE_LB_ENROL_PORT": str(self.lb.enrol),
               "PRINTGATE_HAPROXY_DIR": str(self.map_dir)}
        log = (self.base / "haproxy.log").open("ab")
        try:
            self.haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(HAPROXY_CFG), "-f",
                                             str(self.map_dir / "nodes.cfg")], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.kill()
            self.haproxy.wait(10)


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float,
                node: NodeProc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        if node is not None and node.proc is not None and node.proc.poll() is not None and \
                node.proc.returncode not in (0,):
            raise AssertionError(f"{what}: {node.node_id} ended ({node.proc.returncode}): {node.tail()}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s; {node.tail() if node else ''}")
