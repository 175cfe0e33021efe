from datetime import UTC, datetime, timedelta

import pytest

from printgate.domain import (
    AgentId,
    DeviceId,
    DeviceIdentity,
    DwaSession,
    DwaState,
    DwaTarget,
    SessionId,
    UserId,
)
from printgate.errors import InvalidTransition

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _session() -> DwaSession:
    return DwaSession(
        id=SessionId("s1"), user_id=UserId("u1"), device_id=DeviceId("d1"),
        agent_id=AgentId("a1"), target=DwaTarget("127.0.0.1", 8080),
        created_at=NOW, expires_at=NOW + timedelta(minutes=30),
    )


def test_session_walks_the_happy_path_and_records_reasons() -> None:
    s = _session()
    for state in (DwaState.AUTHORISED, DwaState.TUNNEL_OPEN, DwaState.ACTIVE, DwaState.CLOSED):
        s = s.transition(state, at=NOW, reason=f"to {state}")
    assert s.state is DwaState.CLOSED
    assert s.ended_at == NOW
    assert [t.reason for t in s.history][-1] == "to closed"
    assert not s.is_live(NOW)


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ((), DwaState.ACTIVE),
        ((DwaState.DENIED,), DwaState.AUTHORISED),
        ((DwaState.AUTHORISED, DwaState.TUNNEL_OPEN, DwaState.ACTIVE, DwaState.CLOSED), DwaState.ACTIVE),
    ],
)
def test_session_refuses_forbidden_transitions(path: tuple[DwaState, ...], bad: DwaState) -> None:
    s = _session()
    for state in path:
        s = s.transition(state, at=NOW, reason="step")
    with pytest.raises(InvalidTransition, match="cannot go from"):
        s.transition(bad, at=NOW, reason="nope")


def test_session_expiry_and_remaining_time() -> None:
    s = _session()
    assert s.is_live(NOW)
    assert s.remaining_seconds(NOW + timedelta(minutes=10)) == 20 * 60
    assert not s.is_live(NOW + timedelta(minutes=31))
    assert s.remaining_seconds(NOW + timedelta(hours=1)) == 0


def test_identity_mismatch_ignores_unknown_fields() -> None:
    recorded = DeviceIdentity(serial="CN4711", mac="00:11:22:33:44:55", model=None)
    assert recorded.mismatches(DeviceIdentity(serial="CN4711", model="anything")) == []
    assert recorded.mismatches(DeviceIdentity(serial="XX1", mac="00:11:22:33:44:55")) == ["serial"]


def test_target_origin_omits_default_ports() -> None:
    assert DwaTarget("10.0.0.7", 80).origin == "http://10.0.0.7"
    assert DwaTarget("10.0.0.7", 443, "https").origin == "https://10.0.0.7"
    assert DwaTarget("10.0.0.7", 8443, "https").origin == "https://10.0.0.7:8443"
