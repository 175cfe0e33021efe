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
Failed SSH logins are tallied in the same windows (the first of a window is audited at
once by the relay, the rest in aggregate; at most ``MAX_USERNAMES`` names tried, each
cut to ``USERNAME_MAX`` characters, are kept). At most ``max_sources`` sources are
tracked at once; further sources share one ``OVERFLOW`` window (counted together, rate
limited together), so a spray of addresses cannot grow memory or the audit trail.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PREAUTH_CAP = "preauth_cap"
PREAUTH_CAP_PER_SOURCE = "preauth_cap_per_source"
RATE = "rate"
NO_FIREWALL_EXCEPTION = "no_firewall_exception"
OVERFLOW = "*"  # the window of the sources beyond ``max_sources``
MAX_SOURCES = 4096
MAX_USERNAMES = 5
USERNAME_MAX = 32

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
    auth_failed: int = 0  # SSH logins that failed (the first one was audited at once)
    usernames: set[str] = field(default_factory=set)  # at most MAX_USERNAMES, cut to USERNAME_MAX
    sources: set[str] = field(default_factory=set)  # the overflow window: which sources it holds

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    @property
    def worth_auditing(self) -> bool:
        """Refusals, or failed logins beyond the one audited at once."""
        return bool(self.refused_total) or self.auth_failed > 1


class AdmissionControl:
    def __init__(self, limits: AdmissionLimits, *, max_sources: int = MAX_SOURCES) -> None:
        self.limits = limits
        self.max_sources = max_sources
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
        window = self._windows.get(source) or self._windows.get(OVERFLOW)
        if window is not None and window.authenticated < window.admitted:
            window.authenticated += 1

    def first_refusal(self, source: str, reason: str) -> bool:
        """True when ``reason`` has been counted exactly once in the source's current window."""
        window = self._windows.get(source) or self._windows.get(OVERFLOW)
        return window is not None and window.refused[reason] == 1

    def auth_failed(self, source: str, username: str, now: float) -> bool:
        """Count a failed login; True when it is the first of the source's window (audit it now)."""
        window = self._window(source, now)
        window.auth_failed += 1
        if len(window.usernames) < MAX_USERNAMES:
            window.usernames.add(username[:USERNAME_MAX])
        return window.auth_failed == 1

    def closed_windows(self, now: float) -> list[SourceWindow]:
        """Windows that ended by ``now`` and refused something (admitted-only windows are dropped)."""
        over = [w for w in self._windows.values() if w.started_at + self.limits.source_window_s <= now]
        for w in over:
            del self._windows[w.source]
        ended, self._ended = self._ended, []
        return [w for w in ended + over if w.worth_auditing]

    def drain(self) -> list[SourceWindow]:
        """Every window with refusals, ended or not (the relay is stopping)."""
        windows, self._windows, self._ended = self._ended + list(self._windows.values()), {}, []
        return [w for w in windows if w.worth_auditing]

    def _window(self, source: str, now: float) -> SourceWindow:
        key = source
        if source not in self._windows and len(self._windows) >= self.max_sources:
            key = OVERFLOW
        window = self._windows.get(key)
        if window is not None and window.started_at + self.limits.source_window_s > now:
            if key == OVERFLOW and len(window.sources) < self.max_sources:
                window.sources.add(source)
            return window
        if window is not None and window.worth_auditing:
            self._ended.append(window)
        window = self._windows[key] = SourceWindow(key, now)
        if key == OVERFLOW:
            window.sources.add(source)
        return window
