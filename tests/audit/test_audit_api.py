"""The auditor API, tested as auditors of different tenants (real HTTP via ASGI)."""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Header, HTTPException
from pydantic import SecretStr

from audit.checkpoint import Signer
from audit.log import AuditLog
from audit.query import AuditFilter, search
from portal.app import create_app
from portal.routers.audit_witness import current_auditor
from printgate.domain import AuditEventIn, CustomerId, DealerId, Role, User, UserId
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.broker import PolicyBroker
from printgate.testing.portal import Clock

USERS = {
    "dealer-a-auditor": User(UserId("u1"), "aud@a.example", "A auditor", frozenset({Role.AUDITOR}), dealer_id=DealerId("dealer-a")),
    "dealer-b-auditor": User(UserId("u2"), "aud@b.example", "B auditor", frozenset({Role.AUDITOR}), dealer_id=DealerId("dealer-b")),
    "cust-a1-auditor": User(UserId("u3"), "sec@a1.example", "A1 security", frozenset({Role.AUDITOR}),
                            dealer_id=DealerId("dealer-a"), customer_id=CustomerId("cust-a1")),
    "dealer-a-tech": User(UserId("u4"), "tech@a.example", "A tech", frozenset({Role.TECHNICIAN}), dealer_id=DealerId("dealer-a")),
}


def current_user(x_test_user: str = Header()) -> User:
    try:
        return USERS[x_test_user]
    except KeyError:
        raise HTTPException(401, "who are you") from None


@pytest.fixture
async def client(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, AuditLog]]:
    log = AuditLog(db, Signer.generate())  # the JSONL download is verifiable: checkpoints are signed
    events = []
    for dealer, customers in (("dealer-a", ("cust-a1", "cust-a2")), ("dealer-b", ("cust-b1",))):
        for cust in customers:
            for i in range(3):
                events.append(AuditEventIn(
                    type="dwa.request" if i else "dwa.session.opened", actor=f"tech@{dealer}",
                    dealer_id=dealer, customer_id=cust, device_id=f"{cust}-printer",
                    session_id=f"s-{cust}", source_ip="127.0.0.5", details={"path": f"/p{i}", "status": 200},
                ))
    await log.append_many(events)
    settings = PortalSettings(public_url="http://audit.test", secret_key=SecretStr(secrets.token_urlsafe(32)))
    app = create_app(settings, db=db, broker=PolicyBroker(db, Clock(), settings.public_url), audit=log)
    app.dependency_overrides[current_auditor] = current_user  # who asks: the x-test-user header
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://audit.test") as c:
        yield c, log


def as_user(name: str) -> dict[str, str]:
    return {"x-test-user": name}


async def test_a_dealer_auditor_sees_only_that_dealers_events(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.get("/audit/events", headers=as_user("dealer-a-auditor"))
    assert r.status_code == 200
    events = r.json()["events"]
    assert len(events) == 6 and {e["dealer_id"] for e in events} == {"dealer-a"}
    r = await c.get("/audit/events", headers=as_user("dealer-b-auditor"))
    assert {e["customer_id"] for e in r.json()["events"]} == {"cust-b1"}


async def test_another_tenants_auditor_is_refused_when_asking_for_foreign_events(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.get("/audit/events", params={"dealer_id": "dealer-a"}, headers=as_user("dealer-b-auditor"))
    assert r.status_code == 403
    r = await c.get("/audit/events", params={"customer_id": "cust-a2"}, headers=as_user("cust-a1-auditor"))
    assert r.status_code == 403
    r = await c.get("/audit/events.csv", params={"dealer_id": "dealer-a"}, headers=as_user("dealer-b-auditor"))
    assert r.status_code == 403
    r = await c.get("/audit/sessions/s-cust-a1", headers=as_user("dealer-b-auditor"))
    assert r.status_code == 404
    r = await c.get("/audit/sessions/s-cust-a1/view", headers=as_user("dealer-b-auditor"))
    assert r.status_code == 404


async def test_a_customer_auditor_sees_only_that_customer(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.get("/audit/events", params={"dealer_id": "dealer-a"}, headers=as_user("cust-a1-auditor"))
    assert r.status_code == 200
    assert {e["customer_id"] for e in r.json()["events"]} == {"cust-a1"}


async def test_non_auditors_cannot_read_the_audit_log(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    assert (await c.get("/audit/events", headers=as_user("dealer-a-tech"))).status_code == 403


async def test_filters_narrow_the_result(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.get("/audit/events", params={"type": "dwa.session.opened"}, headers=as_user("dealer-a-auditor"))
    assert [e["customer_id"] for e in r.json()["events"]] == ["cust-a1", "cust-a2"]
    r = await c.get("/audit/events", params={"device_id": "cust-a2-printer", "limit": 2}, headers=as_user("dealer-a-auditor"))
    body = r.json()
    assert len(body["events"]) == 2 and body["next_after_seq"] == body["events"][-1]["seq"]
    r = await c.get("/audit/events", params={"actor": "tech@dealer-b"}, headers=as_user("dealer-a-auditor"))
    assert r.json()["events"] == []


async def test_downloads_are_scoped_and_themselves_audited(client, db: Database) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.get("/audit/events.csv", headers=as_user("cust-a1-auditor"))
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3 and {row["customer_id"] for row in rows} == {"cust-a1"}
    r = await c.get("/audit/events.jsonl", headers=as_user("dealer-b-auditor"))
    lines = [json.loads(x) for x in r.text.splitlines() if x.startswith('{"at":')]  # records (`audit export` format)
    assert len(lines) == 3 and all(x["dealer_id"] == "dealer-b" for x in lines)
    downloads = await search(db, AuditFilter(types=("audit.export.downloaded",)))
    assert [(d.actor, d.details["format"], d.details["records"]) for d in downloads] == [
        ("sec@a1.example", "csv", 3), ("aud@b.example", "jsonl", 3)]


async def test_the_session_story_shows_the_whole_session_in_order(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    r = await c.get("/audit/sessions/s-cust-a1", headers=as_user("dealer-a-auditor"))
    story = r.json()
    assert story["device_id"] == "cust-a1-printer" and story["actors"] == ["tech@dealer-a"]
    assert [e["type"] for e in story["events"]] == ["dwa.session.opened", "dwa.request", "dwa.request"]
    page = await c.get("/audit/sessions/s-cust-a1/view", headers=as_user("cust-a1-auditor"))
    assert page.status_code == 200 and "dwa.session.opened" in page.text
