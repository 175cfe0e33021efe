"""Sealing with a tenant's data key: AES-256-GCM, a random 96-bit nonce per secret, and the
secret's place (tenant, scope, target, version) as associated data, so a sealed value moved to
another row does not open."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from printgate.errors import VaultError

_NONCE = 12
FORMAT = b"\x01"  # sealed = FORMAT || nonce || ciphertext+tag


def seal(data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return FORMAT + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)


def unseal(data_key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if not sealed.startswith(FORMAT) or len(sealed) < 1 + _NONCE + 16:
        raise VaultError("a stored credential is not in a format this version can open")
    try:
        return AESGCM(data_key).decrypt(sealed[1:1 + _NONCE], sealed[1 + _NONCE:], aad)
    except InvalidTag as exc:
        raise VaultError("a stored credential does not decrypt (altered, or moved to another row)") from exc
