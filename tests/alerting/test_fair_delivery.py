"""Issue 20 (a20c N1): one tenant's dead syslog collectors do not delay another tenant's security
alerts. Dealer A subscribes 20 collectors that never accept a connection (real listening sockets
whose backlog is full: the SYN is dropped, connect hangs until its timeout); customer B's healthy
collector (a real TCP syslog receiver) still gets B's alert within seconds, because targets are
taken round-robin between owners with a per-dealer cap well below the gate, and a target that
keeps failing is left alone by its circuit breaker (holding no slot). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from alerting.delivery import Channels
from alerting.follower import SecurityAlertFollower
from audit.log import AuditLog
from integrations.smtp import SmtpConfig
from printgate.domain import AuditEventIn
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.testing.clock import FrozenClock
from printgate.testing.tenancy import Tenancy
from tests.alerting.test_follower import KMS, Receivers, receivers, subscribe, world

__all__ = ["receivers"]  # the fixture, shared with test_follower

DEAD = 20


@pytest.fixture
def black_holes() -> Iterator[list[str]]:
    """``DEAD`` syslog targets on loopback that never accept: listen(0) with the backlog filled."""
    held: list[socket.socket] = []
    targets = []
    try:
        for _ in range(DEAD):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen(0)
            held.append(srv)
            port = srv.getsockname()[1]
            for _ in range(4):
                c = socket.socket()
                c.setblocking(False)
                try:
                    c.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                held.append(c)
            targets.append(f"tcp://127.0.0.1:{port}")
        yield targets
    finally:
        for s in held:
            s.close()


def _follower(db: Database, rx: Receivers, clock: FrozenClock) -> SecurityAlertFollower:
    channels = Channels(smtp=SmtpConfig(host="127.0.0.1", port=rx.smtp_port, timeout=5),
                        allow_private_webhooks=True, timeout=5)  # a hanging connect holds a slot 5 s
    return SecurityAlertFollower(db, channels, KMS, clock=clock, retry_base_s=1, poll_s=0.05, concurrency=8,
                                 attempt_timeout_s=30, breaker_seconds=600)


async def _alert(db: Database, dealer: str, customer: str) -> None:
    await AuditLog(db, None).append(AuditEventIn(
        type="vault.credential_revealed", actor="tech@dealer.example", dealer_id=dealer, customer_id=customer,
        device_id="dev1"))


@pytest.mark.parametrize("b_dealer", ["d2", "d1"], ids=["other-dealer", "same-dealer"])
async def test_dead_collectors_of_one_dealer_do_not_delay_another_tenants_alert(
        db: Database, receivers: Receivers, black_holes: list[str], b_dealer: str) -> None:
    await world(db)  # d1 with customers cA, cB
    await Tenancy().dealer("d2").customer("cX", "d2").site("sX", "cX").save(db)
    b_customer = "cX" if b_dealer == "d2" else "cB"
    for target in black_holes:  # dealer A's own (dealer-wide) subscriptions
        await subscribe(db, dealer="d1", customer=None, channel="syslog", target=target)
    await subscribe(db, dealer=b_dealer, customer=b_customer, channel="syslog", target=receivers.syslog_url)
    clock = FrozenClock()
    f = _follower(db, receivers, clock)
    await f.evaluate_once()
    for _ in range(3):  # A's alerts first: 20 x 3 deliveries to dead targets are ahead in line
        await _alert(db, "d1", "cA")
        await f.evaluate_once()
        clock.advance(seconds=61)  # a new alert, not a fold into the first one's quiet window
    await _alert(db, b_dealer, b_customer)
    raised = await f.evaluate_once()
    assert raised and raised[-1].customer_id == b_customer
    loop = asyncio.create_task(f.run_delivery())
    try:
        began = time.monotonic()
        while not receivers.syslog and time.monotonic() - began < 20:
            await asyncio.sleep(0.05)
        took = time.monotonic() - began
        assert receivers.syslog, "customer B's alert never reached its collector"
        assert took < 3.0, f"customer B's alert took {took:.1f} s behind dealer A's dead collectors"
        # dealer A never held more than half the slots
        assert sum(n for (dealer, _), n in f._owner_inflight.items() if dealer == "d1") <= f.per_tenant
    finally:
        await f.aclose()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_target_that_keeps_failing_is_left_alone_by_its_breaker(
        db: Database, receivers: Receivers, black_holes: list[str]) -> None:
    """After ``breaker_failures`` failed attempts in a row a target is not tried (nor counted as an
    attempt) until its breaker time has passed; a success closes it."""
    await world(db)
    dead = "tcp://127.0.0.1:9"  # discard port on loopback: nothing listens, refused at once
    await subscribe(db, dealer="d1", customer=None, channel="syslog", target=dead)
    clock = FrozenClock()
    channels = Channels(smtp=SmtpConfig(host="127.0.0.1", port=receivers.smtp_port, timeout=5),
                        allow_private_webhooks=True, timeout=5)
    f = SecurityAlertFollower(db, channels, KMS, clock=clock, retry_base_s=1, breaker_failures=3,
                              breaker_seconds=60)
    await f.evaluate_once()
    await _alert(db, "d1", "cA")
    [alert] = await f.evaluate_once()

    async def attempts() -> int:
        async with db.session() as s:
            [d] = await subs.deliveries_of(s, alert.id)
        return d.attempts

    for n in range(1, 4):
        await f.deliver_once()
        assert await attempts() == n
        clock.advance(seconds=2 ** n + 1)  # past the retry back-off
    assert ("syslog", dead) in f._open_until  # opened at the third failure
    for _ in range(3):  # due again, but its breaker is open: not tried
        await f.deliver_once()
        assert await attempts() == 3
        clock.advance(seconds=10)
    clock.advance(seconds=60)
    await f.deliver_once()  # half-open: tried once, fails, open again for twice as long
    assert await attempts() == 4
    assert f._open_until[("syslog", dead)][1] == 120
    await f.aclose()
