"""The proxy's session table (gateway/proxy/routes.py) with an injected clock: routes by host,
tombstones, extension, one-time launch tokens, cookies stored as digests, change listeners."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.proxy.routes import RouteChange, RouteTable, SessionRoute, Tombstone, cookie_digest
from printgate.domain.credentials import DeviceLogin, LoginKind
from printgate.errors import NotFound, TokenInvalid
from printgate.token_digest import token_digest

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def route(sid: str = "s1", host: str = "s-s1.dwa.localhost", **kw: object) -> SessionRoute:
    fields: dict[str, object] = dict(
        session_id=sid, host=host, upstream_host="127.0.0.1", upstream_port=40001,
        device_origin="http://192.0.2.7", device_scheme="http", pinned_fingerprint=None,
        expires_at=T0 + timedelta(minutes=30), idle_timeout_s=600, device_label="MFP", customer_name="ACME",
    )
    fields.update(kw)
    return SessionRoute(**fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(clock: Clock) -> RouteTable:
    return RouteTable(launch_token_ttl_s=60, tombstone_ttl_s=3600, clock=clock)


def test_routes_are_found_by_host_case_insensitively_and_by_id(table: RouteTable) -> None:
    table.add(route(host="S-S1.DWA.localhost"))
    found = table.by_host("s-s1.dwa.LOCALHOST")
    assert isinstance(found, SessionRoute) and found.session_id == "s1" and found.host == "s-s1.dwa.localhost"
    assert table.get("s1") == found and table.live_routes() == [found]
    assert table.by_host("s-other.dwa.localhost") is None and table.get("nope") is None


def test_a_host_belongs_to_one_live_session(table: RouteTable) -> None:
    table.add(route("s1"))
    with pytest.raises(TokenInvalid):
        table.add(route("s2", host="S-s1.dwa.localhost"))
    assert table.by_host("s-s1.dwa.localhost").session_id == "s1"  # type: ignore[union-attr]


def test_removal_leaves_a_tombstone_until_its_ttl(table: RouteTable, clock: Clock) -> None:
    table.add(route())
    clock.advance(5)
    table.remove("s1", "ended by the technician")
    tomb = table.by_host("s-s1.dwa.localhost")
    assert tomb == Tombstone("s1", "s-s1.dwa.localhost", "ended by the technician", T0 + timedelta(seconds=5))
    assert table.get("s1") is None and table.live_routes() == []
    clock.advance(3600)
    assert table.by_host("s-s1.dwa.localhost") is not None  # exactly the ttl: still shown
    clock.advance(1)
    assert table.by_host("s-s1.dwa.localhost") is None


def test_removing_an_unknown_session_does_nothing(table: RouteTable) -> None:
    seen: list[object] = []
    table.on_remove(lambda sid, why: seen.append((sid, why)))
    table.on_change(seen.append)
    table.remove("ghost", "x")
    assert seen == []


def test_adding_the_host_again_clears_its_tombstone_and_a_live_route_wins_over_a_sent_tombstone(
        table: RouteTable) -> None:
    table.add(route())
    table.remove("s1", "expired")
    table.add(route("s1b", host="s-s1.dwa.localhost"))
    assert isinstance(table.by_host("s-s1.dwa.localhost"), SessionRoute)
    table.add_tombstone(Tombstone("s1b", "s-s1.dwa.localhost", "elsewhere", T0))
    assert isinstance(table.by_host("s-s1.dwa.localhost"), SessionRoute)
    table.add_tombstone(Tombstone("old", "s-old.dwa.localhost", "replica", T0))
    assert table.by_host("s-old.dwa.localhost") == Tombstone("old", "s-old.dwa.localhost", "replica", T0)


def test_extend_moves_the_expiry_and_unknown_sessions_are_not_found(table: RouteTable) -> None:
    table.add(route())
    later = T0 + timedelta(hours=1)
    assert table.extend("s1", later).expires_at == later
    assert table.get("s1").expires_at == later  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        table.extend("ghost", later)


def test_touch_records_activity_with_the_injected_clock(table: RouteTable, clock: Clock) -> None:
    table.add(route())
    assert table.last_activity("s1") == T0
    clock.advance(42)
    table.touch("s1")
    table.touch("ghost")
    assert table.last_activity("s1") == T0 + timedelta(seconds=42) and table.last_activity("ghost") is None
    assert table.now() == clock.now


def test_launch_token_is_one_time_host_bound_and_expires(table: RouteTable, clock: Clock) -> None:
    table.add(route())
    table.add(route("s2", host="s-s2.dwa.localhost"))
    token = table.issue_launch_token("s1")
    with pytest.raises(TokenInvalid, match="does not belong"):
        table.redeem_launch_token("s-s2.dwa.localhost", token)  # consumed even on the wrong host
    with pytest.raises(TokenInvalid, match="already used"):
        table.redeem_launch_token("s-s1.dwa.localhost", token)
    token = table.issue_launch_token("s1")
    cookie = table.redeem_launch_token("S-S1.dwa.localhost", token)
    assert table.cookie_is_valid("s1", cookie)
    assert not table.cookie_is_valid("s2", cookie) and not table.cookie_is_valid("s1", cookie + "x")
    with pytest.raises(TokenInvalid):
        table.redeem_launch_token("s-s1.dwa.localhost", token)
    late = table.issue_launch_token("s1")
    clock.advance(61)
    with pytest.raises(TokenInvalid, match="expired"):
        table.redeem_launch_token("s-s1.dwa.localhost", late)
    with pytest.raises(NotFound):
        table.issue_launch_token("ghost")


def test_secrets_are_stored_only_as_sha256(table: RouteTable) -> None:
    table.add(route())
    token = table.issue_launch_token("s1")
    cookie = table.redeem_launch_token("s-s1.dwa.localhost", token)
    assert cookie_digest is token_digest
    assert table.cookie_digests("s1") == [token_digest(cookie)]
    state = repr(vars(table))
    assert cookie not in state and token not in state


def test_removal_revokes_its_launch_tokens_and_cookies(table: RouteTable) -> None:
    table.add(route())
    cookie = table.redeem_launch_token("s-s1.dwa.localhost", table.issue_launch_token("s1"))
    pending = table.issue_launch_token("s1")
    table.remove("s1", "ended")
    table.add(route())  # the same session id and host again
    assert not table.cookie_is_valid("s1", cookie) and table.cookie_digests("s1") == []
    with pytest.raises(TokenInvalid):
        table.redeem_launch_token("s-s1.dwa.localhost", pending)


def test_cookie_digest_from_the_authoritative_table_is_accepted(table: RouteTable) -> None:
    table.add(route())
    table.add_cookie_digest("s1", token_digest("issued-elsewhere"))
    table.add_cookie_digest("ghost", token_digest("x"))
    assert table.cookie_is_valid("s1", "issued-elsewhere")
    assert not table.cookie_is_valid("ghost", "x") and table.cookie_digests("ghost") == []


def test_an_update_of_the_same_route_keeps_cookies_and_activity(table: RouteTable, clock: Clock) -> None:
    table.add(route())
    cookie = table.redeem_launch_token("s-s1.dwa.localhost", table.issue_launch_token("s1"))
    clock.advance(10)
    table.add(route(device_label="renamed"))
    assert table.cookie_is_valid("s1", cookie) and table.last_activity("s1") == T0
    assert table.get("s1").device_label == "renamed"  # type: ignore[union-attr]


def test_listeners_see_every_change_in_order(table: RouteTable) -> None:
    changes: list[RouteChange] = []
    removed: list[tuple[str, str]] = []
    table.on_change(changes.append)
    table.on_remove(lambda sid, why: removed.append((sid, why)))
    table.add(route())
    table.extend("s1", T0 + timedelta(hours=2))
    cookie = table.redeem_launch_token("s-s1.dwa.localhost", table.issue_launch_token("s1"))
    table.remove("s1", "idle")
    assert [c.kind for c in changes] == ["add", "extend", "cookie", "remove"]
    assert changes[1].route is not None and changes[1].route.expires_at == T0 + timedelta(hours=2)
    assert changes[2].cookie_digest == token_digest(cookie) and cookie not in repr(changes[2])
    assert changes[3].reason == "idle" and removed == [("s1", "idle")]


def login(version: int = 1) -> DeviceLogin:
    return DeviceLogin(LoginKind.BASIC, "admin", "s3cret", version=version)


def test_drop_logins_forgets_the_secret_of_one_customer_only(table: RouteTable) -> None:
    table.add(route("s1", customer_id="c1", login=login()))
    table.add(route("s2", host="s-s2.dwa.localhost", customer_id="c2", login=login()))
    table.add(route("s3", host="s-s3.dwa.localhost", customer_id="c1"))
    changes: list[RouteChange] = []
    table.on_change(changes.append)
    assert table.drop_logins("c1") == ["s1"]
    assert table.get("s1").login is None and table.get("s2").login is not None  # type: ignore[union-attr]
    assert [(c.kind, c.session_id) for c in changes] == [("add", "s1")]


def test_a_typed_credential_is_remembered_for_the_technicians_later_sessions(table: RouteTable) -> None:
    r = route(user_id="u1", device_id="d1", login=login())
    table.add(r)
    table.mark_credential_typed("s1")
    assert table.get("s1").credential_typed  # type: ignore[union-attr]
    table.remove("s1", "done")
    table.add(replace(r, session_id="s9", host="s-s9.dwa.localhost"))
    assert table.get("s9").credential_typed  # type: ignore[union-attr]
    # a new credential version or another technician: masked again
    table.add(replace(r, session_id="s10", host="s-s10.dwa.localhost", login=login(version=2)))
    table.add(replace(r, session_id="s11", host="s-s11.dwa.localhost", user_id="u2"))
    assert not table.get("s10").credential_typed and not table.get("s11").credential_typed  # type: ignore[union-attr]


def test_marking_a_session_without_login_does_nothing(table: RouteTable) -> None:
    table.add(route(user_id="u1"))
    table.mark_credential_typed("s1")
    table.mark_credential_typed("ghost")
    assert not table.get("s1").credential_typed  # type: ignore[union-attr]


def test_reason_cleared_is_shown_as_utc_hours_and_minutes(table: RouteTable) -> None:
    from datetime import timezone
    table.add(route(reason="toner low"))
    table.note_reason_cleared("s1", datetime(2026, 1, 1, 15, 7, tzinfo=timezone(timedelta(hours=2))))
    table.note_reason_cleared("ghost", T0)
    assert table.get("s1").reason_cleared_at == "13:07"  # type: ignore[union-attr]


def test_async_request_path_forms_agree_with_the_sync_ones(table: RouteTable) -> None:
    import asyncio
    table.add(route())
    token = table.issue_launch_token("s1")

    async def go() -> tuple[object, str]:
        return await table.resolve("s-s1.dwa.localhost"), await table.redeem("s-s1.dwa.localhost", token)

    found, cookie = asyncio.run(go())
    assert found == table.get("s1") and table.cookie_is_valid("s1", cookie)
