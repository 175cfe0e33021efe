"""GDPR erasure reaches security alerting: after ``audit.pseudonymise.erase`` of an account no
stored alert, delivery, subscription or engine state names its e-mail address or name, on
SQLite and PostgreSQL; the alerts stay (pseudonymised), the follower goes on."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from audit.log import AuditLog
from audit.pseudonymise import erase
from printgate.domain import AuditEventIn, Outcome, Role
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.store.erasure import pseudonym_email
from printgate.testing.clock import FrozenClock
from printgate.testing.portal import create_user
from tests.alerting.test_follower import Receivers, follower, receivers, subscribe, world

__all__ = ["receivers"]  # the fixture, shared with test_follower

TABLES = ("security_alerts", "security_alert_deliveries", "security_subscriptions", "security_alert_cursor")


async def dump(db: Database) -> str:
    """Every stored value of security alerting's tables, as text."""
    out = []
    async with db.session() as s:
        for table in TABLES:
            for row in (await s.execute(text(f"SELECT * FROM {table}"))).all():
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


async def test_erasing_an_account_removes_its_address_and_name_from_security_alerts(
        db: Database, receivers: Receivers) -> None:
    await world(db)
    victim, _ = await create_user(db, Role.CUSTOMER_ADMIN, dealer="d1", customer="cA")
    bystander, _ = await create_user(db, Role.CUSTOMER_ADMIN, dealer="d1", customer="cA")
    async with db.transaction() as s:  # the victim is also the customer's security contact
        await subs.add_subscription(s, dealer_id="d1", customer_id="cA", contact=victim.display_name,
                                    channel="email", target=victim.email.upper(), secret=None, categories=(),
                                    min_severity=1, now=datetime.now(UTC), created_by=victim.email)
    await subscribe(db, dealer="d1", customer="cA", channel="email", target="soc@a.example", severity="low")
    f = follower(db, receivers, FrozenClock())
    await f.evaluate_once()  # the cursor starts at the head
    log = AuditLog(db, None)
    await log.append_many([  # a burst on the victim's account from many addresses: user-keyed
        AuditEventIn(type="auth.login", outcome=Outcome.FAILURE, actor=victim.email,
                     source_ip=f"198.51.100.{i}", details={"reason": "bad_credentials"}) for i in range(12)]
        + [AuditEventIn(type="vault.credential_revealed", actor=victim.email, device_id="dev-1",
                        dealer_id="d1", customer_id="cA"),
           AuditEventIn(type="auth.mfa", outcome=Outcome.FAILURE, actor=bystander.email,
                        details={"reason": "replayed"})])
    raised = await f.evaluate_once()
    assert {a.rule for a in raised} == {"signin.burst.user", "credentials.revealed", "signin.totp_replay"}
    await f.deliver_once()
    # a second storm window's alert stays pending for delivery when the erasure comes
    await log.append(AuditEventIn(type="vault.credential_revealed", actor=victim.email, device_id="dev-2",
                                  dealer_id="d1", customer_id="cA"))
    assert len(await f.evaluate_once()) == 1
    before = await dump(db)
    assert victim.email in before and victim.display_name in before and victim.email.upper() in before

    await erase(log, value=victim.email, requested_by="dpo@operator.example")

    after = await dump(db)
    assert victim.email.lower() not in after.lower() and victim.display_name not in after
    assert pseudonym_email(victim.id) in after
    assert bystander.email in after  # only the erased person goes
    async with db.session() as s:
        alerts = await subs.recent_alerts(s, dealer_id="d1")
        assert len(alerts) == 4
        states = [d for a in alerts for d in await subs.deliveries_of(s, a.id)]
        victim_mail = [d for d in states if d.target == pseudonym_email(victim.id)]
        assert victim_mail and all(d.status in ("sent", "dead") for d in victim_mail)
        assert [d.status for d in states if d.target == "soc@a.example"].count("pending") == 1
        contacts = await subs.list_subscriptions(s, dealer_id="d1")
        assert [c.enabled for c in contacts if c.target == pseudonym_email(victim.id)] == [False]
    # the follower reads its scrubbed state and goes on
    await log.append(AuditEventIn(type="vault.credential_revealed", actor=bystander.email, device_id="dev-3",
                                  dealer_id="d1", customer_id="cA"))
    assert len(await f.evaluate_once()) == 1
    mailed = len(receivers.mails)
    assert await f.deliver_once() == 2  # the pending one and the new one, both to the soc only
    assert [r for r, _ in receivers.mails[mailed:]] == [["soc@a.example"]] * 2
    assert all(victim.email.lower() not in m.decode().lower() for _, m in receivers.mails[mailed:])
