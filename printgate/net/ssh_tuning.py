"""Per-connection asyncssh tuning for the tunnel's hot path.

asyncssh puts an empty ``SSH_MSG_IGNORE`` packet in front of every packet it
sends once encryption is on: a countermeasure against CBC-mode IV-chaining
attacks. The relay and the agent only negotiate AEAD ciphers (AES-GCM,
ChaCha20-Poly1305, see ``gateway.relay.crypto_policy`` and ``agent.tunnel.client``),
where it protects nothing, yet it
doubles the packets to encrypt, send, receive and decrypt on both ends of a
tunnel (about a quarter of the relay's or the agent's CPU per request when profiled).
``drop_empty_ignore_packets`` removes just those padding packets on one
connection; every other packet (including IGNOREs with a payload) is sent
unchanged. asyncssh 2.x inserts them through ``self.send_packet``, so an
instance attribute intercepts them; ``tests/relay/test_ssh_tuning.py`` fails
if that stops being true.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncssh

MSG_IGNORE = 2
_EMPTY_STRING = b"\x00\x00\x00\x00"
AEAD_CIPHERS = frozenset({
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
})


def drop_empty_ignore_packets(conn: asyncssh.SSHClientConnection | asyncssh.SSHServerConnection) -> None:
    send_packet: Callable[..., None] = conn.send_packet

    def send_packet_without_padding(pkttype: int, *args: bytes, **kwargs: Any) -> None:
        if (pkttype == MSG_IGNORE and args == (_EMPTY_STRING,)
                and conn.get_extra_info("send_cipher") in AEAD_CIPHERS):
            return  # a CBC-era countermeasure: never needed with an AEAD cipher
        send_packet(pkttype, *args, **kwargs)

    conn.send_packet = send_packet_without_padding  # type: ignore[method-assign]
