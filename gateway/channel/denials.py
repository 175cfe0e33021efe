"""Refusals audited in aggregate: one record per (event type, agent or source, reason) and window.

An agent (or a stolen certificate) hammering the channel with calls that are
refused must not be able to flood the audit trail: each refusal is counted
here, and every ``window_s`` one ``agent.rpc.denied`` (or ``agent.mqtt.ignored``)
record per key is appended with ``count``, ``window_start`` and ``window_end`` (the
source addresses seen, at most ten, go to ``source_ip`` and the personal fields).
The number of keys per window is bounded; beyond it refusals are counted under
one overflow key, so memory and audit volume stay bounded under a spray of
sources too. ``aclose()`` writes what is still counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.interfaces import AuditSink
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger
from printgate.supervisor import Supervisor

log = get_logger(__name__)
RPC_DENIED = event_types.AGENT_RPC_DENIED
MQTT_IGNORED = event_types.AGENT_MQTT_IGNORED
MAX_KEYS = 1000
MAX_SAMPLES = 10  # distinct methods / addresses named per record
OVERFLOW = "overflow"


@dataclass
class _Count:
    first_at: float
    count: int = 0
    methods: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)


class DenialTally(Service):
    """``async with DenialTally(audit, window_s=60) as denials``; ``denials.count(...)`` per refusal."""

    def __init__(self, audit: AuditSink, *, window_s: float = 60.0, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.time, supervisor: Supervisor | None = None) -> None:
        if window_s <= 0:
            raise ValueError("the denial audit window must be positive")
        self._audit, self._window, self._max_keys, self._clock = audit, window_s, max_keys, clock
        self._counts: dict[tuple[str, str, str], _Count] = {}
        self._task: asyncio.Task[None] | None = None
        self._supervisor = supervisor  # runs the flush loop (health shown, restarted if it fails) when given

    def count(self, *, reason: str, agent_id: str | None = None, method: str = "",
              source_ip: str | None = None, event_type: str = RPC_DENIED) -> None:
        """One refusal; audited with the others of its key at the end of the window."""
        actor = f"agent:{agent_id}" if agent_id else f"source:{source_ip or 'unknown'}"
        key = (event_type, actor, reason[:64])
        entry = self._counts.get(key)
        if entry is None:
            if len(self._counts) >= self._max_keys:
                key = (event_type, "*", OVERFLOW)
                entry = self._counts.get(key)
            if entry is None:
                entry = self._counts[key] = _Count(self._clock())
                log.warning("channel.denied", type=event_type, actor=actor, reason=reason, method=method)
        entry.count += 1
        if method and len(entry.methods) < MAX_SAMPLES:
            entry.methods.add(method[:200])
        if source_ip and len(entry.sources) < MAX_SAMPLES:
            entry.sources.add(source_ip[:64])

    def pending(self) -> int:
        """Refusals counted and not yet audited."""
        return sum(c.count for c in self._counts.values())

    async def flush(self) -> int:
        """Audit what was counted (one record per key); how many records were written."""
        counts, self._counts = self._counts, {}
        end = _iso(self._clock())
        items = list(counts.items())
        written = 0
        try:
            for (event_type, actor, reason), c in items:
                await self._append(event_type, actor, reason, c, end)
                written += 1
        except BaseException:  # the audit store away: what was not written is counted again, not lost
            for key, c in items[written:]:
                self._merge_back(key, c)
            raise
        return written

    def _merge_back(self, key: tuple[str, str, str], c: _Count) -> None:
        mine = self._counts.get(key)
        if mine is None:
            self._counts[key] = c
            return
        mine.first_at, mine.count = min(mine.first_at, c.first_at), mine.count + c.count
        mine.methods = set(sorted(mine.methods | c.methods)[:MAX_SAMPLES])
        mine.sources = set(sorted(mine.sources | c.sources)[:MAX_SAMPLES])

    async def _append(self, event_type: str, actor: str, reason: str, c: _Count, end: str) -> None:
        sources = sorted(c.sources)  # addresses are identifying: personal fields, not details
        await self._audit.append(AuditEventIn(
            type=event_type, outcome=Outcome.DENIED, actor=None if actor == "*" else actor,
            source_ip=sources[0] if sources else None,
            details={"reason": reason, "count": c.count, "window_start": _iso(c.first_at),
                     "agent_id": actor.removeprefix("agent:") if actor.startswith("agent:") else None,
                     "window_end": end, "methods": sorted(c.methods), "addresses": len(sources)},
            personal={"other_sources": ", ".join(sources[1:])} if len(sources) > 1 else {},
        ))

    async def start(self) -> None:
        if self._supervisor is not None:
            self._supervisor.add("channel-denials", self._run)
        else:
            self._task = asyncio.create_task(self._run(), name="channel-denials")

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._window)
            try:
                await self.flush()
            except Exception as exc:  # the audit store may be briefly away: keep counting (kept, retried)
                log.warning("channel.denials_flush_failed", error=str(exc), pending=self.pending())
                if self._supervisor is not None:
                    self._supervisor.degrade("channel-denials", f"audit not written: {type(exc).__name__}: {exc}")
            else:
                if self._supervisor is not None:
                    self._supervisor.recovered("channel-denials")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
