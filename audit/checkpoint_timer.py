"""Time-based checkpoints: sign a tree head every ``interval`` seconds when the
log has grown (complements ``AuditLog(checkpoint_every=N)``)."""

from __future__ import annotations

import asyncio

from audit.log import AuditLog
from printgate.errors import PrintgateError
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger
from printgate.supervisor import Supervisor

log = get_logger("audit.checkpoint_timer")


class CheckpointTimer(Service):
    """``async with CheckpointTimer(audit_log, 60):`` or start()/aclose()."""

    def __init__(self, audit_log: AuditLog, interval: float, *, supervisor: Supervisor | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.audit_log = audit_log
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._supervisor = supervisor  # runs the loop (restarted if it fails) when given
        self.signed = 0

    async def start(self) -> None:
        if self._supervisor is not None:
            self._supervisor.add("audit-checkpoint-timer", self._run)
        elif self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-checkpoint-timer")

    async def _run(self) -> None:
        last = -1
        while True:
            await asyncio.sleep(self.interval)
            try:
                cp = await self.audit_log.checkpoint()
            except (PrintgateError, OSError) as exc:  # keep ticking; the next tick retries
                log.warning("audit.checkpoint_failed", error=str(exc))
                continue
            if cp is not None and cp.tree_size != last:
                last = cp.tree_size
                self.signed += 1

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

