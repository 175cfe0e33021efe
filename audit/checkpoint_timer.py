"""Time-based checkpoints: sign a tree head every ``interval`` seconds when the
log has grown (complements ``AuditLog(checkpoint_every=N)``).

The timer also puts its troubles into the audit trail itself, where security
alerting (``alerting.rules``, rule ``platform.audit``) sees them:

- ``audit.checkpoint.failed``: a checkpoint could not be signed or stored
  (``details``: error, code); once per kind of error, again after a success;
- ``audit.witness.failed`` with ``reason = unreachable``: a witness that has
  cosigned before sent no cosignature for ``witness_silence_s`` seconds while
  newer checkpoints wait (``details``: witness, last tree size, last seen,
  silent seconds); once per silence, again after it cosigned.

A record that cannot be written (the audit store is down) is only logged; the
outage itself is recorded when writing works again (``audit.metered_log``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from audit.log import AuditLog
from printgate.domain import AuditEventIn, Outcome, event_types
from printgate.errors import PrintgateError
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger
from printgate.store import audit as audit_store
from printgate.store.audit_witnesses import last_seen
from printgate.supervisor import Supervisor

log = get_logger("audit.checkpoint_timer")
ACTOR = "system:audit-checkpoints"


class CheckpointTimer(Service):
    """``async with CheckpointTimer(audit_log, 60):`` or start()/aclose()."""

    def __init__(self, audit_log: AuditLog, interval: float, *, supervisor: Supervisor | None = None,
                 witness_silence_s: float | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        if witness_silence_s is not None and witness_silence_s <= 0:
            raise ValueError("witness_silence_s must be > 0 seconds")
        self.audit_log = audit_log
        self.interval = interval
        self.witness_silence_s = witness_silence_s  # None: do not watch the witnesses
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._supervisor = supervisor  # runs the loop (restarted if it fails) when given
        self.signed = 0
        self._last = -1
        self._failing: str | None = None  # the kind of error already recorded
        self._silent: dict[str, int] = {}  # witness -> the tree size it was silent at (recorded)

    async def start(self) -> None:
        if self._supervisor is not None:
            self._supervisor.add("audit-checkpoint-timer", self._run)
        elif self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-checkpoint-timer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()

    async def tick(self) -> None:
        """One round: sign a checkpoint if the log grew, record failures, watch the witnesses."""
        try:
            cp = await self.audit_log.checkpoint()
        except (PrintgateError, OSError, SQLAlchemyError) as exc:  # keep ticking; the next tick retries
            error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"[:500]
            kind = f"{type(exc).__name__}:{getattr(exc, 'code', '')}"  # the message may name a growing size
            log.warning("audit.checkpoint_failed", error=error)
            if kind != self._failing and await self._record(AuditEventIn(
                    type=event_types.AUDIT_CHECKPOINT_FAILED, outcome=Outcome.FAILURE, actor=ACTOR,
                    details={"error": error, "code": getattr(exc, "code", None)})):
                self._failing = kind
        else:
            self._failing = None
            if cp is not None and cp.tree_size != self._last:
                self._last = cp.tree_size
                self.signed += 1
        if self.witness_silence_s is not None:
            try:
                await self._watch_witnesses(self.witness_silence_s)
            except (OSError, SQLAlchemyError) as exc:
                log.warning("audit.witness_watch_failed", error=str(exc)[:300])

    async def _watch_witnesses(self, silence_s: float) -> None:
        seen = await last_seen(self.audit_log.db)
        if not seen:
            return
        async with self.audit_log.db.session() as s:
            newest = await audit_store.latest_checkpoint(s)
        newest_size = int(newest.tree_size) if newest is not None else 0
        now = self._clock()
        for w in seen:
            at = w.received_at if w.received_at.tzinfo else w.received_at.replace(tzinfo=UTC)
            silent = (now - at).total_seconds()
            if silent < silence_s or newest_size <= w.tree_size:
                self._silent.pop(w.witness, None)  # it answered (or has nothing new to cosign)
                continue
            if self._silent.get(w.witness) == w.tree_size:
                continue  # this silence is recorded already
            if await self._record(AuditEventIn(
                    type=event_types.AUDIT_WITNESS_FAILED, outcome=Outcome.FAILURE, actor=ACTOR,
                    details={"reason": "unreachable", "witness": w.witness, "last_tree_size": w.tree_size,
                             "newest_tree_size": newest_size, "last_seen": at.isoformat(),
                             "silent_seconds": int(silent), "threshold_seconds": silence_s})):
                self._silent[w.witness] = w.tree_size
                log.warning("audit.witness_silent", witness=w.witness, silent_seconds=int(silent))

    async def _record(self, event: AuditEventIn) -> bool:
        try:
            await self.audit_log.append(event)
        except Exception as exc:  # the audit store itself is down: the outage record tells
            log.error("audit.checkpoint_timer_record_failed", type=event.type, error=str(exc)[:300])
            return False
        return True

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
