"""Issue 20, what an outside tester found (a20a): explain/preview and both brokers gather the same facts
and agree in every mode (a foreign or cleared alert refused alike), alert ids are ASCII digits, a
cleared alert is no reason, approval reasons are cleaned, and "no reason given" is said explicitly."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest

from gateway.broker import BrokerConfig, DwaBroker
from gateway.dwa_policy import decide_dwa_open
from portal.policy_preview import explain_open
from printgate.domain import (
    AlertSeverity,
    DeviceId,
    ReasonKind,
    RemoteAccessMode,
    Role,
    SessionReason,
    User,
)
from printgate.interfaces import SessionLaunch
from printgate.store import tenants
from printgate.store.db import Database
from printgate.store.models.readings import DeviceAlertRow
from printgate.store.sessions import load_session
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import create_user, csrf_of
from printgate.testing.tenancy import Tenancy
from tests.portal.conftest import Portal
from tests.portal.test_alert_sessions import _alert, _customer, _open, _technician

NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


async def _two_devices(db: Database) -> tuple[int, int, int]:
    """dev1 (customer c1, site s1) and dev2 (c2): (dev1's open critical alert, dev1's cleared alert,
    dev2's open alert)."""
    t = Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1", online=True)
    t.customer("c2", "d1").site("s2", "c2").agent("a2", "s2", online=True)
    t.device("dev1", "s1", "a1", "127.0.20.1").device("dev2", "s2", "a2", "127.0.20.2")
    await t.save(db)
    async with db.transaction() as s:
        rows = [DeviceAlertRow(device_id=dev, alert_key=key, alert_index=1, severity="critical", group="marker",
                               code="markerTonerEmpty", description=what, raised_at=NOW - timedelta(hours=1),
                               last_seen_at=NOW, cleared_at=cleared)
                for dev, key, what, cleared in (("dev1", "k1", "Toner empty", None),
                                                ("dev1", "k2", "Paper jam", NOW - timedelta(minutes=10)),
                                                ("dev2", "k3", "Door open", None))]
        s.add_all(rows)
        await s.flush()
        return rows[0].id, rows[1].id, rows[2].id


def _gateway_broker(db: Database) -> DwaBroker:
    """The gateway's broker for its fact gathering and decision only (no tunnel is opened here)."""
    unused = cast(Any, None)
    return DwaBroker(BrokerConfig(), db=db, audit=RecordingAuditSink(), decide=decide_dwa_open, firewall=unused,
                     relay=unused, commands=unused, proxy=unused, routes=unused, make_open_command=unused,
                     make_close_command=unused, make_route=unused)


async def _three_decisions(db: Database, user: User, reason: SessionReason | None) -> list[tuple[bool, list[str]]]:
    """(allow, reason codes) from the gateway's broker, the portal's test broker and explain/preview."""
    gateway = _gateway_broker(db)
    facts = await gateway._gather(user, "dev1", "127.0.0.1", 30.0, NOW, reason=reason)
    assert facts is not None
    from_gateway = (facts.reason_refusal is None and decide_dwa_open(facts).allow,
                    [facts.reason_refusal.code] if facts.reason_refusal else
                    sorted(r.code for r in decide_dwa_open(facts).reasons))
    result = await PolicyBroker(db, lambda: NOW, "http://portal.invalid").open_session(
        user, DeviceId("dev1"), source_ip="127.0.0.1", mfa_age_seconds=30.0, reason=reason)
    from_test_broker = (isinstance(result, SessionLaunch), sorted(r.code for r in result.decision.reasons))
    if isinstance(result, SessionLaunch):
        await PolicyBroker(db, lambda: NOW, "").close_session(result.session.id, reason="done", actor="test")
    async with db.session() as s:
        explained = await explain_open(s, user, "dev1", source_ip="127.0.0.1", mfa_age=30.0, now=NOW, reason=reason)
    assert explained is not None
    from_explain = (explained.decision.allow, sorted(r.code for r in explained.decision.reasons))
    return [from_gateway, from_test_broker, from_explain]


@pytest.mark.parametrize("mode", list(RemoteAccessMode))
async def test_explain_and_both_brokers_agree_in_every_mode(db: Database, mode: RemoteAccessMode) -> None:
    mine, cleared, foreign = await _two_devices(db)
    user, _ = await create_user(db, Role.TECHNICIAN, dealer="d1")
    async with db.transaction() as s:
        await tenants.set_site_access(s, "s1", mode, AlertSeverity.CRITICAL)
    cases = {
        "foreign alert": SessionReason(ReasonKind.ALERT, alert_id=foreign),
        "cleared alert": SessionReason.of_alert(cleared, code="", severity="", description="", raised_at=None),
        "own open alert": SessionReason.of_alert(mine, code="", severity="", description="", raised_at=None),
        "ticket": SessionReason.ticket("T-1"),
        "no reason": None,
    }
    for name, reason in cases.items():
        gateway, test_broker, explained = await _three_decisions(db, user, reason)
        assert gateway == test_broker == explained, (mode, name, gateway, test_broker, explained)
        if name == "foreign alert":
            assert explained == (False, ["reason.alert_unknown"]), (mode, explained)
        if name == "cleared alert":
            assert explained == (False, ["reason.alert_cleared"]), (mode, explained)


async def test_a_cleared_alert_is_refused_with_when_it_cleared(portal: Portal, client: httpx.AsyncClient) -> None:
    _cid, _sid, did = await _customer(portal)
    alert_id = await _alert(portal, did, description="Paper jam")
    async with portal.db.transaction() as s:
        row = await s.get(DeviceAlertRow, alert_id)
        assert row is not None
        row.cleared_at = portal.clock() - timedelta(minutes=2)
        at = row.cleared_at
    await _technician(portal, client)
    r = await _open(client, did, alert_id=str(alert_id))
    text = html.unescape(r.text)
    assert r.status_code == 403 and "reason.alert_cleared" in text, text[:500]
    assert f"cleared at {at:%Y-%m-%d %H:%M} UTC; open with a ticket or a written reason" in text


@pytest.mark.parametrize("alert_id", ["\u00b2", "\u0665", "1\u00b2", "\uff15", "-1", "+3"])
async def test_alert_ids_are_ascii_digits_only(portal: Portal, client: httpx.AsyncClient, alert_id: str) -> None:
    _cid, _sid, did = await _customer(portal)
    await _technician(portal, client)
    r = await _open(client, did, alert_id=alert_id)
    assert r.status_code == 422 and "not an alert number" in html.unescape(r.text), (r.status_code, r.text[:300])


async def test_a_session_without_a_reason_says_no_reason_given(portal: Portal, client: httpx.AsyncClient) -> None:
    _cid, _sid, did = await _customer(portal, RemoteAccessMode.OPEN)
    await _technician(portal, client)
    r = await _open(client, did)
    assert r.status_code == 303, r.text
    decision = [e for e in portal.audit.of("policy.decision") if e.device_id == did][-1]
    assert decision.details["allow"] and decision.details["session_reason_label"] == "no reason given"
    assert "Reason: no reason given" in (await client.get("/sessions")).text


async def test_the_approval_requests_reason_is_cleaned(portal: Portal, client: httpx.AsyncClient) -> None:
    cid, _sid, did = await _customer(portal, RemoteAccessMode.APPROVAL_REQUIRED)
    await _technician(portal, client)
    token = csrf_of((await client.get("/devices")).text)
    r = await client.post(f"/devices/{did}/approval-request",
                          data={"reason": "fix\u202egnp.exe the\u0000 fuser\u200b", "csrf_token": token})
    assert r.status_code == 303, r.text
    admin, secret = await create_user(portal.db, Role.CUSTOMER_ADMIN, dealer=None, customer=cid)
    from printgate.testing.portal import sign_in
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as ac:
        await sign_in(ac, portal, admin, secret)
        page = (await ac.get("/approvals")).text
    assert "fixgnp.exe the fuser" in page
    assert "\u202e" not in page and "\u200b" not in page
    r = await client.post(f"/devices/{did}/approval-request",
                          data={"reason": "\u202e\u200b", "csrf_token": token})
    assert r.status_code == 422


@pytest.mark.parametrize("level", ["site", "customer"])
async def test_switching_to_never_ends_live_sessions(portal: Portal, client: httpx.AsyncClient, level: str) -> None:
    cid, sid, did = await _customer(portal, RemoteAccessMode.OPEN)
    await _technician(portal, client)
    r = await _open(client, did, reason="toner change")
    assert r.status_code == 303, r.text
    session_id = (await client.get("/sessions")).text.split('data-session-id="')[1].split('"')[0]
    admin, secret = await create_user(portal.db, Role.CUSTOMER_ADMIN, dealer=None, customer=cid)
    from printgate.testing.portal import sign_in
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as ac:
        await sign_in(ac, portal, admin, secret)
        token = csrf_of((await ac.get("/admin/tenants")).text)
        path = (f"/admin/tenants/sites/{sid}/remote-access" if level == "site"
                else f"/admin/tenants/customers/{cid}/remote-access")
        r = await ac.post(path, data={"mode": "never", "alert_min_severity": "critical", "csrf_token": token})
        assert r.status_code == 303, r.text
    async with portal.db.session() as s:
        session = await load_session(s, session_id)
    assert session is not None and session.state.is_final
    assert session.history[-1].reason == "access mode changed to never"
    ended = [e for e in portal.audit.of("dwa.session.ended_by_access_mode") if e.session_id == session_id]
    assert [e.details["reason"] for e in ended] == ["access mode changed to never"]
    r = await _open(client, did, reason="toner change")  # Rejoin finds nothing, a new open is refused
    assert r.status_code == 403 and "customer.remote_access_never" in r.text, r.text[:300]


async def test_the_customers_alert_auto_shows_the_threshold_that_applies(portal: Portal) -> None:
    cid, sid, _did = await _customer(portal, RemoteAccessMode.ALERT_AUTO)
    async with portal.db.transaction() as s:
        await tenants.set_site_access(s, sid, None, AlertSeverity.WARNING)  # follows the customer
    admin, secret = await create_user(portal.db, Role.CUSTOMER_ADMIN, dealer=None, customer=cid)
    from printgate.testing.portal import sign_in
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as ac:
        await sign_in(ac, portal, admin, secret)
        page = html.unescape((await ac.get("/admin/tenants")).text)
    note = page.split(f'data-threshold-for="{cid}">')[1].split("</div>")[0]
    assert "Auto-approves while an alert of at least" in note and "≥ warning" in note, note
