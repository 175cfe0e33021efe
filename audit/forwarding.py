"""Continuous forwarding of new audit records (and signed checkpoints) to a syslog collector.

``SyslogShipper`` polls the store for records after the last one shipped and
sends them, in seq order, through a ``SyslogForwarder``; a failed send is
retried on the next tick from the same position (at-least-once delivery; the
collector can de-duplicate on ``seq``/``hash``).
"""

from __future__ import annotations

import asyncio
import contextlib

from audit.checkpoint import Checkpoint
from audit.errors import SyslogError
from audit.query import AuditFilter, search
from audit.syslog import SyslogForwarder
from printgate.lifecycle import Service, cancel_and_wait
from printgate.logs import get_logger
from printgate.store import audit as store
from printgate.store.db import Database

log = get_logger("audit.forwarding")


class SyslogShipper(Service):
    """``async with SyslogShipper(db, forwarder, after_seq=0):`` ships until closed."""

    def __init__(self, db: Database, forwarder: SyslogForwarder, *, after_seq: int = 0,
                 interval: float = 1.0, batch: int = 500) -> None:
        self.db = db
        self.forwarder = forwarder
        self.shipped_seq = after_seq
        self.shipped_checkpoint = 0
        self.interval = interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def ship_once(self) -> int:
        """Send every record after ``shipped_seq``, then new signed checkpoints;
        returns how many records were sent."""
        sent = 0
        while True:
            records = await search(self.db, AuditFilter(after_seq=self.shipped_seq, limit=self.batch))
            if not records:
                break
            await self.forwarder.send(records)
            self.shipped_seq = records[-1].seq
            sent += len(records)
        fresh = [Checkpoint(int(c.tree_size), c.root, c.head, c.at, c.key_id, c.signature)
                 for c in await store.checkpoints(self.db) if c.tree_size > self.shipped_checkpoint]
        if fresh:
            await self.forwarder.send_checkpoints(fresh)
            self.shipped_checkpoint = fresh[-1].tree_size
        return sent

    async def _run(self) -> None:
        while True:
            try:
                await self.ship_once()
            except SyslogError as exc:
                log.warning("audit.forward_failed", error=exc.message, at_seq=self.shipped_seq)
                with contextlib.suppress(SyslogError):
                    await self.forwarder.aclose()
                    await self.forwarder.start()
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        if self._task is None:
            await self.forwarder.start()
            self._task = asyncio.create_task(self._run(), name="audit-syslog-shipper")

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.forwarder.aclose()

