"""The gateway's SSH certificate authority: one short-lived user certificate per session.

The certificate's only principal is the session id, it is valid from one
minute ago (clock skew) until the session ends, and it permits port forwarding
and nothing else (no pty, no agent or X11 forwarding, no user rc).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncssh

from printgate.errors import ConfigError

CLOCK_SKEW_S = 60


@dataclass(frozen=True, slots=True)
class SessionCredential:
    """What the agent needs to authenticate to the relay for one session (secret!)."""

    session_id: str
    agent_id: str
    private_key: str  # OpenSSH private key format
    certificate: str  # one OpenSSH certificate line
    principal: str
    serial: int
    expires_at: datetime

    def __repr__(self) -> str:  # never print the private key
        return f"SessionCredential(session_id={self.session_id!r}, expires_at={self.expires_at})"


def load_or_create_key(path: Path) -> asyncssh.SSHKey:
    """Load an Ed25519 private key, creating it (mode 0600) when absent."""
    if path.exists():
        try:
            return asyncssh.read_private_key(str(path))
        except (asyncssh.KeyImportError, OSError) as exc:
            raise ConfigError(f"cannot read SSH key {path}: {exc}; fix or delete the file") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key("openssh"))
    return key


class SshCertificateAuthority:
    """Issues per-session OpenSSH user certificates signed by the gateway CA key."""

    def __init__(self, ca_key: asyncssh.SSHKey) -> None:
        self._key = ca_key

    @property
    def public_key(self) -> asyncssh.SSHKey:
        return self._key.convert_to_public()

    def public_key_line(self) -> str:
        return self._key.export_public_key("openssh").decode().strip()

    def issue(
        self, session_id: str, *, valid_seconds: int, agent_id: str, now: float | None = None
    ) -> SessionCredential:
        if valid_seconds <= 0:
            raise ConfigError(f"session {session_id}: credential lifetime must be positive")
        start = time.time() if now is None else now
        user_key = asyncssh.generate_private_key("ssh-ed25519")
        serial = secrets.randbits(63)
        valid_before = int(start) + valid_seconds
        cert = self._key.generate_user_certificate(
            user_key,
            key_id=f"printgate session {session_id} agent {agent_id}",
            serial=serial,
            principals=[session_id],
            valid_after=int(start) - CLOCK_SKEW_S,
            valid_before=valid_before,
            permit_x11_forwarding=False,
            permit_agent_forwarding=False,
            permit_port_forwarding=True,
            permit_pty=False,
            permit_user_rc=False,
        )
        return SessionCredential(
            session_id=session_id,
            agent_id=agent_id,
            private_key=user_key.export_private_key("openssh").decode(),
            certificate=cert.export_certificate("openssh").decode().strip(),
            principal=session_id,
            serial=serial,
            expires_at=datetime.fromtimestamp(valid_before, UTC),
        )
