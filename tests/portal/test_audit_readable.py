"""The audit log as an auditor reads it: key/value details instead of JSON, customer and
device names (ids on hover), "All customers" for a dealer-wide auditor even with one customer,
paging through every event, the trail's signed state, and a session's story as a timeline
with the blocked transfer marked (real hash-chained log with signed checkpoints, served)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from audit.checkpoint import Signer
from audit.log import AuditLog
from printgate.domain import AuditEventIn, DeviceIdentity, Outcome, Role
from printgate.store.db import Database
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, portal_served, sign_in
from printgate.testing.tenancy import Tenancy

SEQ = re.compile(r'<tr data-seq="(\d+)">')


@dataclass
class World:
    url: str
    db: Database
    clock: Clock
    log: AuditLog


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with migrated(sqlite_url(tmp_path_factory.mktemp("audit-read") / "a.db")) as db:
        t = Tenancy().dealer("dr").customer("c-only", "dr", "Only Customer Ltd").site("s-only", "c-only")
        t.agent("a-only", "s-only").device("dev-only", "s-only", "a-only", "127.0.20.9",
                                           DeviceIdentity(serial="S1", model="OKI MC873"), name="Reception MFP")
        await t.save(db)
        log = AuditLog(db, Signer.generate(), checkpoint_every=10_000)
        common = {"dealer_id": "dr", "customer_id": "c-only", "device_id": "dev-only", "session_id": "sess-r1"}
        await log.append_many([
            AuditEventIn(type="policy.decision", actor="tom@dealer.example", source_ip="192.0.2.10",
                         details={"allow": True, "action": "dwa.open",
                                  "reasons": [{"code": "role.allowed", "message": "your role permits this action"}]},
                         **common),
            AuditEventIn(type="firewall.rule.added", actor="gateway",
                         details={"technician": "192.0.2.10", "agent": "198.51.100.4"}, **common),
            AuditEventIn(type="tunnel.opened", actor="gateway", details={"upstream": "127.0.0.1:40001"}, **common),
            AuditEventIn(type="dwa.session.opened", actor="gateway", details={"expires_at": "2030-01-01T10:30:00"},
                         **common),
            AuditEventIn(type="dwa.request", details={"method": "GET", "path": "/index.html", "status": 200},
                         **common),
            AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED,
                         details={"method": "POST", "path": "/upload", "blocked": True, "rule": "upload.file"},
                         **common),
            AuditEventIn(type="dwa.session.extended", actor="gateway", details={"expires_at": "2030-01-01T11:00:00"},
                         **common),
            AuditEventIn(type="dwa.session.closed", actor="tom@dealer.example",
                         details={"reason": "ended by the technician"}, **common),
        ])
        await log.append_many([AuditEventIn(type="auth.login", actor=f"user{i}@dealer.example", dealer_id="dr",
                                            details={"method": "password"}) for i in range(120)])
        await log.checkpoint()
        async with portal_served(db, log) as (url, clock):
            yield World(url, db, clock, log)


@pytest.fixture
async def auditor(world: World) -> AsyncIterator[httpx.AsyncClient]:
    user, secret = await create_user(world.db, Role.AUDITOR, dealer="dr")
    async with httpx.AsyncClient(base_url=world.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, world, user, secret)
        yield c


async def test_the_log_reads_as_names_and_key_values_and_pages_through_everything(
        world: World, auditor: httpx.AsyncClient) -> None:
    page = (await auditor.get("/audit")).text
    assert '<option value="">All customers</option>' in page  # one customer, yet the dealer-wide choice
    assert re.search(r"Signed up to event 128 ", page)
    session = (await auditor.get("/audit", params={"session_id": "sess-r1"})).text
    decision = session[session.index('<tr data-seq="1">'):]
    decision = decision[:decision.index("</tr>")]
    assert "<dt>reasons</dt><dd>your role permits this action</dd>" in decision
    assert '<span title="customer c-only">Only Customer Ltd</span>' in decision
    assert '<span title="device dev-only">Reception MFP</span>' in decision
    assert "{&#34;" not in decision and '{"' not in decision  # no raw JSON

    seen: list[int] = []
    url = "/audit"
    for _ in range(10):
        html = (await auditor.get(url)).text
        seen += [int(s) for s in SEQ.findall(html)]
        older = re.search(r'<a id="older" href="([^"]+)"', html)
        if older is None:
            break
        url = older.group(1).replace("&amp;", "&")
    assert len(seen) == len(set(seen)) and set(range(1, 129)) <= set(seen)  # every event, each once
    assert seen == sorted(seen, reverse=True)  # newest first, page after page


async def test_a_session_story_is_a_timeline_with_the_blocked_transfer_marked(
        world: World, auditor: httpx.AsyncClient) -> None:
    page = await auditor.get("/audit/sessions/sess-r1/view")
    assert page.status_code == 200
    html = page.text
    summary = re.search(r'<p id="story-summary">(.*?)</p>', html, re.S)
    assert summary
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", summary.group(1)))
    for part in ("tom@dealer.example from 192.0.2.10 opened the web page of Reception MFP at Only Customer Ltd",
                 "2 requests, 1 transfer blocked, 1 extension", "Ended: ended by the technician"):
        assert part in text, text
    steps = re.findall(r'<li data-seq="(\d+)" data-type="([^"]+)" class="([^"]+)">', html)
    assert [t for _, t, _ in steps] == ["policy.decision", "firewall.rule.added", "tunnel.opened",
                                        "dwa.session.opened", "dwa.request", "dwa.transfer_blocked",
                                        "dwa.session.extended", "dwa.session.closed"]
    assert [c for _, t, c in steps if c == "bad"] == ["bad"]
    assert "Transfer blocked</strong> — POST /upload — blocked: upload.file" in html
    assert "GET /index.html → 200" in html
