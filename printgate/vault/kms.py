"""The master key behind a small KMS-style interface: wrap and unwrap tenants' data keys.

``FileKms`` keeps a 256-bit master key in a file (created on first use with mode 0600 under
the data directory; refused when group or others may read it). Another backend (a cloud KMS,
an HSM) only needs ``key_id``, ``wrap`` and ``unwrap``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from printgate.errors import VaultError

_NONCE = 12


class KeyWrapper(Protocol):
    """Wraps data keys with a master key that never leaves the backend."""

    async def key_id(self) -> str: ...

    async def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    async def unwrap(self, wrapped: bytes, context: bytes) -> bytes: ...


class FileKms:
    """A master key in a local file (0600), AES-256-GCM key wrapping bound to ``context``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None

    def _load(self) -> bytes:
        if self._key is not None:
            return self._key
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(AESGCM.generate_key(bit_length=256))
            mode = self.path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise VaultError(f"vault master key {self.path} is readable by others "
                                 f"(mode {oct(mode & 0o777)}): chmod 600 it")
            key = self.path.read_bytes()
        except OSError as exc:
            raise VaultError(f"vault master key {self.path} cannot be read or created: {exc}") from exc
        if len(key) != 32:
            raise VaultError(f"vault master key {self.path} is not a 32-byte key; restore it from backup")
        self._key = key
        return key

    async def _ready(self) -> bytes:
        return self._key if self._key is not None else await asyncio.to_thread(self._load)

    async def key_id(self) -> str:
        return "file:" + hashlib.sha256(b"printgate-vault-key-id:" + await self._ready()).hexdigest()[:16]

    async def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(await self._ready()).encrypt(nonce, data_key, context)

    async def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return AESGCM(await self._ready()).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except InvalidTag as exc:
            raise VaultError("a tenant data key does not unwrap with this master key "
                             "(wrong key file, or the stored key was altered)") from exc
