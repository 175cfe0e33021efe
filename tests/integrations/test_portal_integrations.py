"""The Integrations page (dealer administrators) against real receivers on loopback: add an
endpoint (secret shown once), send a signed test event, disable it; a receiver that is down
leaves a dead letter on the page, "Redeliver" brings it once the receiver is up; every change
audited; other roles and other dealers kept out; the page in Chromium at 1366 and 390 px."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from integrations.dispatcher import RetryPolicy, WebhookDispatcher
from integrations.endpoints import (
    DELIVERY_REDELIVERED,
    ENDPOINT_ADDED,
    ENDPOINT_DISABLED,
    ENDPOINT_TESTED,
    MAX_ENDPOINTS_PER_DEALER,
    WebhookEndpoints,
)
from integrations.webhook import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookTransport,
    verify_signature,
)
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store import outbox
from printgate.store.db import Database
from printgate.testing.audit import RecordingAuditSink
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, csrf_of, served, sign_in
from printgate.testing.tenancy import Tenancy
from printgate.vault import FileKms

ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]


@dataclass
class Hooks:
    secrets: dict[str, str] = field(default_factory=dict)  # path -> secret
    calls: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{name}")
        async def hook(name: str, request: Request) -> Response:
            body = await request.body()
            verify_signature(self.secrets[name].encode(), request.headers[SIGNATURE_HEADER], body)
            self.calls.append((name, dict(request.headers), json.loads(body)))
            return Response(status_code=200)

        return app


@dataclass
class World:
    url: str
    db: Database
    clock: Clock
    audit: RecordingAuditSink
    dispatcher: WebhookDispatcher
    hooks: Hooks
    hook_url: str


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("integrations-portal")
    hooks = Hooks()
    async with migrated(sqlite_url(tmp / "p.db")) as db, served(hooks.app(), free_tcp_port()) as hook_url:
        await (Tenancy().chain(dealer="d1", customer="c1", site="s1", agent="a1")
               .device("dev1", "s1", "a1", "10.0.0.5").chain(dealer="d2", customer="c2", site="s2").save(db))
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=secrets.token_urlsafe(32))  # type: ignore[arg-type]
        clock, audit = Clock(), RecordingAuditSink()
        kms, transport = FileKms(tmp / "vault.key"), WebhookTransport(timeout=5, allow_private=True)
        dispatcher = WebhookDispatcher(db, kms, transport, audit=audit, policy=RetryPolicy(max_attempts=1))
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, audit), audit=audit, clock=clock)
        app.state.webhook_endpoints = WebhookEndpoints(db, kms, audit, transport, allow_private=True,
                                                       on_redeliver=dispatcher.wake)
        async with served(app, port) as url:
            yield World(url, db, clock, audit, dispatcher, hooks, hook_url)
        await transport.aclose()


async def client_for(world: World, *roles: Role, dealer: str = "d1") -> httpx.AsyncClient:
    user, secret = await create_user(world.db, *roles, dealer=dealer)
    c = httpx.AsyncClient(base_url=world.url, timeout=15, headers={"accept": "text/html"})
    await sign_in(c, world, user, secret)
    return c


async def add(c: httpx.AsyncClient, url: str, kinds: list[str] | None = None) -> httpx.Response:
    page = await c.get("/integrations")
    return await c.post("/integrations/endpoints", data={"csrf_token": csrf_of(page.text), "url": url,
                                                         "description": "PSA", "kinds": kinds or []})


def endpoint_ids(html: str) -> list[str]:
    return re.findall(r'data-endpoint-id="(whe_[0-9a-f]+)"', html)


def new_endpoint(html: str) -> str:
    found = re.search(r'data-endpoint-id-new="(whe_[0-9a-f]+)"', html)
    assert found, "the page names the endpoint just added"
    return found.group(1)


async def test_add_test_and_disable_an_endpoint(world: World) -> None:
    admin = await client_for(world, Role.DEALER_ADMIN)
    refused = await add(admin, "gopher://psa.example/hook")
    assert refused.status_code == 422 and "must start with https://" in refused.text
    assert 'value="gopher://psa.example/hook"' in refused.text  # the form keeps what was typed
    r = await add(admin, f"{world.hook_url}/psa", [outbox.ALERT_OPENED, outbox.ALERT_CLEARED])
    assert r.status_code == 200
    shown = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', r.text)
    assert shown, "the secret is shown once"
    world.hooks.secrets["psa"] = shown.group(1)
    ep_id = new_endpoint(r.text)
    again = await admin.get("/integrations")
    assert shown.group(1) not in again.text and "alert.cleared, alert.opened" in again.text

    tested = await admin.post(f"/integrations/endpoints/{ep_id}/test", data={"csrf_token": csrf_of(again.text)})
    assert "delivered (HTTP 200)" in tested.text
    name, headers, body = world.hooks.calls[-1]
    assert name == "psa" and headers[EVENT_HEADER.lower()] == "printgate.test" == body["type"]
    assert body["id"] == headers[EVENT_ID_HEADER.lower()] and body["dealer_id"] == "d1"

    off = await admin.post(f"/integrations/endpoints/{ep_id}/disable", data={"csrf_token": csrf_of(tested.text)})
    assert off.status_code == 303
    assert ">disabled<" in (await admin.get("/integrations")).text
    types = world.audit.types()
    assert {ENDPOINT_ADDED, ENDPOINT_TESTED, ENDPOINT_DISABLED} <= set(types)
    added = [e for e in world.audit.events if e.type == ENDPOINT_ADDED][-1]
    assert added.dealer_id == "d1" and shown.group(1) not in json.dumps(added.details)


async def test_other_roles_and_other_dealers_are_kept_out(world: World) -> None:
    admin = await client_for(world, Role.DEALER_ADMIN)
    world.hooks.secrets["mine"] = "unused"
    ep_id = new_endpoint((await add(admin, f"{world.hook_url}/mine")).text)
    tech = await client_for(world, Role.TECHNICIAN)
    assert (await tech.get("/integrations")).status_code == 403
    other = await client_for(world, Role.DEALER_ADMIN, dealer="d2")
    page = await other.get("/integrations")
    assert page.status_code == 200 and ep_id not in page.text
    r = await other.post(f"/integrations/endpoints/{ep_id}/disable", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 404
    r = await other.post(f"/integrations/endpoints/{ep_id}/test", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 404
    r = await admin.post(f"/integrations/endpoints/{ep_id}/disable", data={"csrf_token": "forged"})
    assert r.status_code == 403


async def test_a_dead_letter_is_shown_and_redelivered_from_the_page(world: World, tmp_path: Path) -> None:
    admin = await client_for(world, Role.DEALER_ADMIN)
    page = await admin.get("/integrations")
    for ep in endpoint_ids(page.text):  # earlier tests' endpoints take no part here
        await admin.post(f"/integrations/endpoints/{ep}/disable", data={"csrf_token": csrf_of(page.text)})
    down_port = free_tcp_port()
    r = await add(admin, f"http://127.0.0.1:{down_port}/ticket")
    secret = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', r.text)
    assert secret
    async with world.db.transaction() as s:
        event_id = await outbox.enqueue_for_device(s, kind=outbox.ALERT_OPENED, device_id="dev1",
                                                   payload={"code": "toner_empty"})
    await world.dispatcher.run_once()
    page = await admin.get("/integrations")
    dead = re.search(r'<tr data-delivery-id="(\d+)">\s*<td data-label="Event">alert.opened<br><code>'
                     + str(event_id), page.text)
    assert dead, "the dead letter is listed with its event id"

    await shots(world, admin, tmp_path, "dead-letter")
    receiver = Hooks(secrets={"ticket": secret.group(1)})
    async with served(receiver.app(), down_port):
        r = await admin.post(f"/integrations/deliveries/{dead.group(1)}/redeliver",
                             data={"csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        await world.dispatcher.run_once()
    assert [(n, b["id"]) for n, _, b in receiver.calls] == [("ticket", event_id)]
    after = await admin.get("/integrations")
    assert f'data-delivery-id="{dead.group(1)}" data-status="delivered"' in after.text
    assert "No dead letters." in after.text
    assert DELIVERY_REDELIVERED in world.audit.types()
    await shots(world, admin, tmp_path, "redelivered")


async def shots(world: World, admin: httpx.AsyncClient, out: Path, tag: str) -> None:
    """The page in Chromium: desktop and phone width, no horizontal scrolling, nav on one row,
    axe-core clean."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            for width in (1366, 390):
                ctx = await browser.new_context(viewport={"width": width, "height": 900}, base_url=world.url)
                await ctx.add_cookies([{"name": c.name, "value": c.value or "", "url": world.url}
                                       for c in admin.cookies.jar])
                page = await ctx.new_page()
                await page.goto("/integrations")
                assert await page.title() == "Integrations · printgate"
                overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                assert overflow <= 1, f"page scrolls sideways at {width}px"
                if width == 1366:
                    rows = await page.evaluate(
                        "new Set([...document.querySelectorAll('header nav a')].map(a => a.offsetTop)).size")
                    assert rows <= 1, "the header nav wraps at 1366px"
                    spill = await page.evaluate("(() => { const n = document.querySelector('header nav'); "
                                                "return n.scrollWidth - n.clientWidth; })()")
                    assert spill <= 1, f"the header nav runs {spill}px under the account at 1366px"
                await page.screenshot(path=str(out / f"integrations-{tag}-{width}.png"), full_page=True)
                if width == 1366:  # axe-core: no serious or critical violations
                    from axe_playwright_python.async_playwright import Axe

                    results = await Axe().run(page)
                    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
                    assert not bad, [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in bad]
                await ctx.close()
        finally:
            await browser.close()


async def test_a_dealer_has_at_most_twenty_endpoints(world: World) -> None:
    admin = await client_for(world, Role.DEALER_ADMIN, dealer="d2")
    for i in range(MAX_ENDPOINTS_PER_DEALER):
        assert (await add(admin, f"{world.hook_url}/n{i}")).status_code == 200
    refused = await add(admin, f"{world.hook_url}/one-too-many")
    assert refused.status_code == 422 and "at most 20 webhook endpoints" in refused.text
    assert len(endpoint_ids(refused.text)) == MAX_ENDPOINTS_PER_DEALER
