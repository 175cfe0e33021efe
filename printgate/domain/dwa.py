"""DWA sessions (device web access) and their state machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from printgate.domain.ids import AgentId, DeviceId, SessionId, UserId
from printgate.errors import InvalidTransition


@dataclass(frozen=True, slots=True)
class DwaTarget:
    ip: str
    port: int
    scheme: str = "http"

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = self.ip if self.port == default else f"{self.ip}:{self.port}"
        return f"{self.scheme}://{host}"


class DwaState(enum.StrEnum):
    REQUESTED = "requested"
    AUTHORISED = "authorised"
    TUNNEL_OPEN = "tunnel_open"
    ACTIVE = "active"
    CLOSED = "closed"
    DENIED = "denied"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({DwaState.CLOSED, DwaState.DENIED, DwaState.FAILED})


DWA_TRANSITIONS: dict[DwaState, frozenset[DwaState]] = {
    DwaState.REQUESTED: frozenset({DwaState.AUTHORISED, DwaState.DENIED, DwaState.FAILED}),
    DwaState.AUTHORISED: frozenset({DwaState.TUNNEL_OPEN, DwaState.FAILED, DwaState.CLOSED}),
    DwaState.TUNNEL_OPEN: frozenset({DwaState.ACTIVE, DwaState.FAILED, DwaState.CLOSED}),
    DwaState.ACTIVE: frozenset({DwaState.CLOSED, DwaState.FAILED}),
    DwaState.CLOSED: frozenset(),
    DwaState.DENIED: frozenset(),
    DwaState.FAILED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class DwaTransition:
    state: DwaState
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class DwaSession:
    id: SessionId
    user_id: UserId
    device_id: DeviceId
    agent_id: AgentId
    target: DwaTarget
    created_at: datetime
    expires_at: datetime
    state: DwaState = DwaState.REQUESTED
    ended_at: datetime | None = None
    history: tuple[DwaTransition, ...] = ()

    def transition(self, new: DwaState, *, at: datetime, reason: str) -> DwaSession:
        """Return the session moved to ``new``; refuse moves the machine forbids."""
        if new not in DWA_TRANSITIONS[self.state]:
            raise InvalidTransition(
                f"session {self.id} cannot go from {self.state} to {new} ({reason})"
            )
        return replace(
            self,
            state=new,
            ended_at=at if new.is_final else self.ended_at,
            history=(*self.history, DwaTransition(new, at, reason)),
        )

    def is_live(self, now: datetime) -> bool:
        return not self.state.is_final and now < self.expires_at

    def remaining_seconds(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))
