"""Identity repositories on SQLite and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

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
from printgate.errors import InvalidTransition, NotFound
from printgate.store import approvals, portal_sessions, rule_sets, sso, users
from printgate.store.db import Database
from printgate.store.devices import add_device
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
            return await users.accept_totp_step(s, "u", step)

    results = await asyncio.gather(*(try_step(1000) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert not await try_step(999)  # an older step is a replay too
    assert await try_step(1001)


async def test_replay_cache_remembers_each_key_once(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        assert await sso.remember_once(s, "saml:p:id1", expires_at=NOW + timedelta(hours=1), now=NOW)
        assert not await sso.remember_once(s, "saml:p:id1", expires_at=NOW + timedelta(hours=1), now=NOW)
    async with db.transaction() as s:  # expired entries are purged, so the key is new again later
        assert await sso.remember_once(s, "saml:p:id1", expires_at=NOW + timedelta(hours=3),
                                        now=NOW + timedelta(hours=2))


async def test_rule_sets_are_versioned_and_load_newest(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        assert await rule_sets.load_ruleset(s, "d") is None
        v1 = await rule_sets.save_ruleset(s, "d", {"rules": []}, actor="admin@example.org", now=NOW)
        v2 = await rule_sets.save_ruleset(s, "d", {"mfa_max_age_minutes": 5}, actor="admin@example.org", now=NOW)
    assert (v1, v2) == (1, 2)
    async with db.session() as s:
        body = await rule_sets.load_ruleset(s, "d")
    assert body is not None
    compiled = load_policy(body)
    assert compiled.version == 2 and compiled.ruleset.mfa_max_age_minutes == 5


async def test_active_approval_is_bounded_in_time(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        for approval_id in ("ap1", "ap2"):
            await approvals.request_approval(s, approval_id=approval_id, user_id="u", device_id="x", customer_id="c",
                                        reason="", now=NOW)
        await approvals.decide_approval(s, "ap1", approved=True, by="admin@c", now=NOW,
                                   until=NOW + timedelta(minutes=30))
        await approvals.decide_approval(s, "ap2", approved=False, by="admin@c", now=NOW,
                                   until=NOW + timedelta(hours=5))
    async with db.session() as s:
        assert await approvals.active_approval_until(s, "u", "x", NOW) == NOW + timedelta(minutes=30)
        assert await approvals.active_approval_until(s, "u", "x", NOW + timedelta(minutes=31)) is None
        assert await approvals.active_approval_until(s, "someone-else", "x", NOW) is None


async def test_an_approval_is_decided_once_and_read_back_frozen(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        pending = await approvals.request_approval(s, approval_id="ap3", user_id="u", device_id="x", customer_id="c",
                                              reason="toner", now=NOW)
        decided = await approvals.decide_approval(s, "ap3", approved=False, by="admin@c", now=NOW)
        with pytest.raises(InvalidTransition):
            await approvals.decide_approval(s, "ap3", approved=True, by="admin@c", now=NOW, until=NOW)
    assert (pending.status, decided.status, decided.decided_by) == ("pending", "denied", "admin@c")
    async with db.session() as s:
        assert await approvals.get_approval(s, "ap3") == decided
        assert await approvals.pending_approval(s, "u", "x") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        decided.status = "approved"  # type: ignore[misc]


async def test_a_portal_session_is_read_back_frozen_and_changed_only_by_the_store(db: Database) -> None:
    await _seed(db)
    async with db.transaction() as s:
        created = await portal_sessions.create_portal_session(
            s, session_hash="h" * 64, user_id="u", stage="password", now=NOW, csrf_secret="c" * 32,
            auth_method="password", source_ip="127.0.0.9", mfa_method=None)
        await portal_sessions.touch_portal_session(s, created.id, NOW + timedelta(minutes=3))
        stepped = await portal_sessions.record_second_factor(s, created.id, at=NOW + timedelta(minutes=4),
                                                             method="totp")
    async with db.session() as s:
        loaded = await portal_sessions.get_portal_session(s, "h" * 64)
    assert created.mfa_at is None and loaded == stepped
    assert loaded is not None and loaded.last_seen_at == NOW + timedelta(minutes=3)
    assert (loaded.mfa_at, loaded.mfa_method) == (NOW + timedelta(minutes=4), "totp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.stage = "full"  # type: ignore[misc]
    async with db.transaction() as s:
        assert await portal_sessions.delete_user_portal_sessions(s, "u") == 1
        with pytest.raises(NotFound):
            await portal_sessions.record_second_factor(s, created.id, at=NOW, method="totp")
