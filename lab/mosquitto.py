"""A real Mosquitto from the reference config in ``deploy/mosquitto/`` (demo and tests).

The reference ``mosquitto.conf`` and ``acl`` are used as they are, with only
what is host-specific replaced: file paths (into a temporary directory),
the first listener's port (a free loopback port; the WebSockets listener is
left out), persistence and logging. So the demo runs, and the tests check,
the deployed security settings: TLS client certificates from the agent CA,
CN as user name and client id, the CRL the gateway writes, the per-agent
topic ACL. ``OBSERVER`` is a client that may read every agent's tree (tests).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.channel.ca import AgentCA
from lab.ports import free_tcp_port
from printgate.wire.topics import GATEWAY_USER

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "deploy" / "mosquitto"
OBSERVER = "printgate-test-observer"  # a test-only client that may read every agent's tree
OBSERVER_ACL = f"\nuser {OBSERVER}\ntopic read printgate/v1/agents/#\n"


def config_from_reference(directory: Path, port: int) -> str:
    """The reference config with this test's paths and port (first listener only)."""
    replace = {
        "persistence": "persistence false",
        "persistence_location": None,
        "log_dest": f"log_dest file {directory}/mosquitto.log",
        "pid_file": f"pid_file {directory}/mosquitto.pid",
        "acl_file": f"acl_file {directory}/acl",
        "cafile": f"cafile {directory}/ca.crt",
        "certfile": f"certfile {directory}/server.crt",
        "keyfile": f"keyfile {directory}/server.key",
        "crlfile": f"crlfile {directory}/agent-ca.crl",
    }
    out: list[str] = ["log_type error", "log_type warning", "log_type notice", "log_type information"]
    listeners = 0
    for line in (REFERENCE / "mosquitto.conf").read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            listeners += 1
            if listeners > 1:
                break  # the WebSockets listener needs port 443
            out.append(f"listener {port} 127.0.0.1")
            continue
        if words[0] in replace:
            if replace[words[0]] is not None:
                out.append(replace[words[0]])  # type: ignore[arg-type]
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def write_private(path: Path, data: bytes) -> None:
    """A private key: created 0600 (an existing file is made 0600 before it is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)


@dataclass
class Broker:
    """``Broker.prepare(ca)`` then ``start()``/``stop()``/``remove()``; or ``async with`` (the demo)."""

    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def prepare(cls, ca: AgentCA) -> Broker:
        # under /tmp directly: mosquitto drops to its own user and must traverse the path;
        # the directory is 0700 and owned by that user (below), every private key in it 0600
        directory = Path(tempfile.mkdtemp(prefix="printgate-mqtt-"))
        directory.chmod(0o700)
        server = ca.issue_server_certificate(["127.0.0.1", "localhost"])
        for name, pair in ((GATEWAY_USER, "bridge"), (OBSERVER, "observer")):
            issued = ca.issue_service_client(name)
            (directory / f"{pair}.crt").write_bytes(issued.cert_pem)
            write_private(directory / f"{pair}.key", issued.key_pem)
        (directory / "ca.crt").write_bytes(ca.cert_pem)
        (directory / "server.crt").write_bytes(server.cert_pem)
        write_private(directory / "server.key", server.key_pem)
        (directory / "agent-ca.crl").write_bytes(ca.issue_crl(set()))  # the gateway rewrites it
        (directory / "acl").write_text((REFERENCE / "acl").read_text() + OBSERVER_ACL)
        port = free_tcp_port()
        (directory / "mosquitto.conf").write_text(config_from_reference(directory, port))
        try:
            user = pwd.getpwnam("mosquitto")
            for p in [directory, *directory.iterdir()]:
                os.chown(p, user.pw_uid, user.pw_gid)
        except KeyError:
            pass
        return cls(directory, port)

    @property
    def crl_path(self) -> Path:
        return self.directory / "agent-ca.crl"

    @property
    def pid_file(self) -> Path:
        return self.directory / "mosquitto.pid"

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self) -> None:  # blocking: the tests call it outside a loop too
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed: apt-get install mosquitto mosquitto-clients")
        self.proc = subprocess.Popen([exe, "-c", str(self.directory / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read() if self.proc.stderr else b''!r}")
            with socket.socket() as s:
                listening = s.connect_ex(("127.0.0.1", self.port)) == 0
            if listening and " running" in self.log():  # logged once its SIGHUP handler is set
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its config, certificates and CRL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    async def __aenter__(self) -> Broker:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.remove)

    def client_args(self, cert: Path, key: Path) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "--cafile", str(self.directory / "ca.crt"),
                "--cert", str(cert), "--key", str(key)]

    def observer_args(self) -> list[str]:
        return self.client_args(self.directory / "observer.crt", self.directory / "observer.key")
