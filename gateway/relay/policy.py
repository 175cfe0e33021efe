"""What an authenticated agent connection may ask for: pure checks, deny by default.

The only thing a session's connection may do is ask for exactly one remote
forward named after its own session, on port 0 (the relay picks a loopback
port). Everything else is refused; these functions say why.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str  # what was asked: "forward", "session", "direct-tcpip", ...
    code: str  # machine reason
    message: str  # human reason (goes to the audit trail)


def forward_listen_host(session_id: str) -> str:
    """The listen host an agent must name in its one remote forward request."""
    return session_id.lower()


def check_forward(
    session_id: str, listen_host: str, listen_port: int, *, forwards_open: int
) -> Refusal | None:
    """``None`` when the forward is the single one bound to ``session_id``."""
    if forwards_open > 0:
        return Refusal("forward", "second_forward", f"session {session_id} already has its forward")
    if listen_host != forward_listen_host(session_id):
        return Refusal(
            "forward",
            "other_session",
            f"session {session_id} asked to forward {listen_host!r}, not its own session",
        )
    if listen_port != 0:
        return Refusal(
            "forward",
            "port_not_allowed",
            f"session {session_id} asked for port {listen_port}; the relay chooses the port (ask 0)",
        )
    return None


def refuse(kind: str, detail: str) -> Refusal:
    """Everything that is not the one forward: shells, exec, sftp, local forwards, ..."""
    return Refusal(kind, "not_permitted", f"{kind} is not permitted on the relay ({detail})")
