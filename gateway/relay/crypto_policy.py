"""Modern SSH algorithms only, and a banner that names no software.

Key exchange is curve25519, preceded by a post-quantum hybrid when the
installed asyncssh offers one (``mlkem768x25519-sha256`` through
``cryptography``'s ML-KEM or liboqs; ``sntrup761x25519-sha512`` needs liboqs).
curve25519 stays for OpenSSH clients older than 9.9, which have no ML-KEM.
No NIST curve, no finite-field Diffie-Hellman, no SHA-1, no CBC, no ChaCha20. asyncssh negotiates OpenSSH's strict key exchange (``kex-strict-*``, the
Terrapin fix) by itself; these lists remove every legacy choice around it.
"""

from __future__ import annotations

from asyncssh.kex import get_kex_algs

# Identification string after "SSH-2.0-": no product, no version for a scanner to match.
SERVER_VERSION = "relay"

POST_QUANTUM_KEX_ALGS: tuple[str, ...] = (
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
)
CURVE25519_KEX_ALGS: tuple[str, ...] = ("curve25519-sha256", "curve25519-sha256@libssh.org")


def available_kex_algs() -> tuple[str, ...]:
    """The hybrids this asyncssh build can run, in preference order, then curve25519."""
    installed = {alg.decode() for alg in get_kex_algs()}
    return tuple(a for a in POST_QUANTUM_KEX_ALGS if a in installed) + CURVE25519_KEX_ALGS


KEX_ALGS: tuple[str, ...] = available_kex_algs()
# AES-GCM only: chacha20-poly1305 is open to Terrapin (CVE-2023-48795) with a peer that lacks
# strict key exchange, and every client the relay serves (asyncssh, OpenSSH >= 6.2) has AES-GCM.
ENCRYPTION_ALGS: tuple[str, ...] = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
)
MAC_ALGS: tuple[str, ...] = (  # unused with the AEAD ciphers above, but never SHA-1 or non-EtM
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
)
HOST_KEY_ALGS: tuple[str, ...] = ("ssh-ed25519",)
SIGNATURE_ALGS: tuple[str, ...] = (
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
COMPRESSION_ALGS: tuple[str, ...] = ("none",)
