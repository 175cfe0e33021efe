from __future__ import annotations

import asyncio

from audit.checkpoint import Signer
from audit.checkpoint_timer import CheckpointTimer
from audit.export import verify_store
from audit.log import AuditLog
from printgate.store import audit as store
from printgate.store.db import Database
from tests.audit.conftest import sample_events


async def test_the_timer_signs_the_head_only_when_the_log_grew(db: Database, signer: Signer) -> None:
    log = AuditLog(db, signer, checkpoint_every=10_000)
    await log.append_many(sample_events(3))
    async with CheckpointTimer(log, 0.1) as timer:
        for _ in range(50):
            if await store.checkpoints(db):
                break
            await asyncio.sleep(0.05)
        await log.append_many(sample_events(2))
        for _ in range(50):
            if len(await store.checkpoints(db)) == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    assert [c.tree_size for c in await store.checkpoints(db)] == [3, 5]
    assert timer.signed == 2
    report = await verify_store(db, signer.verifier())
    assert report.ok and report.unanchored == 0
