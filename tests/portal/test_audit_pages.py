"""/audit as auditors use it: a real hash-chained audit log on SQLite and
PostgreSQL behind the real portal (sign-in, header, CSRF), tenants kept apart
exactly as in the JSON API, newest first, paged, downloads of the same set."""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import event

from audit.checkpoint import Signer
from audit.log import AuditLog
from audit.query import AuditFilter, search
from lab.ports import free_tcp_port
from portal.app import create_app
from portal.routers.audit import PAGE_SIZE, device_names
from printgate.domain import (
    AuditEventIn,
    Outcome,
    Role,
    User,
)
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import fresh_database
from printgate.testing.portal import Clock, create_user, served, sign_in
from printgate.testing.tenancy import Tenancy
from tests.portal.conftest import Portal

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
WINDOW = {"since": "2025-03-01T00:00", "until": "2025-03-02T00:00"}  # seeded events only (not logins)
SEQ_RE = re.compile(r'<tr data-seq="(\d+)">')


@dataclass
class Seeded:
    """Sequence numbers of the seeded events, by customer and by session."""

    by_customer: dict[str, set[int]] = field(default_factory=dict)
    by_session: dict[str, list[int]] = field(default_factory=dict)
    denied: set[int] = field(default_factory=set)


@dataclass
class AuditPortal:
    portal: Portal
    log: AuditLog
    seeded: Seeded

    async def auditor(self, dealer: str | None = "d1", customer: str | None = None) -> tuple[User, str | None]:
        return await create_user(self.portal.db, Role.AUDITOR, dealer=dealer, customer=customer)


def _session(customer: str, dealer: str, actor: str, requests: int) -> list[AuditEventIn]:
    common = {"dealer_id": dealer, "customer_id": customer, "device_id": f"dev-{customer}",
              "session_id": f"sess-{customer}", "actor": actor, "source_ip": "127.0.0.9"}
    out = [AuditEventIn(type="dwa.session.opened", **common)]  # type: ignore[arg-type]
    for i in range(requests):
        blocked = i % 10 == 9
        out.append(AuditEventIn(type="proxy.request", outcome=Outcome.BLOCKED if blocked else Outcome.SUCCESS,
                                details={"method": "GET", "path": f"/page/{i}", "status": 403 if blocked else 200},
                                **common))  # type: ignore[arg-type]
    out.append(AuditEventIn(type="dwa.session.closed", details={"reason": "ended by the technician"},
                            **common))  # type: ignore[arg-type]
    return out


async def _seed(db: Database) -> Seeded:
    await Tenancy().dealer("d1").dealer("d2").customer("c1", "d1").customer("c2", "d1").customer("c9", "d2").save(db)
    at = [T0]
    log = AuditLog(db, None, clock=lambda: at[0])
    seeded = Seeded()
    groups = [
        (T0, _session("c1", "d1", "tech1@d1.example", 58)),
        (T0 + timedelta(hours=1), _session("c2", "d1", "tech2@d1.example", 2)),
        (T0 + timedelta(hours=2), _session("c9", "d2", "tech9@d2.example", 1)),
        (T0 + timedelta(hours=3), [AuditEventIn(
            type="policy.decision", outcome=Outcome.DENIED, actor="tech1@d1.example", dealer_id="d1",
            customer_id="c1", device_id="dev-c1", details={"allow": False, "reasons": ["time.outside_hours"]})]),
    ]
    for when, events in groups:
        at[0] = when
        for r in await log.append_many(events):
            seeded.by_customer.setdefault(r.customer_id or "", set()).add(r.seq)
            if r.session_id:
                seeded.by_session.setdefault(r.session_id, []).append(r.seq)
            if r.outcome == Outcome.DENIED:
                seeded.denied.add(r.seq)
    return seeded


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def audit_portal(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuditPortal]:
    tmp = tmp_path_factory.mktemp(f"audit-pages-{request.param}")
    async with fresh_database(request.param, tmp) as db:
        seeded = await _seed(db)
        log = AuditLog(db, Signer.generate())  # the JSONL download signs a checkpoint over the newest records
        port, clock = free_tcp_port(), Clock()
        settings = PortalSettings(port=port, public_url=f"http://127.0.0.1:{port}",
                                  secret_key=SecretStr(secrets.token_urlsafe(32)))
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, settings.public_url), audit=log,
                         clock=clock)
        async with served(app, port) as url:
            yield AuditPortal(Portal(url, db, log, clock, settings), log, seeded)  # type: ignore[arg-type]


@pytest.fixture
async def client(audit_portal: AuditPortal) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=audit_portal.portal.url, follow_redirects=False, timeout=15,
                                 headers={"accept": "text/html"}) as c:
        yield c


async def _as(client: httpx.AsyncClient, ap: AuditPortal, dealer: str | None = "d1",
              customer: str | None = None) -> User:
    user, secret = await ap.auditor(dealer, customer)
    await sign_in(client, ap.portal, user, secret)
    return user


def _filter_of(details: Mapping[str, Any]) -> Mapping[str, Any]:
    f = details["filter"]
    assert isinstance(f, Mapping)
    return f


def _seqs(html: str) -> list[int]:
    return [int(x) for x in SEQ_RE.findall(html)]


def _link(html: str, element_id: str) -> str | None:
    m = re.search(rf'id="{element_id}" href="([^"]+)"', html)
    return m.group(1).replace("&amp;", "&") if m else None


async def test_an_auditor_lands_on_the_audit_page_with_an_audit_menu(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    await _as(client, audit_portal)
    r = await client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    r = await client.get("/devices")  # where a fresh sign-in leads by default
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    page = await client.get("/audit")
    assert page.status_code == 200 and '<a href="/audit">Audit</a>' in page.text
    assert 'href="/devices"' not in page.text


async def test_a_dealer_auditor_sees_that_dealers_events_newest_first(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    await _as(client, audit_portal)
    seeded = audit_portal.seeded
    page = await client.get("/audit", params=WINDOW)
    seqs = _seqs(page.text)
    own = seeded.by_customer["c1"] | seeded.by_customer["c2"]
    assert len(seqs) == PAGE_SIZE and seqs == sorted(seqs, reverse=True)
    assert seqs == sorted(own, reverse=True)[:PAGE_SIZE]
    assert not set(seqs) & seeded.by_customer["c9"]
    options = re.findall(r'<option value="(c\d)"', page.text)
    assert options == ["c1", "c2"]


async def test_a_customer_auditor_sees_only_that_customer_and_is_refused_another(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    await _as(client, audit_portal, dealer="d1", customer="c2")
    page = await client.get("/audit", params=WINDOW)
    assert set(_seqs(page.text)) == audit_portal.seeded.by_customer["c2"]
    assert (await client.get("/audit", params={**WINDOW, "customer_id": "c1"})).status_code == 403
    assert (await client.get("/audit/sessions/sess-c1/view")).status_code == 404


async def test_a_foreign_auditor_sees_nothing_of_another_dealers_events(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    await _as(client, audit_portal, dealer="d2")
    seeded = audit_portal.seeded
    page = await client.get("/audit", params=WINDOW)
    assert set(_seqs(page.text)) == seeded.by_customer["c9"]
    for params in ({"session_id": "sess-c1"}, {"device_id": "dev-c2"}, {"actor": "tech1@d1.example"},
                   {"customer_id": "c1"}):  # a foreign customer id is narrowed to this dealer: nothing
        r = await client.get("/audit", params=params)
        assert r.status_code == 200 and _seqs(r.text) == [] and "No events match" in r.text
    assert (await client.get("/audit/sessions/sess-c1/view")).status_code == 404
    csv_link = _link(page.text, "download-csv")
    assert csv_link is not None
    rows = list(csv.DictReader(io.StringIO((await client.get(csv_link)).text)))
    assert {int(r["seq"]) for r in rows} == seeded.by_customer["c9"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"type": "policy.decision", "outcome": "denied"}, "denied"),
    ({"actor": "tech2@d1.example"}, "c2"),
    ({"device_id": "dev-c2"}, "c2"),
    ({"since": "2025-03-01T08:30", "until": "2025-03-01T09:30"}, "c2"),
    ({"session_id": "sess-c2", "type": "dwa.session.closed"}, "c2-closed"),
])
async def test_each_filter_narrows_the_results(audit_portal: AuditPortal, client: httpx.AsyncClient,
                                               params: dict[str, str], expected: str) -> None:
    await _as(client, audit_portal)
    seeded = audit_portal.seeded
    want = {"denied": seeded.denied, "c2": seeded.by_customer["c2"],
            "c2-closed": {seeded.by_session["sess-c2"][-1]}}[expected]
    page = await client.get("/audit", params=params)
    assert page.status_code == 200 and set(_seqs(page.text)) == want


async def test_results_page_backwards_without_gaps_or_overlap(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    await _as(client, audit_portal)
    everything = audit_portal.seeded.by_session["sess-c1"]
    first = await client.get("/audit", params={"session_id": "sess-c1"})
    older = _link(first.text, "older")
    assert older is not None and "session_id=sess-c1" in older
    second = await client.get(older)
    assert _link(second.text, "older") is None and "« Newest" in second.text
    seqs = _seqs(first.text) + _seqs(second.text)
    assert seqs == sorted(everything, reverse=True) and len(_seqs(first.text)) == PAGE_SIZE


async def test_downloads_carry_the_same_filter_and_are_audited(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    me = await _as(client, audit_portal)
    page = await client.get("/audit", params={"session_id": "sess-c2", "outcome": "success"})
    want = set(_seqs(page.text))
    assert want and want <= audit_portal.seeded.by_customer["c2"]
    csv_link, jsonl_link = _link(page.text, "download-csv"), _link(page.text, "download-jsonl")
    assert csv_link and jsonl_link
    assert "limit=" not in csv_link and "limit=" not in jsonl_link  # the whole filtered set by default
    assert 'class="when">' in page.text  # dates stay on one line
    r = await client.get(csv_link)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert {int(row["seq"]) for row in csv.DictReader(io.StringIO(r.text))} == want
    r = await client.get(jsonl_link)
    assert {json.loads(line)["seq"] for line in r.text.splitlines() if line.startswith('{"at":')} == want
    downloads = await search(audit_portal.portal.db, AuditFilter(types=("audit.export.downloaded",), limit=10_000))
    mine = [d for d in downloads if d.actor == me.email]
    assert [(d.details["format"], d.details["records"], _filter_of(d.details)["session_id"]) for d in mine] == [
        ("csv", len(want), "sess-c2"), ("jsonl", len(want), "sess-c2")]


async def test_a_malformed_filter_is_explained_and_non_auditors_are_refused(
        audit_portal: AuditPortal, client: httpx.AsyncClient) -> None:
    r = await client.get("/audit")
    assert r.status_code == 303 and unquote(r.headers["location"]).startswith("/login")
    tech, secret = await create_user(audit_portal.portal.db, Role.TECHNICIAN, dealer="d1")
    async with httpx.AsyncClient(base_url=audit_portal.portal.url, timeout=15,
                                 headers={"accept": "text/html"}) as t:
        await sign_in(t, audit_portal.portal, tech, secret)
        assert (await t.get("/audit")).status_code == 403
        assert 'href="/audit"' not in (await t.get("/devices")).text
    await _as(client, audit_portal)
    r = await client.get("/audit", params={"since": "last tuesday"})
    assert r.status_code == 400 and "not a date and time" in r.text and _seqs(r.text) == []
    r = await client.get("/audit", params={"outcome": "maybe"})
    assert r.status_code == 400 and "is not one of" in r.text


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.mark.browser
@pytest.mark.parametrize("audit_portal", ["sqlite"], indirect=True)
async def test_browser_auditor_filters_by_session_and_opens_its_story(audit_portal: AuditPortal) -> None:
    from playwright.async_api import async_playwright

    from printgate.testing.portal import PASSWORD, rfc6238

    user, secret = await audit_portal.auditor()
    assert secret is not None
    base = audit_portal.portal.url
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []  # CSP violations and script errors are console errors
            page.on("console", lambda m: errors.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url)
                    if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
            await page.goto(f"{base}/login")
            await page.fill("input[name=email]", user.email)
            await page.fill("input[name=password]", PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/login/verify**")
            await page.fill("input[name=code]", rfc6238(secret, audit_portal.portal.clock()))
            await page.get_by_role("button", name="Verify").click()
            await page.wait_for_url("**/audit")
            await page.fill("#f-session", "sess-c2")
            await page.get_by_role("button", name="Filter").click()
            await page.wait_for_url("**/audit?*session_id=sess-c2*")
            rows = page.locator("#audit-results tbody tr")
            assert await rows.count() == len(audit_portal.seeded.by_session["sess-c2"])
            links = page.locator("#audit-results a.session-link")
            assert set(await links.all_inner_texts()) == {"session sess-c2"}
            await links.first.click()
            await page.wait_for_url("**/audit/sessions/sess-c2/view")
            steps = page.locator("#story li[data-type]")
            types = [await steps.nth(i).get_attribute("data-type") for i in range(await steps.count())]
            assert types[0] == "dwa.session.opened" and types[-1] == "dwa.session.closed"
            assert types.count("proxy.request") == 2
            assert await page.locator("#story li.bad").count() == 0
            assert await page.locator("header a[href='/audit']").count() == 1
            assert not errors and not failed, (errors, failed)
        finally:
            await browser.close()


async def test_device_names_of_a_page_take_one_query_however_many_devices(db: Database) -> None:
    """The audit page names its devices with one SELECT, not one per device (it was 48 for a page)."""
    t = Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
    for i in range(12):
        t.device(f"dev{i}", "s1", "a1", f"127.0.0.{i + 10}", name=f"Printer {i}")
    await t.save(db)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        names = await device_names(db, {f"dev{i}" for i in range(12)} | {"gone"})
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert names == {f"dev{i}": f"Printer {i}" for i in range(12)}
    assert len(statements) == 1, statements
