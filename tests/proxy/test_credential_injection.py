"""The proxy signs in to each lab printer's admin pages with the session's stored credential:
Basic and Digest challenges answered by the proxy, form logins through vendor login profiles
(with CSRF tokens), device cookies kept in the proxy, the secret never in an answer."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.proxy.routes import SessionRoute
from lab.catalog import PRINTERS
from lab.ews import EwsServer
from lab.ews.device_login import PASSWORD, SESSION_COOKIE, USERNAME
from printgate.domain.credentials import DeviceLogin, LoginKind
from tests.proxy.conftest import ProxyHarness, SessionClient

VENDORS = {"ricoh_mpc3002": "Ricoh", "xerox": "Xerox"}
WITH_LOGIN = [d.name for d in PRINTERS]


def _route(harness: ProxyHarness, ews: EwsServer, login: DeviceLogin | None, vendor: str = "") -> SessionRoute:
    sid = uuid.uuid4().hex[:12]
    route = SessionRoute(
        session_id=sid, host=harness.proxy.session_host(sid), upstream_host=ews.host, upstream_port=ews.port,
        device_origin=ews.origin, device_scheme=ews.scheme, pinned_fingerprint=ews.cert_fingerprint,
        expires_at=datetime.now(UTC) + timedelta(minutes=30), idle_timeout_s=600,
        device_label=ews.state.device_name, customer_name="ACME", vendor=vendor, login=login,
    )
    harness.routes.add(route)
    return route


async def _client(harness: ProxyHarness, ews: EwsServer, name: str, password: str = PASSWORD,
                  with_login: bool = True) -> SessionClient:
    from lab.catalog import by_name

    kind = LoginKind(by_name(name).login.kind)
    login = DeviceLogin(kind, USERNAME, password, version=3) if with_login else None
    client = SessionClient(harness, _route(harness, ews, login, VENDORS.get(name, "")))
    await client.launch()
    return client


@pytest.mark.parametrize("name", WITH_LOGIN)
async def test_admin_page_opens_signed_in_and_the_answer_never_holds_the_secret(harness, ews_lab, name):
    ews = ews_lab[name]
    ews.state.auth.unlock()
    logins_before = ews.state.auth.logins
    client = await _client(harness, ews, name)
    try:
        first = await client.request("GET", "/settings", follow_redirects=True)
        assert first.status_code == 200 and "Logged in as admin" in first.text, first.text[:300]
        assert "signed in to the device as admin by printgate" in first.text
        assert PASSWORD.encode() not in first.content
        field = first.text.split("id=admin-pw", 1)[1].split(">", 1)[0]
        assert "value" not in field, field  # the pre-filled password field comes blank
        for r in [*first.history, first]:
            assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
            assert PASSWORD not in str(r.headers)
        again = await client.request("GET", "/settings")
        assert again.status_code == 200 and "Logged in as admin" in again.text
        assert ews.state.auth.logins - logins_before in (1, 2)  # one sign-in (Basic/Digest: per request)
        if ews.state.auth.login.kind == "form":
            assert ews.state.auth.logins - logins_before == 1  # the session cookie is reused
        events = await harness.events(client.route.session_id)
        signed = [e for e in events if e.type == "dwa.device_signed_in"]
        assert len(signed) == 1 and signed[0].details["account"] == USERNAME
        assert signed[0].details["credential_version"] == 3
        assert all(PASSWORD not in str(e.details) for e in events)
    finally:
        await client.aclose()


@pytest.mark.parametrize("name", ["konica_c250i", "brother_hl5370dw"])
async def test_the_browsers_own_authorization_never_reaches_the_device(harness, ews_lab, name):
    ews = ews_lab[name]
    ews.state.auth.unlock()
    failures = ews.state.auth.failures
    client = await _client(harness, ews, name)
    try:
        r = await client.request("GET", "/settings", follow_redirects=True,
                                 headers={"authorization": "Basic YWRtaW46Z3Vlc3M="})  # admin:guess
        assert r.status_code == 200 and "Logged in as admin" in r.text
        assert ews.state.auth.failures == failures
    finally:
        await client.aclose()


@pytest.mark.parametrize("name", ["brother_hl5370dw", "ricoh_mpc3002", "konica_c250i", "sharp"])
async def test_a_wrong_stored_password_is_tried_once_and_the_device_login_shows(harness, ews_lab, name):
    ews = ews_lab[name]
    ews.state.auth.unlock()
    failures = ews.state.auth.failures
    client = await _client(harness, ews, name, password="not-the-password")
    try:
        for _ in range(3):
            r = await client.request("GET", "/settings")
            assert r.status_code in (302, 401) and "Logged in as admin" not in r.text
            assert "not-the-password" not in r.text
        assert ews.state.auth.failures == failures + 1 and not ews.state.auth.locked()
        events = await harness.events(client.route.session_id)
        failed = [e for e in events if e.type == "dwa.device_sign_in_failed"]
        assert len(failed) == 1 and "not-the-password" not in str(failed[0].details)
    finally:
        await client.aclose()
        ews.state.auth.unlock()


async def test_without_a_stored_credential_the_device_login_page_is_shown(harness, ews_lab):
    ews = ews_lab["ricoh_mpc3002"]
    client = await _client(harness, ews, "ricoh_mpc3002", with_login=False)
    try:
        r = await client.request("GET", "/settings")
        assert r.status_code == 302 and r.headers["location"].endswith("/web/guest/login.cgi")
    finally:
        await client.aclose()


async def test_a_route_keeps_its_credential_out_of_its_repr(harness, ews_lab):
    route = _route(harness, ews_lab["konica_c250i"], DeviceLogin(LoginKind.BASIC, "admin", "S3cr3t!"))
    assert "S3cr3t!" not in repr(route) and "S3cr3t!" not in repr(replace(route, device_label="x"))


async def test_the_sign_in_client_sends_nothing_to_a_device_whose_certificate_is_not_pinned(harness, ews_lab):
    from gateway.errors import DeviceLoginFailed
    from gateway.proxy.device_client import DeviceClient

    ews = ews_lab["xerox"]
    route = replace(_route(harness, ews, None), pinned_fingerprint="00" * 32)
    seen = len(ews.state.seen_paths)
    client = DeviceClient(route)
    with pytest.raises(DeviceLoginFailed, match="not the one pinned"):
        await client.send("GET", "/userpost/login", [(b"host", b"x")])
    await client.aclose()
    assert len(ews.state.seen_paths) == seen
    pinned = DeviceClient(replace(route, pinned_fingerprint=ews.cert_fingerprint))
    answer = await pinned.send("GET", "/userpost/login", [(b"host", b"x")])
    await pinned.aclose()
    assert answer.status == 200 and len(ews.state.seen_paths) == seen + 1


def test_worker_processes_receive_the_credential_with_the_route():
    """Routes reach proxy workers as JSON over their control socket: the credential goes along."""
    import json

    from gateway.proxy.control_channel import route_from_json, route_to_json
    from printgate.domain.credentials import CredentialScope

    login = DeviceLogin(LoginKind.DIGEST, "admin", "p@ss", "xerox", 4, CredentialScope.MODEL)
    route = SessionRoute(
        session_id="s1", host="s-s1.dwa.localhost", upstream_host="/run/t.sock", upstream_port=0,
        device_origin="https://127.0.20.21", device_scheme="https", pinned_fingerprint="ab" * 32,
        expires_at=datetime.now(UTC), idle_timeout_s=60, device_label="x", customer_name="y", login=login,
    )
    assert route_from_json(json.loads(json.dumps(route_to_json(route)))) == route
    plain = replace(route, login=None)
    assert route_from_json(json.loads(json.dumps(route_to_json(plain)))) == plain


# --- issue 19 follow-up: the mask must not tell a technician whether a guess is the password ----

GUESSES = ["password123", "admin-pas", "xx admin-pas yy", "admin pass"]
RIGHT = [PASSWORD, f"a {PASSWORD} b", f"secret|letmein|{PASSWORD}|1234", "Admin-Pass"]


def _shown_location(text: str) -> str:
    import html as html_mod

    return html_mod.unescape(text.split("<p id=location>Location: ", 1)[1].split("</p>", 1)[0])


async def _typed_events(harness: ProxyHarness, client: SessionClient) -> list:
    events = await harness.events(client.route.session_id)
    assert all(PASSWORD.casefold() not in str(e.details).casefold() for e in events)
    return [e for e in events if e.type == "dwa.credential_typed"]


@pytest.mark.parametrize("guess", GUESSES + RIGHT)
async def test_an_echoed_guess_comes_back_as_typed_whether_or_not_it_is_the_password(harness, ews_lab, guess):
    """Konica's Location field: the device echoes it in the answer and in every later page."""
    ews = ews_lab["konica_c250i"]
    ews.state.auth.unlock()
    before = ews.state.location
    client = await _client(harness, ews, "konica_c250i")
    try:
        r = await client.request("POST", "/settings", data={"location": guess}, follow_redirects=True)
        assert r.status_code == 200 and ews.state.location == guess
        assert _shown_location(r.text) == guess, r.text[:400]
        later = await client.request("GET", "/settings")  # the stored echo, in a request without the guess
        assert _shown_location(later.text) == guess
        assert "value" not in later.text.split("id=admin-pw", 1)[1].split(">", 1)[0]  # still blanked
        typed = await _typed_events(harness, client)
        assert len(typed) == (1 if guess in RIGHT else 0)
    finally:
        ews.state.location = before
        await client.aclose()


@pytest.mark.parametrize("body", [
    '{"location": "a admin-pass b"}',
    '{"location": "a \\u0061dmin-pass b"}',  # JSON-escaped: the device decodes it
    '{"location": "a ADMIN-PASS b"}',
    '{"location": "a admin-pas b"}',
])
async def test_a_json_setting_echo_is_never_masked_by_the_proxy(harness, ews_lab, body):
    """Ricoh's ``/api/settings``: many guesses per request, no device login, used to be an oracle."""
    import json

    ews = ews_lab["ricoh_mpc3002"]
    ews.state.auth.unlock()
    before = ews.state.location
    client = await _client(harness, ews, "ricoh_mpc3002")
    try:
        r = await client.request("POST", "/api/settings", content=body,
                                 headers={"content-type": "application/json"})
        sent = json.loads(body)["location"]
        assert r.status_code == 200 and r.json()["location"] == sent, r.text
        assert len(await _typed_events(harness, client)) == (1 if PASSWORD.casefold() in sent.casefold() else 0)
    finally:
        ews.state.location = before
        await client.aclose()


async def test_the_secret_the_device_shows_on_its_own_stays_masked(harness, ews_lab):
    """Not echoed (set on the device by someone else): masked, also after the technician's wrong guesses."""
    ews = ews_lab["konica_c250i"]
    ews.state.auth.unlock()
    before = ews.state.location
    ews.state.location = f"pw is {PASSWORD}"
    client = await _client(harness, ews, "konica_c250i")
    try:
        for query in ("", "?q=admin-pas", "?q=Admin%2Dpa"):
            r = await client.request("GET", "/settings" + query)
            assert r.status_code == 200 and _shown_location(r.text) == "pw is ********"
            assert PASSWORD not in r.text
        assert await _typed_events(harness, client) == []
    finally:
        ews.state.location = before
        await client.aclose()


async def test_device_websocket_text_frames_mask_the_secret_until_the_technician_types_it(harness, ews_lab):
    import json

    import aiohttp

    ews = ews_lab["konica_c250i"]
    ews.state.auth.unlock()
    before = ews.state.location
    ews.state.location = PASSWORD  # the device sends it on its own in every status frame
    client = await _client(harness, ews, "konica_c250i")
    url = f"http://127.0.0.1:{harness.proxy.port}/ws/status"
    try:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(url, headers={"host": client.netloc, "cookie": client.cookie}) as ws:

            async def next_with(key: str) -> str:
                async with asyncio.timeout(5):
                    async for msg in ws:
                        data = json.loads(msg.data)
                        if key in data:
                            return str(data[key])
                raise AssertionError("the socket closed")

            assert await next_with("location") == "********"
            await ws.send_str("xx admin-pas yy")  # a wrong guess: echoed as typed, the mask stays
            assert await next_with("echo") == "xx admin-pas yy"
            assert await next_with("location") == "********"
            await ws.send_str(f"a {PASSWORD} b")  # typed by the technician: echoed as typed
            assert await next_with("echo") == f"a {PASSWORD} b"
        assert len(await _typed_events(harness, client)) == 1
    finally:
        ews.state.location = before
        await client.aclose()


@pytest.mark.parametrize("name", ["ricoh_mpc3002", "konica_c250i"])
async def test_a_forbidden_or_erased_credential_leaves_live_sessions_at_once(harness, ews_lab, name):
    """Issue 19 follow-up, item 3: the broker drops the login from the customer's live routes; the
    proxy forgets the secret and the device cookie jar before the next request."""
    ews = ews_lab[name]
    ews.state.auth.unlock()
    kind = LoginKind(ews.state.auth.login.kind)
    ours = _route(harness, ews, DeviceLogin(kind, USERNAME, PASSWORD), VENDORS.get(name, ""))
    other = _route(harness, ews, DeviceLogin(kind, USERNAME, PASSWORD), VENDORS.get(name, ""))
    harness.routes.add(replace(ours, customer_id="cust-a"))
    harness.routes.add(replace(other, customer_id="cust-b"))
    mine, theirs = SessionClient(harness, ours), SessionClient(harness, other)
    await mine.launch()
    await theirs.launch()
    try:
        for c in (mine, theirs):
            r = await c.request("GET", "/settings", follow_redirects=True)
            assert "Logged in as admin" in r.text
        assert harness.routes.drop_logins("cust-a") == [ours.session_id]
        live = harness.routes.get(ours.session_id)
        assert live is not None and live.login is None
        r = await mine.request("GET", "/settings")
        assert r.status_code in (302, 401) and "Logged in as admin" not in r.text  # the device's own login
        r = await theirs.request("GET", "/settings")
        assert r.status_code == 200 and "Logged in as admin" in r.text  # another customer: unchanged
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_a_secret_typed_in_one_session_is_not_confirmed_by_the_mask_in_the_next(harness, ews_lab):
    """The stored echo across sessions: the technician who typed the secret sees their text again
    in their next session on the device; another technician still sees it masked."""
    ews = ews_lab["konica_c250i"]
    ews.state.auth.unlock()
    before = ews.state.location
    login = DeviceLogin(LoginKind.BASIC, USERNAME, PASSWORD, version=3)
    clients = []

    async def session_of(user: str) -> SessionClient:
        route = replace(_route(harness, ews, login), user_id=user, device_id="dev-konica")
        harness.routes.add(route)
        client = SessionClient(harness, route)
        await client.launch()
        clients.append(client)
        return client

    try:
        first = await session_of("tech-1")
        r = await first.request("POST", "/settings", data={"location": f"a {PASSWORD} b"})
        assert _shown_location(r.text) == f"a {PASSWORD} b"
        await first.aclose()
        harness.routes.remove(first.route.session_id, "ended by the technician")
        again = await session_of("tech-1")
        assert _shown_location((await again.request("GET", "/settings")).text) == f"a {PASSWORD} b"
        other = await session_of("tech-2")
        shown = (await other.request("GET", "/settings")).text
        assert _shown_location(shown) == "a ******** b" and PASSWORD not in shown
    finally:
        ews.state.location = before
        for c in clients:
            await c.aclose()
