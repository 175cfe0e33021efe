"""How many relay refusals an agent gets audited one by one per window.

An agent reports channels a relay tried to open and it refused (``RelayRefusal`` in its
heartbeat). The first few per agent and window are audited each on its own, at once
(they may be the trace of a hijacked relay); the rest of the window is only counted
and audited in aggregate (``DenialTally``), so a misbehaving or stolen agent cannot
flood the audit trail however many heartbeats it sends. Memory is bounded: at most
``max_agents`` agents are tracked per window; beyond that nothing is audited singly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PER_WINDOW = 20
MAX_AGENTS = 1000


class RefusalBudget:
    def __init__(self, *, window_s: float = 60.0, per_window: int = PER_WINDOW, max_agents: int = MAX_AGENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window, self._per_window, self._max_agents, self._clock = window_s, per_window, max_agents, clock
        self._started = clock()
        self._used: dict[str, int] = {}

    def take(self, agent_id: str) -> bool:
        """True when one more refusal of ``agent_id`` may be audited on its own in this window."""
        now = self._clock()
        if now - self._started >= self._window:
            self._started, self._used = now, {}
        used = self._used.get(agent_id)
        if used is None and len(self._used) >= self._max_agents:
            return False
        if (used or 0) >= self._per_window:
            return False
        self._used[agent_id] = (used or 0) + 1
        return True
