"""Ed25519-signed tree heads ("checkpoints") over the audit Merkle tree.

A checkpoint commits to the first ``tree_size`` records: the RFC 6962 root of
their leaves and the hash of record ``tree_size`` (the chain head). The signed
message is ``b"printgate-audit-checkpoint-v1\\n"`` followed by the RFC 8785
bytes of ``{"at", "head", "key_id", "root", "tree_size", "v"}`` (hashes in
lower-case hex, ``at`` RFC 3339 UTC). ``key_id`` is the first 16 hex digits of
SHA-256 over the raw 32-byte public key. Verification needs only the PEM
public key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.canonical import canonical_bytes
from audit.chain import format_at
from printgate.errors import ConfigError

CHECKPOINT_DOMAIN = b"printgate-audit-checkpoint-v1\n"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root: str
    head: str
    at: str
    key_id: str
    signature: str
    v: int = CHECKPOINT_VERSION

    def body(self) -> dict[str, object]:
        return {
            "at": self.at, "head": self.head, "key_id": self.key_id,
            "root": self.root, "tree_size": self.tree_size, "v": self.v,
        }

    def signed_bytes(self) -> bytes:
        return CHECKPOINT_DOMAIN + canonical_bytes(self.body())

    def to_json(self) -> dict[str, object]:
        return {**self.body(), "signature": self.signature}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Checkpoint:
        try:
            return cls(
                tree_size=int(data["tree_size"]),  # type: ignore[call-overload]
                root=str(data["root"]), head=str(data["head"]), at=str(data["at"]),
                key_id=str(data["key_id"]), signature=str(data["signature"]),
                v=int(data.get("v", CHECKPOINT_VERSION)),  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed checkpoint: {exc}") from exc


def key_id_of(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]



def write_private_key(key: Ed25519PrivateKey, path: Path | str) -> None:
    """Write ``key`` as PKCS#8 PEM, mode 0600 (parent directories created)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    )
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


class Ed25519KeyHolder:
    """An Ed25519 private key kept in a PEM file (0600): the gateway's signer, a witness's cosigner."""

    _what = "the audit signing key"
    _keygen = "printgate audit keygen"

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = key_id_of(key.public_key())

    @classmethod
    def generate(cls) -> Self:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path | str) -> Self:
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {cls._what} {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 private key (run `{cls._keygen}`)")
        return cls(key)

    def save(self, path: Path | str) -> None:
        """Write the private key (PKCS#8 PEM, mode 0600)."""
        write_private_key(self._key, path)

    def public_key_pem(self) -> str:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


class Signer(Ed25519KeyHolder):
    """Holds the Ed25519 private key that signs checkpoints."""

    def verifier(self) -> CheckpointVerifier:
        return CheckpointVerifier(self._key.public_key())

    def sign(self, *, tree_size: int, root: bytes, head: str, at: str) -> Checkpoint:
        unsigned = Checkpoint(tree_size, root.hex(), head, at, self.key_id, "")
        sig = self._key.sign(unsigned.signed_bytes()).hex()
        return Checkpoint(tree_size, root.hex(), head, at, self.key_id, sig)


class Ed25519PublicKeyHolder:
    """An Ed25519 public key read from PEM: the gateway's checkpoint key, a witness's key."""

    _what = "the audit public key"

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.key_id = key_id_of(public)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Self:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{cls._what} must be Ed25519")
        return cls(key)

    @classmethod
    def load(cls, path: Path | str) -> Self:
        try:
            return cls.from_pem(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {cls._what} {path}: {exc}") from exc

    def public_key_pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


class CheckpointVerifier(Ed25519PublicKeyHolder):
    """Checks checkpoint signatures with only the public key."""

    def signature_ok(self, cp: Checkpoint) -> bool:
        """The signature over ``cp`` verifies with this key (whatever key id it names)."""
        try:
            self._public.verify(bytes.fromhex(cp.signature), cp.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True

    def refusal(self, cp: Checkpoint) -> str | None:
        """Why ``cp`` is not validly signed by this key, or None when it is."""
        if cp.key_id != self.key_id:
            return f"it names key {cp.key_id or '(none)'}, not {self.key_id}"
        if not self.signature_ok(cp):
            return f"its signature does not verify with key {self.key_id}"
        return None

    def is_valid(self, cp: Checkpoint) -> bool:
        return self.refusal(cp) is None


class FileSigner(Signer):
    """The gateway's signer, kept in its key file and re-read when that file is replaced.

    ``printgate keys rotate audit`` swaps the file (atomic rename); the next
    checkpoint is signed with the new key, on every node sharing the file. A
    checkpoint whose time was read before the swap but is signed after it is
    stamped with the swap time instead, so it never predates the new key's
    validity (``not_before`` in the key set is taken before the swap).
    """

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stamp = self._stat()
        super().__init__(Signer.load(self.path)._key)
        self._since = ""  # sign nothing dated before this (RFC 3339, set when the key was swapped)

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read {self._what} {self.path}: {exc}") from exc
        return st.st_ino, st.st_mtime_ns, st.st_size

    def refresh(self) -> bool:
        """Re-read the key file if it was replaced; True when the key changed."""
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        fresh = Signer.load(self.path)
        self._stamp = stamp
        if fresh.key_id == self.key_id:
            return False
        self._key, self.key_id = fresh._key, fresh.key_id
        self._since = format_at(self._clock())
        return True

    def sign(self, *, tree_size: int, root: bytes, head: str, at: str) -> Checkpoint:
        self.refresh()
        return super().sign(tree_size=tree_size, root=root, head=head, at=max(at, self._since))
