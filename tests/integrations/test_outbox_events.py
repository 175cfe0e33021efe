"""Which changes put which events in the outbox, in the change's own transaction (SQLite and
PostgreSQL): a session that becomes active and later ends, a refused one (nothing), a customer
approval request, a printer alert that opens and clears."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from printgate.domain import (
    AgentId,
    DeviceId,
    DwaSession,
    DwaState,
    DwaTarget,
    Role,
    SessionId,
    SessionReason,
    UserId,
)
from printgate.store import approvals, outbox
from printgate.store.db import Database
from printgate.store.models.outbox import OutboxEventRow
from printgate.store.sessions import save_session
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


async def seeded(db: Database) -> str:
    """The tenancy and a technician; the technician's id."""
    await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
           .device("dev1", "s1", "a1", "10.0.0.5").save(db))
    user, _ = await create_user(db, Role.TECHNICIAN, totp=False)
    return user.id


async def events(db: Database) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(OutboxEventRow).order_by(OutboxEventRow.seq))).all()
    return [{"kind": r.kind, "dealer": r.dealer_id, "customer": r.customer_id, "site": r.site_id,
             "device": r.device_id, **r.payload} for r in rows]


def new_session(sid: str, user_id: str) -> DwaSession:
    return DwaSession(SessionId(sid), UserId(user_id), DeviceId("dev1"), AgentId("a1"),
                      DwaTarget("10.0.0.5", 443, "https"), created_at=T0, expires_at=T0 + timedelta(minutes=30),
                      reason=SessionReason.from_dict({"kind": "ticket", "text": "T-4711"}))


async def test_a_session_that_became_active_tells_opened_then_ended(db: Database) -> None:
    tech = await seeded(db)
    sess = new_session("s-1", tech)
    for state, minute in ((DwaState.AUTHORISED, 0), (DwaState.TUNNEL_OPEN, 1), (DwaState.ACTIVE, 1)):
        sess = sess.transition(state, at=T0 + timedelta(minutes=minute), reason="step")
        async with db.transaction() as s:
            await save_session(s, sess)
    assert [e["kind"] for e in await events(db)] == [outbox.SESSION_OPENED]
    sess = sess.transition(DwaState.CLOSED, at=T0 + timedelta(minutes=12), reason="closed by the technician")
    async with db.transaction() as s:
        await save_session(s, sess)
    opened, ended = await events(db)
    assert (opened["dealer"], opened["customer"], opened["site"], opened["device"]) == ("d1", "c1", "s1", "dev1")
    assert opened["session_id"] == "s-1" and opened["reason"] == {"kind": "ticket", "text": "T-4711"}
    assert ended["kind"] == outbox.SESSION_ENDED and ended["state"] == "closed"
    assert ended["end_reason"] == "closed by the technician" and ended["duration_seconds"] == 720
    async with db.transaction() as s:  # saving again adds no event
        await save_session(s, sess)
    assert len(await events(db)) == 2


async def test_a_refused_session_tells_nothing(db: Database) -> None:
    tech = await seeded(db)
    async with db.transaction() as s:
        await save_session(s, new_session("s-2", tech).transition(DwaState.DENIED, at=T0, reason="policy"))
    assert await events(db) == []


async def test_an_approval_request_is_told_with_its_reason(db: Database) -> None:
    tech = await seeded(db)
    async with db.transaction() as s:
        await approvals.request_approval(s, approval_id="ap1", user_id=tech, device_id="dev1",
                                         customer_id="c1", reason="paper jam at reception", now=T0)
    [e] = await events(db)
    assert e["kind"] == outbox.SESSION_APPROVAL_REQUESTED and e["approval_id"] == "ap1"
    assert e["reason"] == "paper jam at reception" and e["customer"] == "c1"
