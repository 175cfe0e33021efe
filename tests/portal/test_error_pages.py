"""Every error a person meets in the portal is a page saying what to do (roles, invalid
query values, unknown pages, expired forms, failures); API clients keep JSON."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import APIRouter

from audit.log import AuditLog
from lab.ports import free_tcp_port
from portal.app import create_app
from printgate.domain import Role
from printgate.settings import PortalSettings
from printgate.store.db import Database
from printgate.testing.broker import PolicyBroker
from printgate.testing.database import migrated, sqlite_url
from printgate.testing.portal import Clock, create_user, served, sign_in
from tests.portal.conftest import seed


@dataclass
class Served:
    url: str
    db: Database
    clock: Clock


def _failing_router() -> APIRouter:
    """A route that fails the way a bug would (the fault is injected; nothing else is faked)."""
    router = APIRouter()

    @router.get("/broken")
    @router.get("/api/broken")
    async def broken() -> None:
        raise RuntimeError("injected failure")

    return router


@pytest.fixture(scope="module")
async def served_portal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    url = sqlite_url(tmp_path_factory.mktemp("errors") / "portal.db")
    async with migrated(url) as db:
        await seed(db)
        port = free_tcp_port()
        base = f"http://127.0.0.1:{port}"
        settings = PortalSettings(host="127.0.0.1", port=port, public_url=base,
                                  secret_key=secrets.token_urlsafe(32))
        clock, log = Clock(), AuditLog(db, None)
        app = create_app(settings, db=db, broker=PolicyBroker(db, clock, base, log), audit=log, clock=clock,
                         extra_routers=[_failing_router()])
        async with served(app, port) as url_:
            yield Served(url_, db, clock)


@pytest.fixture
async def technician(served_portal: Served) -> AsyncIterator[httpx.AsyncClient]:
    user, secret = await create_user(served_portal.db, Role.TECHNICIAN)
    async with httpx.AsyncClient(base_url=served_portal.url, timeout=10,
                                 headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}) as c:
        await sign_in(c, served_portal, user, secret)
        yield c


def assert_page(r: httpx.Response, status: int, *texts: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html"), r.headers
    assert "<!doctype html>" in r.text.lower() and 'href="/"' in r.text  # a way back
    for text in texts:
        assert text in r.text, r.text
    return r.text


async def test_a_page_for_another_role_says_which_role_and_whom_to_ask(technician: httpx.AsyncClient) -> None:
    page = assert_page(await technician.get("/audit"), 403, "this needs the auditor role",
                       "ask an administrator")
    assert "Sign in as someone else" in page


async def test_invalid_fleet_query_values_are_named_on_a_page(technician: httpx.AsyncClient) -> None:
    page = assert_page(await technician.get("/fleet/dev-c-open", params={"days": "lots"}), 422,
                       "Correct the values")
    problems = re.search(r'<ul class="problems" id="error-problems">(.*?)</ul>', page, re.S)
    assert problems and "days:" in problems.group(1) and "lots" in problems.group(1), page
    assert '"loc"' not in page and '"detail"' not in page  # not pydantic's JSON


async def test_unknown_page_wrong_method_and_expired_form_are_pages(technician: httpx.AsyncClient) -> None:
    assert_page(await technician.get("/no/such/page"), 404, "Not found")
    assert_page(await technician.get("/logout"), 405)
    assert_page(await technician.post("/approvals/nope/approve", data={"csrf_token": "forged"}), 403,
                "reload the page")


async def test_a_failure_is_a_page_with_a_reference(technician: httpx.AsyncClient) -> None:
    page = assert_page(await technician.get("/broken"), 500, "Something went wrong")
    assert re.search(r'id="error-reference">[0-9a-f]{8}<', page)
    assert "injected failure" not in page  # no internals shown


async def test_api_clients_keep_json(served_portal: Served, technician: httpx.AsyncClient) -> None:
    r = await technician.get("/api/no-such")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = await technician.get("/api/fleet/devices/dev-c-open/readings", params={"limit": "0"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    r = await technician.get("/api/broken")
    assert r.status_code == 500 and set(r.json()) == {"detail", "reference"}
    async with httpx.AsyncClient(base_url=served_portal.url, timeout=10) as anonymous:
        r = await anonymous.get("/audit/events", headers={"authorization": "Bearer pgt_0_nope"})
        assert r.status_code == 401 and r.headers["content-type"] == "application/json"
        r = await anonymous.get("/api/me", headers={"accept": "text/html"})
        assert r.status_code == 401 and r.json() == {"detail": "sign in first"}



def _nav(page: str) -> str:
    found = re.search(r'<nav aria-label="main">(.*?)</nav>', page, re.S)
    assert found, "no navigation bar on the error page"
    return found.group(1)


async def test_error_pages_of_a_signed_in_user_keep_the_navigation_bar(technician: httpx.AsyncClient) -> None:
    for path, status in (("/no/such/page", 404), ("/audit", 403), ("/broken", 500)):
        nav = _nav(assert_page(await technician.get(path), status))
        assert 'href="/devices"' in nav and 'href="/sessions"' in nav, nav
    page = assert_page(await technician.get("/no/such/page"), 404)
    assert 'action="/logout"' in page  # the account box with a working sign-out form


async def test_a_403_without_a_role_does_not_point_to_a_role_named_above(technician: httpx.AsyncClient) -> None:
    page = assert_page(await technician.post("/approvals/nope/approve", data={"csrf_token": "forged"}), 403,
                       "reload the page")
    todo = re.search(r'<p id="error-todo">(.*?)</p>', page, re.S)
    assert todo and "named above" not in todo.group(1) and "ask an administrator" in todo.group(1), page
    page = assert_page(await technician.get("/audit"), 403)
    todo = re.search(r'<p id="error-todo">(.*?)</p>', page, re.S)
    assert todo and "the role named above" in todo.group(1)


async def test_signed_out_visitor_gets_an_error_page_without_navigation(served_portal: Served) -> None:
    async with httpx.AsyncClient(base_url=served_portal.url, timeout=10,
                                 headers={"accept": "text/html"}) as anonymous:
        page = assert_page(await anonymous.get("/no/such/page"), 404)
    assert '<nav aria-label="main">' not in page


async def test_roles_read_as_words_on_the_users_page(served_portal: Served) -> None:
    """Issue 15: "dealer administrator", not ``dealer_admin``, next to the checkboxes."""
    admin, secret = await create_user(served_portal.db, Role.DEALER_ADMIN)
    async with httpx.AsyncClient(base_url=served_portal.url, timeout=10, headers={"accept": "text/html"}) as c:
        await sign_in(c, served_portal, admin, secret)
        page = assert_page(await c.get("/admin/users"), 200)
    assert 'value="dealer_admin" checked> dealer administrator</label>' in page
    assert 'value="technician"> technician</label>' in page
    assert "> dealer_admin</label>" not in page
