"""``enroll``: token -> local key pair + CSR -> client certificate and channel facts.

The private key is generated here, written with mode 0600 and never sent.
Files in ``data_dir``: ``agent.key``, ``agent.crt``, ``ca.crt``, ``identity.json``.

Retryable: the key is written to ``agent.key.pending`` BEFORE the request goes out and
reused by the next attempt, so an enrolment whose answer was lost (the process killed,
the connection cut, the deadline passed after the gateway redeemed the token) is
retried with the same token and the same key, and the gateway hands the same agent id
a certificate again. The pending key becomes ``agent.key`` once everything is saved.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc import aio

from agent.errors import EnrolmentFailed
from printgate.logs import get_logger
from printgate.wire import agent_pb2 as pb
from printgate.wire import agent_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

# cryptography (~11 MB RSS: its own OpenSSL) is imported where a key or CSR is made, not at
# start: `agent run` needs it only to renew its certificate or verify a command (issue 17 item 6)

log = get_logger(__name__)

AGENT_VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class EnrolledIdentity:
    agent_id: str
    site_id: str
    data_dir: Path
    command_verify_key: bytes
    relay_address: str
    relay_host_key_fingerprint: str
    mqtt_url: str
    cert_not_after_ms: int

    @property
    def key_path(self) -> Path:
        return self.data_dir / "agent.key"

    @property
    def cert_path(self) -> Path:
        return self.data_dir / "agent.crt"

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "ca.crt"

    def key_pem(self) -> bytes:
        return self.key_path.read_bytes()

    def cert_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    def ca_pem(self) -> bytes:
        return self.ca_path.read_bytes()

    def save(self) -> None:
        data = asdict(self)
        data["data_dir"] = str(self.data_dir)
        data["command_verify_key"] = self.command_verify_key.hex()
        write_atomic(self.data_dir / "identity.json", json.dumps(data, indent=2).encode(), mode=0o644)

    @classmethod
    def load(cls, data_dir: Path) -> EnrolledIdentity:
        path = data_dir / "identity.json"
        if not path.exists():
            raise EnrolmentFailed(f"agent is not enrolled ({path} missing): run `printgate agent enroll`")
        data = json.loads(path.read_text())
        data["data_dir"] = data_dir
        data["command_verify_key"] = bytes.fromhex(data["command_verify_key"])
        return cls(**data)

    def with_certificate(self, cert_pem: bytes, not_after_ms: int) -> EnrolledIdentity:
        """Store a renewed certificate (same key) and return the updated identity."""
        write_atomic(self.cert_path, cert_pem, mode=0o644)
        updated = EnrolledIdentity(**{**asdict(self), "data_dir": self.data_dir,
                                      "cert_not_after_ms": not_after_ms})
        updated.save()
        return updated


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def channel_options(http_proxy: str | None) -> list[tuple[str, object]]:
    opts: list[tuple[str, object]] = [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 3_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 300),
        ("grpc.min_reconnect_backoff_ms", 300),
        ("grpc.max_reconnect_backoff_ms", 5_000),
        ("grpc.enable_retries", 0),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if http_proxy:
        # HTTP CONNECT through the corporate proxy; user:pass@ in the URL becomes Basic auth.
        opts.append(("grpc.http_proxy", http_proxy))
    else:
        opts.append(("grpc.enable_http_proxy", 0))
    return opts


def _prepare_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


PENDING_KEY = "agent.key.pending"


def refuse_if_enrolled(data_dir: Path) -> None:
    """``printgate agent enroll`` on a data dir that already holds an enrolled agent: refused before
    anything is written or sent (the library's ``enroll`` replaces an identity when asked to)."""
    if not (data_dir / "identity.json").is_file():
        return
    try:
        agent = EnrolledIdentity.load(data_dir).agent_id
    except (OSError, ValueError, TypeError, KeyError):
        agent = "(unreadable identity.json)"
    files = ", ".join(str(data_dir / n) for n in ("identity.json", "agent.key", "agent.crt", "ca.crt"))
    raise EnrolmentFailed(
        f"already enrolled as agent {agent} (certificate in {data_dir / 'agent.crt'}); to enrol again, "
        f"stop the agent and remove {files} (or enrol into another --data-dir)")


def _pending_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The key of an unfinished enrolment if there is one, else a new key saved as pending
    (0600, fsynced) before anything is sent."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = data_dir / PENDING_KEY
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError:
            key = None  # torn or foreign: a new key (a retry of a redeemed token is then refused)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            log.info("agent.enrolment_resumed", pending_key=str(path))
            return key
    key = new_key()
    write_atomic(path, key_pem(key), mode=0o600)
    return key


def _store_files(data_dir: Path, private_pem: bytes, resp: pb.EnrollResponse) -> None:
    write_atomic(data_dir / "agent.key", private_pem, mode=0o600)
    write_atomic(data_dir / "agent.crt", resp.client_cert_pem, mode=0o644)
    write_atomic(data_dir / "ca.crt", resp.ca_chain_pem, mode=0o644)


async def enroll(grpc_target: str, token: str, data_dir: Path, *, ca_cert_pem: bytes | None,
                 http_proxy: str | None = None, timeout: float = 15.0) -> EnrolledIdentity:
    """Enrol this host with the gateway at ``grpc_target`` (its enrolment port). The command
    refuses a data dir that is already enrolled first (``refuse_if_enrolled``)."""
    await asyncio.to_thread(_prepare_dir, data_dir)
    key = await asyncio.to_thread(_pending_key, data_dir)
    hostname = socket.gethostname()
    creds = grpc.ssl_channel_credentials(root_certificates=ca_cert_pem)
    async with aio.secure_channel(grpc_target, creds, options=channel_options(http_proxy)) as ch:
        stub = pb_grpc.EnrolmentStub(ch)
        try:
            resp: pb.EnrollResponse = await stub.Enroll(
                pb.EnrollRequest(token=token, csr_pem=make_csr(key, hostname), hostname=hostname,
                                 agent_version=AGENT_VERSION), timeout=timeout)
        except aio.AioRpcError as exc:
            raise EnrolmentFailed(f"enrolment at {grpc_target} refused: {exc.details()} "
                                  f"({exc.code().name})") from exc
    await asyncio.to_thread(_store_files, data_dir, key_pem(key), resp)
    identity = EnrolledIdentity(
        agent_id=resp.agent_id, site_id=resp.site_id, data_dir=data_dir,
        command_verify_key=resp.command_verify_key, relay_address=resp.relay_address,
        relay_host_key_fingerprint=resp.relay_host_key_fingerprint, mqtt_url=resp.mqtt_url,
        cert_not_after_ms=resp.cert_not_after_ms,
    )
    await asyncio.to_thread(identity.save)
    await asyncio.to_thread((data_dir / PENDING_KEY).unlink, missing_ok=True)  # finished: agent.key holds it
    log.info("agent.enrolled", agent=identity.agent_id, site=identity.site_id)
    return identity
