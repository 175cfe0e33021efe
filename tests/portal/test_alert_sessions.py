"""Issue 20 through the portal: "Open web page" on a device's alert, ticket and written reasons,
per-site modes (alert_auto, ticket) chosen by the customer's administrator, and where the reason shows."""

from __future__ import annotations

import html
import secrets
from datetime import timedelta

import httpx

from printgate.domain import AlertSeverity, Dealer, DealerId, DeviceIdentity, RemoteAccessMode, Role
from printgate.store import tenants
from printgate.store.models.readings import DeviceAlertRow
from printgate.testing.portal import create_user, csrf_of, sign_in
from printgate.testing.tenancy import Tenancy
from tests.portal.conftest import Portal

DEALER = "d-al"


async def _customer(portal: Portal, mode: RemoteAccessMode = RemoteAccessMode.OPEN) -> tuple[str, str, str]:
    """A customer of dealer d-al (its own dealer: the shared portal's d1 device list stays as other
    tests expect it) with one site, agent and device; (customer, site, device) ids."""
    async with portal.db.transaction() as s:
        if await tenants.get_dealer(s, DEALER) is None:
            await tenants.add_dealer(s, Dealer(DealerId(DEALER), "Alert dealer"))
    tag = secrets.token_hex(3)
    cid, sid, did = f"c-al-{tag}", f"s-al-{tag}", f"dev-al-{tag}"
    await (Tenancy().customer(cid, DEALER, f"Alert customer {tag}", mode).site(sid, cid, f"Site {tag}")
           .agent(f"a-al-{tag}", sid, online=True)
           .device(did, sid, f"a-al-{tag}", "127.0.20.9", DeviceIdentity(serial=f"SN-{tag}", model="HP M404"),
                   name=f"Printer {tag}")
           .save(portal.db))
    return cid, sid, did


async def _alert(portal: Portal, device_id: str, severity: str = "critical",
                 description: str = "Toner empty") -> int:
    now = portal.clock()
    async with portal.db.transaction() as s:
        row = DeviceAlertRow(device_id=device_id, alert_key=secrets.token_hex(4), alert_index=1, severity=severity,
                             group="marker", code="markerTonerEmpty", description=description,
                             raised_at=now - timedelta(minutes=5), last_seen_at=now)
        s.add(row)
        await s.flush()
        return row.id


async def _technician(portal: Portal, client: httpx.AsyncClient) -> str:
    user, secret = await create_user(portal.db, Role.TECHNICIAN, dealer=DEALER)
    await sign_in(client, portal, user, secret)
    return user.email


async def _open(client: httpx.AsyncClient, device_id: str, **form: str) -> httpx.Response:
    token = csrf_of((await client.get("/devices")).text)
    return await client.post(f"/devices/{device_id}/open", data={**form, "csrf_token": token})


async def test_open_from_the_devices_alert_list_documents_the_alert(portal: Portal, client: httpx.AsyncClient) -> None:
    _cid, _sid, did = await _customer(portal)
    alert_id = await _alert(portal, did, description="Toner <empty> & more")
    await _technician(portal, client)
    page = await client.get(f"/fleet/{did}")
    assert page.status_code == 200
    assert f'name="alert_id" value="{alert_id}"' in page.text  # the alert's own "Open web page"
    r = await _open(client, did, alert_id=str(alert_id))
    assert r.status_code == 303, r.text
    mine = (await client.get("/sessions")).text
    assert "Reason: alert &#39;Toner &lt;empty&gt; &amp; more&#39; (critical)" in mine  # escaped
    decision = [e for e in portal.audit.of("policy.decision") if e.device_id == did][-1]
    assert decision.details["session_reason"]["alert_id"] == alert_id
    assert decision.details["session_reason"]["code"] == "markerTonerEmpty"


async def test_another_devices_alert_is_refused_and_malformed_reasons_get_a_clear_422(
    portal: Portal, client: httpx.AsyncClient
) -> None:
    _c1, _s1, did = await _customer(portal)
    _c2, _s2, other = await _customer(portal)
    foreign = await _alert(portal, other)
    await _technician(portal, client)
    r = await _open(client, did, alert_id=str(foreign))
    assert r.status_code == 403 and "reason.alert_unknown" in r.text
    for form, words in (({"alert_id": "7; drop"}, "not an alert number"),
                        ({"ticket": "T 1 <b>"}, "ticket reference"),
                        ({"reason": "x" * 600}, "at most 500")):
        r = await _open(client, did, **form)
        assert r.status_code == 422 and words in html.unescape(r.text), (form, r.text[:300])


async def test_ticket_site_needs_a_ticket_and_shows_it(portal: Portal, client: httpx.AsyncClient) -> None:
    _cid, sid, did = await _customer(portal)
    async with portal.db.transaction() as s:
        await tenants.set_site_access(s, sid, RemoteAccessMode.TICKET, AlertSeverity.CRITICAL)
    await _technician(portal, client)
    r = await _open(client, did, reason="printer is slow")
    assert r.status_code == 403 and "customer.ticket_required" in r.text
    r = await _open(client, did, ticket="INC-2026.77")
    assert r.status_code == 303, r.text
    assert "Reason: ticket INC-2026.77" in (await client.get("/sessions")).text


async def test_alert_auto_site_set_by_the_customer_admin(portal: Portal, client: httpx.AsyncClient) -> None:
    cid, sid, did = await _customer(portal, RemoteAccessMode.APPROVAL_REQUIRED)
    admin, secret = await create_user(portal.db, Role.CUSTOMER_ADMIN, dealer=None, customer=cid)
    async with httpx.AsyncClient(base_url=portal.url, headers={"accept": "text/html"}) as ac:
        await sign_in(ac, portal, admin, secret)  # once: the code of this window is spent
        page = await ac.get("/admin/tenants")
        assert f'data-site-id="{sid}"' in page.text
        r = await ac.post(f"/admin/tenants/sites/{sid}/remote-access",
                          data={"mode": "alert_auto", "alert_min_severity": "critical",
                                "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303, r.text
        _oc, other_site, _od = await _customer(portal)  # not this admin's site
        r = await ac.post(f"/admin/tenants/sites/{other_site}/remote-access",
                          data={"mode": "open", "csrf_token": csrf_of(page.text)})
        assert r.status_code == 404
        r = await ac.post(f"/admin/tenants/sites/{sid}/remote-access",
                          data={"mode": "wide-open", "csrf_token": csrf_of(page.text)})
        assert r.status_code == 422
        changed = [e for e in portal.audit.of("tenant.site_access_changed") if e.details["site"] == sid]
        assert [(e.details["from"], e.details["to"]) for e in changed] == [(None, "alert_auto")]

        tech = await _technician(portal, client)
        await _alert(portal, did, severity="warning", description="Door open")
        r = await _open(client, did)
        assert r.status_code == 403 and "no open alert of severity ≥ critical" in html.unescape(r.text)
        assert "Request access" in r.text  # the approval path stays open
        alert_id = await _alert(portal, did, severity="critical", description="Toner empty")
        r = await _open(client, did, alert_id=str(alert_id))
        assert r.status_code == 303, r.text
        allowed = [e for e in portal.audit.of("policy.decision") if e.device_id == did and e.details["allow"]][-1]
        assert any(x["code"] == "customer.alert_open"
                   and "auto-approved: alert 'Toner empty' (critical) open since" in x["message"]
                   for x in allowed.details["reasons"])
        approvals = (await ac.get("/approvals")).text
        assert tech in approvals and "alert &#39;Toner empty&#39; (critical)" in approvals
        # the technician by name, the e-mail on hover (issue 15)
        assert f'<span class="technician" title="{tech}">User {tech.split("@")[0]}</span>' in approvals


async def test_policy_explain_gives_the_alert_auto_reasons(portal: Portal) -> None:
    """`printgate policy explain` (and the preview, same function) says why: the alert that
    auto-approves, or that none is open at the threshold; the site's mode and the reason given."""
    from printgate.cli.policy import _explain
    from printgate.domain import SessionReason
    from printgate.settings import Settings

    _cid, sid, did = await _customer(portal)
    async with portal.db.transaction() as s:
        await tenants.set_site_access(s, sid, RemoteAccessMode.ALERT_AUTO, AlertSeverity.CRITICAL)
    user, _ = await create_user(portal.db, Role.TECHNICIAN, dealer=DEALER)
    settings = Settings(database_url=portal.db.url)
    await _alert(portal, did, severity="warning", description="Door open")
    allow, text = await _explain(settings, user.email, did, "127.0.0.1", 30.0)
    assert not allow and "approval required: no open alert of severity ≥ critical" in text
    assert "remote access at site" in text and "alert_auto" in text and "Door open (warning)" in text
    alert_id = await _alert(portal, did, severity="critical", description="Toner empty")
    allow, text = await _explain(settings, user.email, did, "127.0.0.1", 30.0,
                                 SessionReason.of_alert(alert_id, code="", severity="", description="",
                                                        raised_at=None))
    assert allow and "[customer.alert_open] auto-approved: alert 'Toner empty' (critical) open since" in text
    assert "reason: alert 'Toner empty' (critical)" in text  # taken from the store, not the caller
