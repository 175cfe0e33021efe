"""DWA sessions (device web access) and their state machine."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from printgate.domain.ids import AgentId, DeviceId, SessionId, UserId
from printgate.errors import InvalidTransition, SessionReasonInvalid

# why a session closed when its technician ended it (the browser bar's "End session" or My sessions'
# "End"): one wording on the ended page, in My sessions and in the audit trail
ENDED_BY_TECHNICIAN = "ended by the technician"
MAX_REASON_TEXT = 500  # characters of a free-text reason
MAX_TICKET_REF = 64  # characters of a ticket reference
_TICKET_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#/-]*")


class ReasonKind(enum.StrEnum):
    """Why a remote session was opened (issue 20)."""

    ALERT = "alert"  # from a printer alert ("Open web page" on the alert)
    TICKET = "ticket"  # a ticket reference of the dealer's ticketing system
    TEXT = "text"  # free text


def _clean_text(value: str) -> str:
    """Control and format characters out, whitespace runs folded (the text is shown in many places)."""
    kept = "".join(" " if ch.isspace() else ch for ch in value
                   if ch.isspace() or unicodedata.category(ch)[0] != "C")
    return " ".join(kept.split())


@dataclass(frozen=True, slots=True)
class SessionReason:
    """The documented reason of a DWA session: a printer alert (as the store had it when the session
    was opened), a ticket reference or free text. Build with ``of_alert``, ``ticket`` or ``text``."""

    kind: ReasonKind
    text: str = ""  # the ticket reference or the free text
    alert_id: int | None = None  # device_alerts.id
    alert_code: str = ""
    alert_severity: str = ""
    alert_description: str = ""
    alert_raised_at: datetime | None = None

    @classmethod
    def of_alert(cls, alert_id: int, *, code: str, severity: str, description: str,
                 raised_at: datetime | None) -> SessionReason:
        return cls(ReasonKind.ALERT, alert_id=alert_id, alert_code=code[:64], alert_severity=severity[:32],
                   alert_description=description[:1024], alert_raised_at=raised_at)

    @classmethod
    def ticket(cls, reference: str) -> SessionReason:
        ref = reference.strip()
        if not ref:
            raise SessionReasonInvalid("the ticket reference is empty: give the ticket's id, e.g. T-1234")
        if len(ref) > MAX_TICKET_REF or not _TICKET_REF.fullmatch(ref):
            raise SessionReasonInvalid(
                f"the ticket reference {ref[:MAX_TICKET_REF]!r} is not valid: up to {MAX_TICKET_REF} letters, "
                "digits and . _ : # / - (starting with a letter or digit), e.g. T-1234")
        return cls(ReasonKind.TICKET, text=ref)

    @classmethod
    def free_text(cls, text: str) -> SessionReason:
        cleaned = _clean_text(text)
        if not cleaned:
            raise SessionReasonInvalid("the reason is empty: say why you open the printer's web page")
        if len(cleaned) > MAX_REASON_TEXT:
            raise SessionReasonInvalid(
                f"the reason is {len(cleaned)} characters long; at most {MAX_REASON_TEXT} are kept: shorten it")
        return cls(ReasonKind.TEXT, text=cleaned)

    @property
    def label(self) -> str:
        """One line for people (escape it where it is shown)."""
        if self.kind is ReasonKind.ALERT:
            what = self.alert_description or self.alert_code or "printer alert"
            return f"alert '{what}' ({self.alert_severity or 'unknown severity'})"
        if self.kind is ReasonKind.TICKET:
            return f"ticket {self.text}"
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """JSON for the store and the audit records."""
        if self.kind is ReasonKind.ALERT:
            return {"kind": self.kind.value, "alert_id": self.alert_id, "code": self.alert_code,
                    "severity": self.alert_severity, "description": self.alert_description,
                    "raised_at": self.alert_raised_at.isoformat() if self.alert_raised_at else None}
        return {"kind": self.kind.value, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionReason:
        kind = ReasonKind(data["kind"])
        if kind is ReasonKind.ALERT:
            raised = data.get("raised_at")
            return cls(kind, alert_id=int(data["alert_id"]), alert_code=str(data.get("code", "")),
                       alert_severity=str(data.get("severity", "")),
                       alert_description=str(data.get("description", "")),
                       alert_raised_at=datetime.fromisoformat(raised) if raised else None)
        return cls(kind, text=str(data.get("text", "")))


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
    reason: SessionReason | None = None  # why it was opened (issue 20); None before 0018

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
