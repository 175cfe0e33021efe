"""The simulated EWS's admin logins: form (with one-use CSRF tokens on some vendors), HTTP Basic,
HTTP Digest, and a lockout after failed logins, as real printers have."""

from __future__ import annotations

import re

import httpx
import pytest

from lab.catalog import PRINTERS, by_name
from lab.ews import EwsLab
from lab.ews.device_login import LOCKOUT_AFTER, PASSWORD, USERNAME


@pytest.fixture(scope="module")
async def lab():
    async with EwsLab() as running:
        yield running


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=False)


async def test_lab_has_every_login_kind():
    kinds = {(d.login.kind, d.login.csrf_field is not None) for d in PRINTERS}
    assert kinds == {("form", False), ("form", True), ("basic", False), ("digest", False)}


@pytest.mark.parametrize("name", ["konica_c250i"])
async def test_basic_device_challenges_and_accepts_basic_credentials(lab, name):
    server = lab[name]
    async with _client() as c:
        r = await c.get(server.origin + "/settings")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic realm=")
        wrong = await c.get(server.origin + "/settings", auth=(USERNAME, "nope"))
        assert wrong.status_code == 401
        ok = await c.get(server.origin + "/settings", auth=(USERNAME, PASSWORD))
        assert ok.status_code == 200 and "Logged in as admin" in ok.text


async def test_digest_device_accepts_only_a_digest_response(lab):
    server = lab["sharp"]
    async with _client() as c:
        r = await c.get(server.origin + "/settings")
        challenge = r.headers["www-authenticate"]
        assert r.status_code == 401 and challenge.startswith("Digest ") and 'qop="auth"' in challenge
        basic = await c.get(server.origin + "/settings", auth=(USERNAME, PASSWORD))
        assert basic.status_code == 401  # the password in clear is not taken
        ok = await c.get(server.origin + "/settings?tab=1", auth=httpx.DigestAuth(USERNAME, PASSWORD))
        assert ok.status_code == 200 and "Logged in as admin" in ok.text
        wrong = await c.get(server.origin + "/settings", auth=httpx.DigestAuth(USERNAME, "nope"))
        assert wrong.status_code == 401
    server.state.auth.unlock()


async def test_digest_device_refuses_a_replayed_header_for_another_uri(lab):
    server = lab["sharp"]
    async with _client() as c:
        ok = await c.get(server.origin + "/settings", auth=httpx.DigestAuth(USERNAME, PASSWORD))
        header = ok.request.headers["authorization"]
        replay = await c.get(server.origin + "/settings?other=1", headers={"authorization": header})
    assert replay.status_code == 401


@pytest.mark.parametrize("name", ["ricoh_mpc3002", "xerox"])
async def test_csrf_form_login_needs_the_token_from_the_form(lab, name):
    server, login = lab[name], by_name(name).login
    assert login.csrf_field
    async with _client() as c:
        first = await c.get(server.origin + "/settings")
        assert first.status_code == 302 and first.headers["location"] == server.origin + login.path
        page = (await c.get(server.origin + login.path)).text
        token = re.search(rf"name={login.csrf_field} value='([^']+)'", page)
        assert token and f"name={login.user_field}" in page and f"name={login.password_field}" in page
        fields = {login.user_field: USERNAME, login.password_field: PASSWORD}
        without = await c.post(server.origin + login.path, data=fields)
        assert without.status_code == 200 and "expired" in without.text and "ewssid" not in without.cookies
        ok = await c.post(server.origin + login.path, data={**fields, login.csrf_field: token.group(1)})
        assert ok.status_code == 302 and "ewssid" in ok.cookies
        settings = await c.get(server.origin + "/settings")
        assert "Logged in as admin" in settings.text
        reused = await c.post(server.origin + login.path, data={**fields, login.csrf_field: token.group(1)})
        assert "expired" in reused.text  # one use only


async def test_the_admin_page_pre_fills_the_password_field(lab):
    server = lab["konica_c250i"]
    async with _client() as c:
        ok = await c.get(server.origin + "/settings", auth=(USERNAME, PASSWORD))
    assert f"type=password name=admin_password id=admin-pw value='{PASSWORD}'" in ok.text


@pytest.mark.parametrize("name", ["brother_hl5370dw", "konica_c250i", "sharp"])
async def test_failed_logins_lock_the_account_even_for_the_right_password(lab, name):
    server, kind = lab[name], by_name(name).login.kind
    try:
        async with _client() as c:
            for _ in range(LOCKOUT_AFTER):
                if kind == "form":
                    await c.post(server.origin + "/login", data={"username": USERNAME, "password": "guess"})
                else:
                    auth = (USERNAME, "guess") if kind == "basic" else httpx.DigestAuth(USERNAME, "guess")
                    await c.get(server.origin + "/settings", auth=auth)
            assert server.state.auth.locked()
            if kind == "form":
                r = await c.post(server.origin + "/login", data={"username": USERNAME, "password": PASSWORD})
            else:
                auth = (USERNAME, PASSWORD) if kind == "basic" else httpx.DigestAuth(USERNAME, PASSWORD)
                r = await c.get(server.origin + "/settings", auth=auth)
            assert r.status_code == 403 and "Account locked" in r.text
    finally:
        server.state.auth.unlock()
