"""Issue 20 (a20c N2): a live session ended because its customer's access became ``never`` is
attributed like the gateway's own ``dwa.*`` records (dealer, customer, site, device, session, user),
so the dealer's auditor finds it in the audit log and in the session's story (real hash-chained
log, served portal, a customer admin who has no dealer id of its own making the change)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from audit.checkpoint import Signer
from audit.log import AuditLog
from printgate.domain import DeviceIdentity, RemoteAccessMode, Role
from printgate.store.db import Database
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, csrf_of, portal_served, sign_in
from printgate.testing.tenancy import Tenancy


@dataclass
class World:
    url: str
    db: Database
    clock: Clock


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with migrated(sqlite_url(tmp_path_factory.mktemp("never-story") / "a.db")) as db:
        t = Tenancy().dealer("dn").customer("c-n", "dn", "Never Ltd", RemoteAccessMode.OPEN).site("s-n", "c-n")
        t.agent("a-n", "s-n", online=True).device("dev-n", "s-n", "a-n", "127.0.20.21",
                                                  DeviceIdentity(serial="SN-N", model="HP M404"), name="Never MFP")
        await t.save(db)
        log = AuditLog(db, Signer.generate())  # the JSONL download needs signed checkpoints
        async with portal_served(db, log) as (url, clock):
            yield World(url, db, clock)


async def test_the_dealers_auditor_sees_the_session_ended_by_never(world: World) -> None:
    tech, tech_secret = await create_user(world.db, Role.TECHNICIAN, dealer="dn")
    async with httpx.AsyncClient(base_url=world.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, world, tech, tech_secret)
        token = csrf_of((await c.get("/devices")).text)
        r = await c.post("/devices/dev-n/open", data={"reason": "toner change", "csrf_token": token})
        assert r.status_code == 303, r.text[:300]
        session_id = (await c.get("/sessions")).text.split('data-session-id="')[1].split('"')[0]
    admin, admin_secret = await create_user(world.db, Role.CUSTOMER_ADMIN, dealer=None, customer="c-n")
    async with httpx.AsyncClient(base_url=world.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, world, admin, admin_secret)
        token = csrf_of((await c.get("/admin/tenants")).text)
        r = await c.post("/admin/tenants/customers/c-n/remote-access",
                         data={"mode": "never", "csrf_token": token})
        assert r.status_code == 303, r.text[:300]
    auditor, auditor_secret = await create_user(world.db, Role.AUDITOR, dealer="dn")
    async with httpx.AsyncClient(base_url=world.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, world, auditor, auditor_secret)
        story = (await c.get(f"/audit/sessions/{session_id}", headers={"accept": "application/json"})).json()
        ended = [e for e in story["events"] if e["type"] == "dwa.session.ended_by_access_mode"]
        assert len(ended) == 1, [e["type"] for e in story["events"]]
        e = ended[0]
        assert (e["dealer_id"], e["customer_id"], e["device_id"], e["session_id"]) == ("dn", "c-n", "dev-n", session_id)
        assert e["details"]["site_id"] == "s-n" and e["details"]["user_id"] == str(tech.id)
        assert e["details"]["reason"] == "access mode changed to never"
        page = (await c.get(f"/audit/sessions/{session_id}/view")).text
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
        assert "the customer changed its remote access" in text, text[:2000]
        jsonl = (await c.get("/audit/events.jsonl")).text
        assert "dwa.session.ended_by_access_mode" in jsonl
