"""A session channel that refuses every request and names it for the audit trail.

The relay accepts an agent's ``session`` channel only so that each request
riding on it (shell, exec, sftp/scp subsystem, pty, env, agent and X11
forwarding, signals, ...) can be refused and audited as what it is, instead
of one anonymous "session" refusal. Nothing is ever started: the request is
answered with a failure before asyncssh's own handlers see it (so no pty is
parsed, no variable stored, no agent or X11 listener created, no command
run), then the channel is closed. Data sent on the channel is discarded.

asyncssh has no public hook for agent/X11/env requests, so the channel
overrides its request dispatcher (``_service_next_request``, asyncssh 2.x);
the OpenSSH-client tests in ``tests/relay`` fail if that hook ever changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import asyncssh
from asyncssh.packet import SSHPacket

from gateway.relay.policy import Refusal, refuse_channel_request

OnRefused = Callable[[Refusal], None]

_WINDOW = 16 * 1024  # nothing useful may flow here; keep the peer's credit small
_MAX_PKTSIZE = 16 * 1024


def _argument(request: str, packet: SSHPacket) -> str | None:
    """The subject of a request (command, subsystem, variable name, terminal), best effort."""
    if request not in ("exec", "subsystem", "env", "pty-req"):
        return None
    try:
        return packet.get_string().decode("utf-8", errors="replace")
    except asyncssh.Error:  # malformed: refuse without a subject
        return None


class RefusingSession(asyncssh.SSHServerSession[bytes]):
    """Session handler that grants nothing (defence in depth behind ``RefusingChannel``)."""

    def __init__(self) -> None:
        self.on_closed: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_closed is not None:
            self.on_closed()
            self.on_closed = None

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Mapping[int, int]
    ) -> bool:
        return False

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        return False

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        return None  # discarded


class RefusingChannel(asyncssh.SSHServerChannel[bytes]):
    """Every channel request is refused, reported to ``on_refused``, and closes the channel."""

    def __init__(self, conn: asyncssh.SSHServerConnection, on_refused: OnRefused) -> None:
        super().__init__(
            conn, asyncio.get_running_loop(), False, False, False, 0, 1024, None, "strict",
            _WINDOW, _MAX_PKTSIZE,
        )
        self._on_refused = on_refused

    def _service_next_request(self) -> None:
        request, packet, _want_reply = self._request_queue[0]
        refusal = refuse_channel_request(request, _argument(request, packet))
        self._report_response(False)  # FAILURE if a reply was wanted; never SUCCESS
        self._on_refused(refusal)
        self.close()

    @classmethod
    def open(
        cls, conn: asyncssh.SSHServerConnection, on_refused: OnRefused
    ) -> tuple[RefusingChannel, RefusingSession]:
        """The ``(channel, session)`` pair ``SSHServer.session_requested`` may return."""
        return cls(conn, on_refused), RefusingSession()
