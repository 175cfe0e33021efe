"""`printgate policy explain` prints the same reasons the portal shows."""

from __future__ import annotations

import asyncio

from printgate.cli.policy import _explain
from printgate.domain import Role
from printgate.settings import Settings
from printgate.testing.portal import create_user
from tests.portal.conftest import Portal


async def test_policy_explain_lists_every_reason(portal: Portal) -> None:
    user, _ = await create_user(portal.db, Role.TECHNICIAN)
    settings = Settings(database_url=portal.db.url)
    allow, text = await _explain(settings, user.email, "dev-c-never", "127.0.0.1", None)
    assert not allow
    assert "DENY" in text and "[customer.remote_access_never]" in text and "[mfa.missing]" in text
    allow, text = await _explain(settings, user.id, "dev-c-open", "127.0.0.1", 30.0)
    assert allow and "ALLOW" in text and "[ownership.same_tenant]" in text
    allow, text = await _explain(settings, user.id, "dev-c-other", "127.0.0.1", 30.0)
    assert not allow and "[ownership.other_tenant]" in text
    assert asyncio.iscoroutinefunction(_explain)
