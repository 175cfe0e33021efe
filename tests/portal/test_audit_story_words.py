"""A session's story in words (issue 15): a refused "More time" is not a blocked transfer, a
refused decision names whom it was for, reasons are listed under one label, event names and
reason codes read as words, and the gateway's local socket paths never show (real hash-chained
log, served portal)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from audit.log import AuditLog
from printgate.domain import AuditEventIn, DeviceIdentity, Outcome, Role
from printgate.store.db import Database
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, portal_served, sign_in
from printgate.testing.tenancy import Tenancy

SOCKET = "/tmp/printgate-tunnels-x1y2/sess-w1.sock"
REASONS = [{"code": f"rule.r{i}", "message": f"reason number {i}"} for i in range(7)]


@dataclass
class World:
    url: str
    db: Database
    clock: Clock


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with migrated(sqlite_url(tmp_path_factory.mktemp("story-words") / "a.db")) as db:
        t = Tenancy().dealer("dw").customer("c-w", "dw", "Words Ltd").site("s-w", "c-w")
        t.agent("a-w", "s-w").device("dev-w", "s-w", "a-w", "127.0.20.19",
                                     DeviceIdentity(serial="S9", model="OKI MC873"), name="Front desk MFP")
        await t.save(db)
        log = AuditLog(db, None)
        common = {"dealer_id": "dw", "customer_id": "c-w", "device_id": "dev-w", "session_id": "sess-w1"}
        await log.append_many([
            AuditEventIn(type="policy.decision", actor="tech@dealer.example", outcome=Outcome.SUCCESS,
                         details={"allow": True, "action": "dwa.open", "reasons": REASONS}, **common),
            AuditEventIn(type="tunnel.opened", actor="gateway", details={"upstream": SOCKET}, **common),
            AuditEventIn(type="dwa.credentials_decision", actor="gateway",
                         details={"allow": False, "reasons": ["credentials.none_stored"]}, **common),
            AuditEventIn(type="dwa.request", details={"method": "GET", "path": "/", "status": 200}, **common),
            AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED,
                         details={"method": "POST", "path": "/fw", "blocked": True, "rule": "upload.file",
                                  "direction": "request"}, **common),
            AuditEventIn(type="dwa.transfer_blocked", outcome=Outcome.BLOCKED,
                         details={"method": "GET", "path": "/backup", "blocked": True, "rule": "download.file",
                                  "direction": "response"}, **common),
            AuditEventIn(type="policy.decision", actor="tech@dealer.example", outcome=Outcome.DENIED,
                         details={"allow": False, "action": "dwa.extend",
                                  "reasons": [{"code": "session.too_long", "message": "the session is long enough"}]},
                         **common),
            AuditEventIn(type="dwa.request", outcome=Outcome.BLOCKED,  # as the gateway records a refused "More time"
                         details={"method": "POST", "path": "/__printgate/extend", "status": 403, "blocked": True,
                                  "rule": "session.extend_refused", "direction": "session",
                                  "reason": "policy does not allow more time for this session"}, **common),
            AuditEventIn(type="tenant.remote_access_changed", actor="boss@dealer.example",
                         details={"from": "open", "to": "approval_required"}, **common),
            AuditEventIn(type="dwa.session.closed", actor="tech@dealer.example",
                         details={"reason": "ended by the technician"}, **common),
        ])
        async with portal_served(db, log) as (url, clock):
            yield World(url, db, clock)


async def test_the_story_counts_real_transfer_blocks_and_speaks_words(world: World) -> None:
    user, secret = await create_user(world.db, Role.AUDITOR, dealer="dw")
    async with httpx.AsyncClient(base_url=world.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, world, user, secret)
        html = (await c.get("/audit/sessions/sess-w1/view")).text
    summary = re.search(r'<p id="story-summary">(.*?)</p>', html, re.S)
    assert summary
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", summary.group(1)))
    assert "3 requests, 2 transfers blocked, 1 request for more time refused." in text, text
    story = html[html.index('<ol class="timeline"'):]
    assert "More time refused</strong> — policy does not allow more time" in story
    assert "refused for tech@dealer.example (requested by tech@dealer.example: more time)" in story
    assert "by tech@dealer.example</span>" not in story.split("Session ended")[0]
    assert story.count("<dt>reasons</dt>") == 3  # once per record with reasons, not once per reason
    assert "<dd>reason number 6</dd>" in story
    assert "credentials: none stored" in story and "credentials.none_stored" not in story
    assert ">Remote access of the customer changed</strong>" in story
    assert ">Stored device credentials: decision</strong>" in story
    assert "/tmp/printgate-tunnels" not in html and "a local tunnel socket" in story
