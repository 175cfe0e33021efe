"""Channels a relay may try to open towards the agent: refused, logged and reported.

The only channel an agent accepts is a ``forwarded-tcpip`` channel on its
session's own forward, and that one always goes to the session's target,
whatever originator the relay names. asyncssh's client already refuses every
other channel type and every forward it did not ask for, but silently; a
compromised or rogue relay trying them is worth telling the cloud about. So
the guard takes over asyncssh's per-type open handlers (asyncssh 2.x resolves
them by name on the connection: ``_process_<type>_open``) to refuse with a
reason and call ``on_refused(kind, detail)``. ``tests/relay/test_rogue_relay``
fails if that resolution ever changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncssh
from asyncssh.packet import SSHPacket

OnRefused = Callable[[str, str], None]

# channel type -> asyncssh's handler name on the connection
_FORBIDDEN: dict[str, str] = {
    "session": "_process_session_open",
    "direct-tcpip": "_process_direct_tcpip_open",
    "direct-streamlocal@openssh.com": "_process_direct_streamlocal_at_openssh_dot_com_open",
    "forwarded-streamlocal@openssh.com": "_process_forwarded_streamlocal_at_openssh_dot_com_open",
    "x11": "_process_x11_open",
    "auth-agent@openssh.com": "_process_auth_agent_at_openssh_dot_com_open",
    "tun@openssh.com": "_process_tun_at_openssh_dot_com_open",
}
_FORWARDED = "_process_forwarded_tcpip_open"


def _claimed_destination(payload: bytes) -> str:
    """``host:port`` a forwarded-tcpip open names as the connected address (best effort)."""
    try:
        packet = SSHPacket(payload)
        host = packet.get_string().decode("utf-8", errors="replace")[:64]
        return f"{host}:{packet.get_uint32()}"
    except asyncssh.Error:
        return "?"


def _refuser(kind: str, on_refused: OnRefused) -> Callable[[SSHPacket], Any]:
    def refuse(_packet: SSHPacket) -> Any:
        on_refused(kind, f"the relay tried to open a {kind} channel to the agent")
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, f"{kind} channels are refused by the agent"
        )

    return refuse


def guard_channel_opens(conn: asyncssh.SSHClientConnection, on_refused: OnRefused) -> None:
    """Install the refusing handlers on ``conn`` (call right after connecting)."""
    for kind, handler in _FORBIDDEN.items():
        setattr(conn, handler, _refuser(kind, on_refused))
    accept_forwarded = getattr(conn, _FORWARDED)

    def forwarded(packet: SSHPacket) -> Any:
        claimed = _claimed_destination(packet.get_remaining_payload())
        try:
            return accept_forwarded(packet)
        except asyncssh.ChannelOpenError:
            on_refused("forwarded-tcpip", f"the relay named {claimed}, not this session's forward")
            raise

    setattr(conn, _FORWARDED, forwarded)
