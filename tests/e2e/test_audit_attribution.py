"""Every ``dwa.*`` record of a session carries dealer, customer, site, device, user and session,
so the tenant's auditors find them: in the portal's /audit view, the session story, the API and
``printgate audit export --customer/--dealer`` (whole system, on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from lab.catalog import by_name
from printgate.cli.demo_system import DEMO_CUSTOMER, DEMO_DEALER, DEMO_SITE, DemoSystem
from printgate.domain import AuditRecord, Role
from printgate.testing.portal import create_user, sign_in
from tests.e2e.conftest import session_cookie

PRINTER = by_name("jetdirect_m130nw")
PRINTGATE = str(Path(sys.executable).with_name("printgate"))
TECH = "user-demo-tech"


class _RealClock:
    @property
    def clock(self) -> Any:
        return lambda: datetime.now(UTC)


async def _session_traffic(system: DemoSystem) -> str:
    """Open a session, browse, trigger refusals of several kinds, end it; the session id."""
    launch = await system.open_session_as_demo_user(PRINTER.ip)
    sid = next(s.id for s in system.cloud.broker.live_sessions_of(TECH))
    parts = urlsplit(launch)
    local = f"http://127.0.0.1:{parts.port}"
    host = {"Host": parts.netloc}
    async with httpx.AsyncClient(base_url=local, timeout=15) as c:
        first = await c.get(f"{parts.path}?{parts.query}", headers=host)
        cookie = session_cookie(first)
        signed = {**host, "Cookie": cookie}
        assert PRINTER.name in (await c.get("/", headers=signed)).text
        blocked = await c.post("/firmware/upload", headers=signed,
                               files={"f": ("fw.bin", b"\x7fELF" + bytes(4000), "application/octet-stream")})
        assert blocked.status_code == 403
        assert (await c.get("/", headers=host)).status_code == 401  # no cookie
        # a refused request carrying data in the query, a custom header and a device cookie
        refused = await c.put("/api/settings?" + "a=" + "Q" * 300, content=b"x" * 100,
                              headers={**signed, "Cookie": cookie + "; devsess=" + "C" * 40, "X-Data": "H" * 50})
        assert refused.status_code == 403
    await system.cloud.broker.close_session(sid, reason="attribution test", actor="test")  # type: ignore[arg-type]
    return sid


def _assert_attributed(records: list[AuditRecord], device_id: str) -> None:
    for r in records:
        where = f"{r.type} #{r.seq}"
        assert r.dealer_id == DEMO_DEALER.id, where
        assert r.customer_id == DEMO_CUSTOMER.id, where
        assert r.device_id == device_id, where
        assert r.details.get("site_id") == DEMO_SITE.id, where
        assert r.details.get("user_id") == TECH, where


async def test_every_dwa_record_of_a_session_reaches_the_tenants_auditors(system: DemoSystem, tmp_path: Path) -> None:
    sid = await _session_traffic(system)
    device = await system.device_at(PRINTER.ip)
    await asyncio.sleep(0.5)  # the proxy's group commit
    flush = getattr(system.cloud.proxy, "flush_audit", None)
    if flush is not None:
        await flush()
    mine = [r for r in await system.audit_events() if r.session_id == sid and r.type.startswith("dwa.")]
    types = {r.type for r in mine}
    assert {"dwa.session.opened", "dwa.request", "dwa.transfer_blocked", "dwa.session.closed"} <= types, types
    _assert_attributed(mine, device.id)

    # refused data is described by kind and size, never by content
    refused = [r for r in mine if r.details.get("refused_data")]
    assert refused, [r.details for r in mine if r.outcome == "blocked"]
    described = refused[-1].details["refused_data"]
    put = next((r for r in refused if r.details.get("method") == "PUT"), None)
    assert put is not None
    described = put.details["refused_data"]
    assert described["query"]["bytes"] >= 300 and described["headers"]["names"] == ["x-data"]
    assert described["cookies"]["count"] == 1 and described["body"]["bytes"] == 100
    assert "QQQQ" not in json.dumps(put.details) and "HHHH" not in json.dumps(put.details)

    # the customer's auditor: /audit page, session story, API
    auditor, secret = await create_user(system.cloud.db, Role.AUDITOR, dealer=DEMO_DEALER.id,
                                        customer=DEMO_CUSTOMER.id)
    async with httpx.AsyncClient(base_url=system.portal_url, timeout=15, headers={"accept": "text/html"}) as c:
        await sign_in(c, _RealClock(), auditor, secret)
        page = await c.get("/audit", params={"session_id": sid})
        assert page.status_code == 200
        shown = {int(s) for s in re.findall(r'<tr data-seq="(\d+)">', page.text)}
        assert {r.seq for r in mine if r.type == "dwa.transfer_blocked"} <= shown
        story = (await c.get(f"/audit/sessions/{sid}", headers={"accept": "application/json"})).json()
        story_types = {e["type"] for e in story["events"]}
        assert {"dwa.request", "dwa.transfer_blocked", "dwa.session.opened", "dwa.session.closed"} <= story_types
        assert {e["seq"] for e in story["events"]} >= {r.seq for r in mine}

    # the dealer's export (with inclusion proofs: it needs a signed checkpoint covering the records)
    await system.cloud.audit.checkpoint()
    out = tmp_path / "dealer.jsonl"
    export = await asyncio.create_subprocess_exec(
        PRINTGATE, "audit", "export", "--out", str(out), "--dealer", DEMO_DEALER.id,
        "--database-url", system.settings.database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await export.communicate()
    assert export.returncode == 0, output.decode()
    exported = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    seqs = {int(item["seq"]) for item in _walk(exported) if isinstance(item, dict) and "seq" in item
            and item.get("session_id") == sid}
    assert {r.seq for r in mine} <= seqs


def _walk(value: Any) -> Any:
    """Every dict and list inside ``value``, depth first."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
