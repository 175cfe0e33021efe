"""What an authenticated agent connection may ask for: pure checks, deny by default.

The only thing a session's connection may do is ask for exactly one remote
forward named after its own session, on port 0 (the relay picks a loopback
port). Everything else is refused; these functions say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_COMMAND_CHARS = 200
MAX_NAME_CHARS = 64

# SSH channel request names (RFC 4254 §6, OpenSSH PROTOCOL) -> the kind audited
_REQUEST_KINDS: Mapping[str, str] = {
    "shell": "shell",
    "exec": "exec",
    "subsystem": "subsystem",
    "pty-req": "pty",
    "env": "env",
    "auth-agent-req@openssh.com": "agent_forwarding",
    "auth-agent-req": "agent_forwarding",
    "x11-req": "x11",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str  # what was asked: "forward", "shell", "exec", "subsystem:sftp", "direct-tcpip", ...
    code: str  # machine reason
    message: str  # human reason (goes to the audit trail)
    detail: Mapping[str, str] = field(default_factory=dict)  # e.g. the exec command, truncated


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


def printable(text: str, limit: int) -> str:
    """``text`` with control characters escaped, cut to ``limit`` characters (audit-safe)."""
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "\u2026"


def refuse_channel_request(request: str, argument: str | None = None) -> Refusal:
    """A request on an SSH session channel, refused and named for what it is.

    ``argument`` is the request's subject: the command of ``exec``, the
    subsystem name, the variable name of ``env`` (never its value), the
    terminal type of ``pty-req``.
    """
    name = printable(request, MAX_NAME_CHARS)
    kind = _REQUEST_KINDS.get(request, f"request:{name}")
    detail: dict[str, str] = {}
    what = kind
    if kind == "subsystem":
        sub = printable(argument or "", MAX_NAME_CHARS)
        kind = f"subsystem:{sub}"
        what = f"the {sub!r} subsystem (sftp/scp)"
    elif kind == "exec":
        detail["command"] = printable(argument or "", MAX_COMMAND_CHARS)
        what = f"exec of {detail['command']!r}"
    elif kind == "env":
        detail["variable"] = printable(argument or "", MAX_NAME_CHARS)
        what = f"setting environment variable {detail['variable']!r}"
    elif kind == "pty" and argument:
        detail["term"] = printable(argument, MAX_NAME_CHARS)
    return Refusal(kind, "not_permitted", f"{what} is not permitted on the relay", detail)
