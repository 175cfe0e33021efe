"""Which new TCP connections the relay lets start an SSH handshake, and the tally of refusals.

Pure: the relay passes the clock and the counts of connections still in their
handshake. A connection is refused when the relay already holds
``max_unauthenticated`` handshakes, when its source holds
``max_unauthenticated_per_source`` of them, or when its source opened more
than ``connections_per_source`` connections in the current window of
``source_window_s`` seconds that did not authenticate as a session's agent (an
agent opening many tunnels is bounded by its sessions and per-agent limit; a
scanner, a guesser or a DHEat flood never authenticates). Refusals are not audited one by one (an attacker
would flood the trail): ``AdmissionControl.closed_windows`` hands back one
``SourceWindow`` per source and window, with its counts, once the window is over.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PREAUTH_CAP = "preauth_cap"
PREAUTH_CAP_PER_SOURCE = "preauth_cap_per_source"
RATE = "rate"
NO_FIREWALL_EXCEPTION = "no_firewall_exception"

REASONS: dict[str, str] = {
    PREAUTH_CAP: "too many connections still in their SSH handshake",
    PREAUTH_CAP_PER_SOURCE: "too many connections from this source still in their SSH handshake",
    RATE: "too many new connections from this source",
    NO_FIREWALL_EXCEPTION: "no firewall exception for this source",
}


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    max_unauthenticated: int
    max_unauthenticated_per_source: int
    connections_per_source: int
    source_window_s: float


@dataclass(slots=True)
class SourceWindow:
    """What one source did in one window: connections admitted, refused per reason."""

    source: str
    started_at: float  # the clock the relay passed in (wall clock)
    admitted: int = 0
    authenticated: int = 0  # of the admitted, those that became a session's tunnel
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


class AdmissionControl:
    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._windows: dict[str, SourceWindow] = {}
        self._ended: list[SourceWindow] = []  # replaced by a new window before they were collected

    def check(
        self, source: str, now: float, *, firewall_allows: bool, unauthenticated: int,
        unauthenticated_from_source: int,
    ) -> str | None:
        """``None`` to admit (and count) the connection, else the reason code it is refused for."""
        window = self._window(source, now)
        reason: str | None = None
        if window.admitted - window.authenticated >= self.limits.connections_per_source:
            reason = RATE
        elif not firewall_allows:
            reason = NO_FIREWALL_EXCEPTION
        elif unauthenticated_from_source >= self.limits.max_unauthenticated_per_source:
            reason = PREAUTH_CAP_PER_SOURCE
        elif unauthenticated >= self.limits.max_unauthenticated:
            reason = PREAUTH_CAP
        if reason is None:
            window.admitted += 1
        else:
            window.refused[reason] += 1
        return reason

    def authenticated(self, source: str) -> None:
        """An admitted connection from ``source`` became a session's tunnel: it no longer counts."""
        window = self._windows.get(source)
        if window is not None and window.authenticated < window.admitted:
            window.authenticated += 1

    def first_refusal(self, source: str, reason: str) -> bool:
        """True when ``reason`` has been counted exactly once in the source's current window."""
        window = self._windows.get(source)
        return window is not None and window.refused[reason] == 1

    def closed_windows(self, now: float) -> list[SourceWindow]:
        """Windows that ended by ``now`` and refused something (admitted-only windows are dropped)."""
        over = [w for w in self._windows.values() if w.started_at + self.limits.source_window_s <= now]
        for w in over:
            del self._windows[w.source]
        ended, self._ended = self._ended, []
        return [w for w in ended + over if w.refused_total]

    def drain(self) -> list[SourceWindow]:
        """Every window with refusals, ended or not (the relay is stopping)."""
        windows, self._windows, self._ended = self._ended + list(self._windows.values()), {}, []
        return [w for w in windows if w.refused_total]

    def _window(self, source: str, now: float) -> SourceWindow:
        window = self._windows.get(source)
        if window is not None and window.started_at + self.limits.source_window_s > now:
            return window
        if window is not None and window.refused_total:
            self._ended.append(window)
        window = self._windows[source] = SourceWindow(source, now)
        return window
