"""Jittered exponential back-off for reconnects ("full jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _attempt: int = field(default=0, init=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: uniform in [initial/2, cap]."""
        cap = min(self.maximum, self.initial * self.factor ** self._attempt)
        self._attempt += 1
        return self._rng.uniform(min(cap, self.initial) / 2, cap)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
