"""One slow receiver delays only itself: deliveries go out per (channel, target) concurrently,
at most ``concurrency`` targets at once, and each attempt is bounded by ``attempt_timeout_s``.
Real receivers on loopback: webhook endpoints that sleep, the aiosmtpd server of
``test_follower``; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from audit.log import AuditLog
from lab.sites import serve
from printgate.domain import AuditEventIn
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.testing.clock import FrozenClock
from tests.alerting.test_follower import (
    Receivers,
    follower,
    receivers,
    subscribe,
    world,
)

__all__ = ["receivers"]  # the fixture, shared with test_follower


@dataclass
class Sleepy:
    """Webhook endpoints: ``/slow/<n>`` answers after ``delay`` seconds, ``/fast`` at once.
    ``events`` is the order things happened in; ``busy``/``most`` count slow requests in flight."""

    base: str = ""
    delay: float = 2.0
    events: list[str] = field(default_factory=list)
    busy: int = 0
    most: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def sleepy() -> AsyncIterator[Sleepy]:
    sl = Sleepy()

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        sl.busy += 1
        sl.most = max(sl.most, sl.busy)
        try:
            sl.events.append(f"slow{request.match_info['n']} started")
            try:
                await asyncio.wait_for(sl.release.wait(), sl.delay)
            except TimeoutError:
                pass
            sl.events.append(f"slow{request.match_info['n']} answered")
        finally:
            sl.busy -= 1
        return web.Response(status=204)

    async def fast(request: web.Request) -> web.Response:
        await request.read()
        sl.events.append("fast")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/slow/{n}", slow)
    app.router.add_post("/fast", fast)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)  # a dropped request ends
    await runner.setup()
    port = await serve(runner)
    sl.base = f"http://127.0.0.1:{port}"
    yield sl
    sl.release.set()
    await runner.cleanup()


async def _one_alert(db: Database) -> None:
    await AuditLog(db, None).append(AuditEventIn(
        type="vault.credential_revealed", actor="tech@dealer.example", dealer_id="d1", customer_id="cA",
        device_id="dev1"))


async def test_a_slow_webhook_does_not_hold_up_the_other_targets(
        db: Database, receivers: Receivers, sleepy: Sleepy) -> None:
    await world(db)
    # the slow receiver's delivery is the first in line
    await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=f"{sleepy.base}/slow/1")
    await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=f"{sleepy.base}/fast")
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="secops@a.example")
    f = follower(db, receivers, FrozenClock())
    await f.evaluate_once()
    await _one_alert(db)
    assert len(await f.evaluate_once()) == 1
    assert await f.deliver_once() == 3
    # the fast webhook and the e-mail were out while the slow receiver still sat on its request
    assert sleepy.events.index("fast") < sleepy.events.index("slow1 answered"), sleepy.events
    assert len(receivers.mails) == 1
    await f.aclose()


async def test_at_most_concurrency_targets_at_once_and_each_attempt_is_bounded(
        db: Database, receivers: Receivers, sleepy: Sleepy) -> None:
    await world(db)
    for n in range(4):
        await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=f"{sleepy.base}/slow/{n}")
    sleepy.delay = 30.0  # longer than the attempt timeout: every attempt is cut off
    # one owner may use the whole gate here (the per-dealer caps are tested in test_fair_delivery)
    f = follower(db, receivers, FrozenClock(), concurrency=2, attempt_timeout_s=0.5, per_tenant=4, per_owner=4)
    await f.evaluate_once()
    await _one_alert(db)
    await f.evaluate_once()
    began = time.monotonic()
    assert await f.deliver_once() == 0
    took = time.monotonic() - began
    assert sleepy.most == 2  # the bound
    assert took < 10.0, took  # two rounds of 0.5 s cut-offs, not 4 x 30 s
    async with db.session() as s:
        [alert] = await subs.recent_alerts(s, customer_id="cA")
        states = await subs.deliveries_of(s, alert.id)
    assert [(d.status, d.attempts, d.last_error) for d in states] == [("pending", 1, "no answer within 0.5 s")] * 4
    await f.aclose()


async def test_the_delivery_loop_does_not_wait_for_a_slow_target(
        db: Database, receivers: Receivers, sleepy: Sleepy) -> None:
    """``run_delivery`` starts a slow target's task and goes on: an alert raised meanwhile
    reaches the other targets without waiting for the slow one."""
    await world(db)
    await subscribe(db, dealer="d1", customer="cA", channel="webhook", target=f"{sleepy.base}/slow/1")
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="secops@a.example")
    sleepy.delay = 30.0
    f = follower(db, receivers, FrozenClock(), poll_s=0.05)
    await f.evaluate_once()
    await _one_alert(db)
    await f.evaluate_once()
    loop = asyncio.create_task(f.run_delivery())
    try:
        async with asyncio.timeout(10):
            while len(receivers.mails) < 1 or sleepy.busy < 1:
                await asyncio.sleep(0.02)
            await AuditLog(db, None).append(AuditEventIn(
                type="vault.credential_revealed", actor="tech@dealer.example", dealer_id="d1", customer_id="cA",
                device_id="dev2"))
            await f.evaluate_once()
            while len(receivers.mails) < 2:  # the second alert's e-mail, the slow webhook still busy
                await asyncio.sleep(0.02)
        assert sleepy.busy == 1 and "slow1 answered" not in sleepy.events
    finally:
        sleepy.release.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await f.aclose()
