"""The cloud's own loops run supervised: the audit checkpoint timer is a task of the cloud's supervisor
(its health visible, restarted if it fails) and signs again after a PostgreSQL outage (a cluster this
test made)."""

from __future__ import annotations

import asyncio

from audit.checkpoint import Signer
from audit.checkpoint_timer import CheckpointTimer
from audit.log import AuditLog
from printgate.domain import AuditEventIn
from printgate.store.db import Database, migrate
from printgate.supervisor import Backoff, Supervisor
from tests.faults.conftest import OwnPostgres, until


async def test_checkpoint_timer_survives_a_database_outage(own_postgres: OwnPostgres) -> None:
    await migrate(own_postgres.url)
    db = Database(own_postgres.url)
    log = AuditLog(db, Signer.generate())
    sup = Supervisor("cloud", backoff=Backoff(initial=0.2, maximum=0.5))
    timer = CheckpointTimer(log, 0.2, supervisor=sup)
    try:
        async with sup, timer:
            await log.append(AuditEventIn(type="test.before"))
            await until(lambda: timer.signed >= 1, 10, "no checkpoint signed before the outage")

            assert [(h.name, h.state) for h in sup.health()] == [("audit-checkpoint-timer", "running")]

            own_postgres.stop("fast")
            await asyncio.sleep(1.0)  # a few ticks fail meanwhile

            own_postgres.start()
            signed = timer.signed
            await log.append(AuditEventIn(type="test.after"))
            await until(lambda: timer.signed > signed, 20, "no checkpoint signed after the database came back")
            assert sup.health()[0].state == "running"
    finally:
        await db.aclose()
