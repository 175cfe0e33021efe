"""Interfaces where the layer-3 parts meet (docs/architecture.md, the layers).

``gateway`` and ``portal`` never import each other; the portal talks to a
``SessionBroker`` and everything talks to an ``AuditSink``. The composition
root (``printgate.cli``) plugs the real implementations in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from printgate.domain import (
    AuditEventIn,
    Decision,
    DeviceId,
    DwaSession,
    SessionId,
    SessionReason,
    User,
)


class AuditSink(Protocol):
    async def append(self, event: AuditEventIn) -> object: ...


@dataclass(frozen=True, slots=True)
class SessionLaunch:
    """What the portal needs to send a browser into an opened DWA session."""

    session: DwaSession
    launch_url: str
    decision: Decision


@dataclass(frozen=True, slots=True)
class SessionRefused:
    decision: Decision
    message: str


class SessionBroker(Protocol):
    async def open_session(
        self, user: User, device_id: DeviceId, *, source_ip: str, mfa_age_seconds: float | None,
        reason: SessionReason | None = None,
    ) -> SessionLaunch | SessionRefused:
        """``reason``: the alert (by id), ticket or text the session is opened for (issue 20)."""
        ...

    async def close_session(self, session_id: SessionId, *, reason: str, actor: str) -> None: ...

    async def get_session(self, session_id: SessionId) -> DwaSession | None: ...

    async def rejoin_session(self, user_id: str, device_id: DeviceId, *, source_ip: str) -> str | None:
        """A new launch link into the user's own live session on the device (None: there is
        none, or the request comes from another address than the session's)."""
        ...

    async def drop_credentials(self, customer_id: str, *, reason: str, actor: str) -> int:
        """Live sessions of the customer stop signing in with stored credentials (one was forbidden
        or erased); how many sessions changed."""
        ...


class AgentCommands(Protocol):
    """Commands the portal asks the gateway to sign and send to a site's agent."""

    async def rescan(self, agent_id: str, *, requested_by: str) -> str:
        """Ask the agent to sweep its site now; the command id. Raises ``AgentUnavailable``."""
        ...
