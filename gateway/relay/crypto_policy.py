"""Modern SSH algorithms only: no SHA-1, no CBC, no NIST-less-than-modern kex.

asyncssh negotiates OpenSSH's strict key exchange (``kex-strict-*``, the
Terrapin fix) by itself; these lists remove every legacy choice around it.
"""

from __future__ import annotations

KEX_ALGS: tuple[str, ...] = (
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
)
ENCRYPTION_ALGS: tuple[str, ...] = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
)
MAC_ALGS: tuple[str, ...] = (
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
