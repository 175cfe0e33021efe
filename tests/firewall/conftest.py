"""Network namespaces with veth pairs: a gateway host, a technician host and an attacker host."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lab.ports import free_tcp_port


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Lan:
    gw: str  # namespace names
    tech: str
    attacker: str
    gw_ip_tech: str  # gateway address as seen from the technician
    gw_ip_attacker: str
    tech_ip: str
    attacker_ip: str
    port: int  # the "proxy" port on the gateway

    def fetch(self, ns: str, host: str) -> str:
        """HTTP status seen from namespace ``ns`` ("000" when dropped/refused)."""
        r = sh("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
               "--connect-timeout", "2", "--max-time", "4", f"http://{host}:{self.port}/", check=False)
        return r.stdout.strip() or "000"


def _need_root() -> None:
    if os.geteuid() != 0 or subprocess.run(["which", "nft"], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            raise RuntimeError("nftables tests need root and nft under CI")
        pytest.skip("needs root and nft")


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    _need_root()
    tag = f"{os.getpid() % 100000:05d}"
    gw, tech, atk = f"pgw{tag}", f"pte{tag}", f"pat{tag}"
    created: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for ns in (gw, tech, atk):
            sh("ip", "netns", "add", ns)
            created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for peer, net, short in ((tech, "10.201.1", "t"), (atk, "10.201.2", "a")):
            a, b = f"pv{short}{tag}g", f"pv{short}{tag}p"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", gw)
            sh("ip", "link", "set", b, "netns", peer)
            sh("ip", "-n", gw, "addr", "add", f"{net}.1/24", "dev", a)
            sh("ip", "-n", peer, "addr", "add", f"{net}.2/24", "dev", b)
            sh("ip", "-n", gw, "link", "set", a, "up")
            sh("ip", "-n", peer, "link", "set", b, "up")
        port = free_tcp_port()
        server = subprocess.Popen(
            ["ip", "netns", "exec", gw, sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lan = Lan(gw, tech, atk, "10.201.1.1", "10.201.2.1", "10.201.1.2", "10.201.2.2", port)
        for _ in range(50):
            if lan.fetch(tech, lan.gw_ip_tech) == "200":
                break
        else:
            raise RuntimeError("http server in the gateway namespace did not come up")
        yield lan
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=5)
        for ns in created:
            sh("ip", "netns", "del", ns, check=False)
