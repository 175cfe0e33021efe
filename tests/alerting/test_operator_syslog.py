"""The operator's own syslog collector (``[security_alerts] operator_syslog``) is trusted configuration:
it may sit on an internal network even where tenants' targets must be public."""

from __future__ import annotations

import asyncio

from alerting.follower import follower_from_settings
from audit.log import AuditLog
from printgate.domain import AuditEventIn, Outcome
from printgate.settings import SecurityAlertSettings
from printgate.store.db import Database
from tests.alerting.test_follower import KMS, Receivers, drain, receivers, world  # noqa: F401 (fixture)


async def test_the_operators_internal_syslog_collector_gets_platform_alerts(
        db: Database, receivers: Receivers) -> None:  # noqa: F811
    await world(db)
    cfg = SecurityAlertSettings(operator_syslog=[receivers.syslog_url], allow_private_webhooks=False)
    f = follower_from_settings(db, cfg, KMS)
    await f.evaluate_once()
    await AuditLog(db, None).append_many([
        AuditEventIn(type="relay.connections.refused", outcome=Outcome.DENIED, source_ip="198.51.100.9",
                     details={"refused": 300, "admitted": 0}),
    ])
    await drain(f)
    for _ in range(50):
        if receivers.syslog:
            break
        await asyncio.sleep(0.1)
    assert receivers.syslog and b"198.51.100.9" in receivers.syslog[0]
