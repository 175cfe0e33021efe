""""More time" with the default policy (issue 15): a session starts below the policy's maximum
total (20 of 30 min), "More time" adds 10 min up to that maximum, and once there it is refused
(the gateway's broker on a real database, the default rule set; only the relay's credential
deadline is recorded instead of moving a running relay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from gateway.broker import BrokerConfig, DwaBroker
from gateway.dwa_policy import decide_dwa_open
from printgate.domain import AgentId, DeviceId, DwaState, DwaTarget, Role, SessionId, UserId
from printgate.domain.dwa import DwaSession
from printgate.settings import GatewaySettings
from printgate.store.db import Database
from printgate.store.sessions import load_session
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.portal import create_user
from printgate.testing.tenancy import Tenancy


class RelayDeadlines:
    def __init__(self) -> None:
        self.issued: list[int] = []

    def issue_credential(self, session_id: str, *, valid_seconds: int, agent_id: str) -> None:
        self.issued.append(valid_seconds)


async def _live_session(db: Database, session_id: str, minutes_in: int) -> tuple[DwaBroker, RelayDeadlines, DwaSession]:
    """A broker with one active session of a technician on dev1, opened ``minutes_in`` minutes ago
    with the default time to live (the relay records the credential deadlines it is given)."""
    t = Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1", online=True)
    t.device("dev1", "s1", "a1", "127.0.20.1")
    await t.save(db)
    user, _ = await create_user(db, Role.TECHNICIAN, dealer="d1")
    unused, relay = cast(Any, None), RelayDeadlines()
    broker = DwaBroker(BrokerConfig(), db=db, audit=RecordingAuditSink(), decide=decide_dwa_open, firewall=unused,
                       relay=relay, commands=unused, proxy=unused, routes=unused, make_open_command=unused,
                       make_close_command=unused, make_route=unused)
    created = datetime.now(UTC) - timedelta(minutes=minutes_in)
    session = DwaSession(SessionId(session_id), UserId(user.id), DeviceId("dev1"), AgentId("a1"),
                         DwaTarget("127.0.20.1", 80), created, created + timedelta(seconds=BrokerConfig().session_ttl_s))
    for state in (DwaState.AUTHORISED, DwaState.TUNNEL_OPEN, DwaState.ACTIVE):
        session = session.transition(state, at=created, reason="test")
    await broker._save(session)
    broker._live[session.id] = (session, user, "127.0.0.1")
    return broker, relay, session


async def test_more_time_adds_a_step_up_to_the_policys_maximum_then_refuses(db: Database) -> None:
    assert GatewaySettings().session_ttl_seconds == BrokerConfig().session_ttl_s == 20 * 60  # below 30
    broker, relay, session = await _live_session(db, "sess-more", minutes_in=2)
    created = session.created_at

    first = await broker.extend_session(session.id)
    assert first == created + timedelta(minutes=30)  # 20 + 10, the policy's 30-minute maximum
    assert relay.issued and abs(relay.issued[-1] - 28 * 60) <= 5
    async with db.session() as s:
        stored = await load_session(s, session.id)
    assert stored is not None and stored.expires_at == first
    assert await broker.extend_session(session.id) is None  # already the longest the policy allows
    assert broker._live[session.id][0].expires_at == first


async def test_more_time_late_in_a_session_rests_on_the_mfa_that_opened_it(db: Database) -> None:
    """18 minutes into a session (the default rule set wants MFA at most 15 minutes old) "More time"
    still works: the session was authorised with a fresh MFA, and the extension stays within the
    policy's maximum total."""
    broker, _relay, session = await _live_session(db, "sess-late", minutes_in=18)
    broker._mfa_age_at_open[session.id] = 30.0  # signed in with TOTP 30 s before opening it

    assert await broker.extend_session(session.id) == session.created_at + timedelta(minutes=30)
