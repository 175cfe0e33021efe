"""Identity repositories on SQLite and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from policy import load_policy
from printgate.domain import (
    Agent,
    AgentId,
    Customer,
    CustomerId,
    Dealer,
    DealerId,
    Device,
    DeviceId,
    DeviceIdentity,
    Role,
    Site,
    SiteId,
    User,
    UserId,
)
from printgate.store import identity as repo
from printgate.store.db import Database
from printgate.store.devices import add_device
from printgate.store.models.identity import ApprovalRow
from printgate.store.tenants import add_agent, add_customer, add_dealer, add_site, add_user

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def _seed(db: Database) -> None:
    async with db.transaction() as s:
        await add_dealer(s, Dealer(DealerId("d"), "D"))
        await s.flush()
        await add_customer(s, Customer(CustomerId("c"), DealerId("d"), "C"))
        await s.flush()
        await add_site(s, Site(SiteId("s"), CustomerId("c"), "S"))
        await s.flush()
        await add_agent(s, Agent(AgentId("a"), SiteId("s"), "A"))
        await s.flush()
        await add_device(s, Device(DeviceId("x"), SiteId("s"), AgentId("a"), "127.0.20.1",
                                   DeviceIdentity()), now=NOW)
        await add_user(s, User(UserId("u"), "u@example.org", "U", frozenset({Role.TECHNICIAN}),
                               DealerId("d")), totp_secret="JBSWY3DPEHPK3PXP")


async def test_totp_step_is_accepted_once_even_under_concurrency(db: Database) -> None:
    await _seed(db)

    async def try_step(step: int) -> bool:
        async with db.transaction() as s:
            return await repo.accept_totp_step(s, "u", step)

    results = await asyncio.gather(*(try_step(1000) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert not await try_step(999)  # an older step is a replay too
    assert await try_step(1001)


async def test_replay_cache_remembers_each_key_once(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        assert await repo.remember_once(s, "saml:p:id1", expires_at=NOW + timedelta(hours=1), now=NOW)
        assert not await repo.remember_once(s, "saml:p:id1", expires_at=NOW + timedelta(hours=1), now=NOW)
    async with db.transaction() as s:  # expired entries are purged, so the key is new again later
        assert await repo.remember_once(s, "saml:p:id1", expires_at=NOW + timedelta(hours=3),
                                        now=NOW + timedelta(hours=2))


async def test_rule_sets_are_versioned_and_load_newest(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        assert await repo.load_ruleset(s, "d") is None
        v1 = await repo.save_ruleset(s, "d", {"rules": []}, actor="admin@example.org", now=NOW)
        v2 = await repo.save_ruleset(s, "d", {"mfa_max_age_minutes": 5}, actor="admin@example.org", now=NOW)
    assert (v1, v2) == (1, 2)
    async with db.session() as s:
        body = await repo.load_ruleset(s, "d")
    assert body is not None
    compiled = load_policy(body)
    assert compiled.version == 2 and compiled.ruleset.mfa_max_age_minutes == 5


async def test_active_approval_is_bounded_in_time(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        await repo.add_approval(s, ApprovalRow(id="ap1", user_id="u", device_id="x", customer_id="c",
                                               status="approved", requested_at=NOW,
                                               approved_until=NOW + timedelta(minutes=30)))
        await repo.add_approval(s, ApprovalRow(id="ap2", user_id="u", device_id="x", customer_id="c",
                                               status="denied", requested_at=NOW,
                                               approved_until=NOW + timedelta(hours=5)))
    async with db.session() as s:
        assert await repo.active_approval_until(s, "u", "x", NOW) == NOW + timedelta(minutes=30)
        assert await repo.active_approval_until(s, "u", "x", NOW + timedelta(minutes=31)) is None
        assert await repo.active_approval_until(s, "someone-else", "x", NOW) is None
