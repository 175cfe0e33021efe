"""A ``CommandPort`` for tests: records what the broker would send to agents."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from printgate.errors import AgentUnavailable


@dataclass(frozen=True, slots=True)
class SentCommand:
    command_id: str
    agent_id: str
    payload: Any
    ttl_s: int


@dataclass
class RecordingCommandPort:
    """Records every command; an agent in ``offline`` is unreachable (``AgentUnavailable``)."""

    sent: list[SentCommand] = field(default_factory=list)
    offline: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def send(self, agent_id: str, command_payload: Any, *, ttl_s: int) -> str:
        if agent_id in self.offline:
            raise AgentUnavailable(f"agent {agent_id} is not connected")
        command_id = f"cmd-{next(self._ids)}"
        self.sent.append(SentCommand(command_id, agent_id, command_payload, ttl_s))
        return command_id

    def to(self, agent_id: str) -> list[SentCommand]:
        return [c for c in self.sent if c.agent_id == agent_id]
