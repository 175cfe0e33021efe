"""The audit page's promise: "verify it yourself" works on its own downloads (newcomer finding 1).

A real hash-chained log with a real signing key (the gateway's files: ``audit-signing.key``,
``audit-public.pem``, ``audit-keys.json``) behind the real portal; an auditor downloads the JSONL
and the public key from the page's links and runs the very command the page shows, the
``printgate`` CLI in a subprocess. It must say OK, cover exactly the auditor's tenant, and fail
when one byte of a record is changed.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from audit.keyset import open_gateway_signer
from audit.log import AuditLog
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import AuditEventIn, Role
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import fresh_database
from printgate.testing.portal import Clock, create_user, served, sign_in
from printgate.testing.tenancy import Tenancy

PRINTGATE = [str(Path(sys.executable).with_name("printgate"))]  # the installed console script


@dataclass
class Served:
    url: str
    db: Database
    log: AuditLog
    clock: Clock


@asynccontextmanager
async def portal_over(db: Database, log: AuditLog) -> AsyncIterator[Served]:
    """The portal served on a free loopback port over ``db`` with ``log`` as its audit trail."""
    port, clock = free_tcp_port(), Clock()
    settings = PortalSettings(port=port, public_url=f"http://127.0.0.1:{port}",
                              secret_key=SecretStr(secrets.token_urlsafe(32)))
    app = create_app(settings, db=db, broker=PolicyBroker(db, clock, settings.public_url), audit=log, clock=clock)
    async with served(app, port) as url:
        yield Served(url, db, log, clock)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def served_log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp(f"audit-verify-{request.param}")
    async with fresh_database(request.param, tmp) as db:
        await Tenancy().dealer("d1").dealer("d2").customer("c1", "d1").customer("c9", "d2").save(db)
        log = AuditLog(db, open_gateway_signer(tmp / "keys"))
        for customer, dealer in (("c1", "d1"), ("c9", "d2"), ("c1", "d1")):
            await log.append_many([AuditEventIn(type="dwa.session.opened", actor=f"tech@{dealer}.example",
                                                source_ip="127.0.0.9", dealer_id=dealer, customer_id=customer,
                                                session_id=f"sess-{customer}", device_id=f"dev-{customer}")])
        await log.checkpoint()
        # after the newest checkpoint: the download must sign it first or it would be left out
        await log.append(AuditEventIn(type="dwa.session.closed", actor="tech@d1.example", dealer_id="d1",
                                      customer_id="c1", session_id="sess-c1", details={"reason": "late"}))
        async with portal_over(db, log) as portal:
            yield portal


def _href(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}" href="([^"]+)"', html)
    assert m, f"no link #{element_id} on the page"
    return m.group(1).replace("&amp;", "&")


def _verify(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PRINTGATE, "audit", "verify", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


async def test_the_pages_command_verifies_the_pages_own_downloads(served_log: Served, tmp_path: Path) -> None:
    auditor, secret = await create_user(served_log.db, Role.AUDITOR, dealer="d1")
    async with httpx.AsyncClient(base_url=served_log.url, timeout=30, headers={"accept": "text/html"}) as c:
        await sign_in(c, served_log, auditor, secret)
        page = (await c.get("/audit")).text
        command = "printgate audit verify --public-key audit-public.pem --file audit.jsonl"
        assert command in page
        key = await c.get(_href(page, "download-public-key"))
        assert key.status_code == 200 and 'filename="audit-public.pem"' in key.headers["content-disposition"]
        assert served_log.log.signer is not None and served_log.log.signer.key_id in page
        key_set = await c.get(_href(page, "download-key-set"))
        assert key_set.status_code == 200 and 'filename="audit-keys.json"' in key_set.headers["content-disposition"]
        jsonl = await c.get(_href(page, "download-jsonl"))
        assert jsonl.status_code == 200 and 'filename="audit.jsonl"' in jsonl.headers["content-disposition"]
    (tmp_path / "audit-public.pem").write_bytes(key.content)
    (tmp_path / "audit-keys.json").write_bytes(key_set.content)
    (tmp_path / "audit.jsonl").write_bytes(jsonl.content)

    ok = _verify(*command.split()[3:], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: ") and "warning" not in ok.stderr
    by_set = _verify("--key-set", "audit-keys.json", "--file", "audit.jsonl", cwd=tmp_path)
    assert by_set.returncode == 0, by_set.stderr

    records = [json.loads(line) for line in jsonl.text.splitlines() if line.startswith('{"at":')]
    mine = [r for r in records if r.get("type", "").startswith("dwa.session")]
    # only dealer d1's records, the one written after the last scheduled checkpoint too
    assert [r["type"] for r in mine] == ["dwa.session.opened", "dwa.session.opened", "dwa.session.closed"]
    assert {r["dealer_id"] for r in records} == {"d1"}
    assert '"value":"tech@d1.example"' in jsonl.text  # the clear actor, as the page shows it

    changed = jsonl.text.replace('"reason":"late"', '"reason":"lat3"', 1)
    assert changed != jsonl.text
    (tmp_path / "audit.jsonl").write_text(changed)
    bad = _verify(*command.split()[3:], cwd=tmp_path)
    assert bad.returncode == 1 and "FAILED" in bad.stderr, bad.stdout + bad.stderr


async def test_a_portal_without_the_signing_key_says_where_the_key_is(tmp_path: Path) -> None:
    async with fresh_database("sqlite", tmp_path) as db:
        await Tenancy().dealer("d1").save(db)
        log = AuditLog(db, None)
        async with portal_over(db, log) as portal:
            auditor, secret = await create_user(db, Role.AUDITOR, dealer="d1")
            async with httpx.AsyncClient(base_url=portal.url, timeout=30, headers={"accept": "application/json"}) as c:
                await sign_in(c, portal, auditor, secret)
                r = await c.get("/audit/keys/audit-public.pem")
                assert r.status_code == 404 and "key directory" in r.text
                r = await c.get("/audit/events.jsonl")
                assert r.status_code == 409 and "no signed checkpoint yet" in r.text


async def test_who_names_the_technician_of_a_proxied_request(tmp_path: Path) -> None:
    """Proxied requests carry no actor, only the session's ``user_id`` in their details: the page's
    "Who" shows that user's e-mail (it showed "-"); an unknown id still shows "-"."""
    async with fresh_database("sqlite", tmp_path) as db:
        await Tenancy().dealer("d1").customer("c1", "d1").save(db)
        tech, _ = await create_user(db, Role.TECHNICIAN, dealer="d1")
        log = AuditLog(db, None)
        for user_id, path in ((str(tech.id), "/status.html"), ("u-gone", "/gone.html")):
            await log.append(AuditEventIn(type="dwa.request", dealer_id="d1", customer_id="c1", session_id="s-1",
                                          source_ip="127.0.0.1",
                                          details={"method": "GET", "path": path, "status": 200, "user_id": user_id}))
        async with portal_over(db, log) as portal:
            auditor, secret = await create_user(db, Role.AUDITOR, dealer="d1")
            async with httpx.AsyncClient(base_url=portal.url, timeout=30, headers={"accept": "text/html"}) as c:
                await sign_in(c, portal, auditor, secret)
                page = (await c.get("/audit", params={"type": "dwa.request"})).text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r'<tr data-seq="(\d+)">.*?<td data-label="Who">(.*?)(?:<div|</td>)', page, re.S)}
    assert len(rows) == 2, page[:3000]
    first, second = (rows[k] for k in sorted(rows, key=int))
    assert tech.email in first and f'title="user {tech.id}, from the request' in first
    assert second.strip() == "—"
