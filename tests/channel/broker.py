"""A real Mosquitto started by the tests: TLS client-cert auth + per-agent ACL."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.channel.ca import AgentCA
from lab.ports import free_tcp_port
from printgate.wire.topics import GATEWAY_USER

ROOT = Path(__file__).resolve().parents[2]
ACL = (ROOT / "deploy" / "mosquitto" / "acl").read_text() if (ROOT / "deploy" / "mosquitto" / "acl").exists() else ""


@dataclass
class Broker:
    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def prepare(cls, ca: AgentCA) -> Broker:
        # under /tmp directly: mosquitto drops to its own user and must traverse the path
        directory = Path(tempfile.mkdtemp(prefix="printgate-mqtt-"))
        directory.chmod(0o755)
        server = ca.issue_server_certificate(["127.0.0.1", "localhost"])
        bridge = ca.issue_service_client(GATEWAY_USER)
        (directory / "ca.crt").write_bytes(ca.cert_pem)
        (directory / "server.crt").write_bytes(server.cert_pem)
        (directory / "server.key").write_bytes(server.key_pem)
        (directory / "bridge.crt").write_bytes(bridge.cert_pem)
        (directory / "bridge.key").write_bytes(bridge.key_pem)
        (directory / "acl").write_text(ACL)
        port = free_tcp_port()
        (directory / "mosquitto.conf").write_text(f"""
per_listener_settings false
allow_anonymous false
persistence false
log_dest file {directory}/mosquitto.log
log_type error
log_type warning
log_type notice
listener {port} 127.0.0.1
cafile {directory}/ca.crt
certfile {directory}/server.crt
keyfile {directory}/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
acl_file {directory}/acl
""")
        try:
            user = pwd.getpwnam("mosquitto")
            for p in [directory, *directory.iterdir()]:
                os.chown(p, user.pw_uid, user.pw_gid)
        except KeyError:
            pass
        return cls(directory, port)

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.directory / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read() if self.proc.stderr else b''!r}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

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

    def client_args(self, cert: Path, key: Path) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "--cafile", str(self.directory / "ca.crt"),
                "--cert", str(cert), "--key", str(key)]
