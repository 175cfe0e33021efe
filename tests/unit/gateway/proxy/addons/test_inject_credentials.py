"""InjectCredentials alone, on hand-made flows: the browser's Authorization dropped, device cookies
kept out of answers, pre-filled password fields blanked, the secret masked in every form."""

from __future__ import annotations

from gateway.proxy.addons.inject_credentials import (
    MASK,
    InjectCredentials,
    blank_password_inputs,
    mask_secrets,
    secret_forms,
)
from gateway.proxy.routes import RouteTable
from printgate.domain.credentials import DeviceLogin, LoginKind
from printgate.testing.audit import RecordingAuditSink
from tests.unit.gateway.proxy.addons.flows import flow, response, route

SECRET = "p&ss w<rd"


def _addon() -> InjectCredentials:
    return InjectCredentials(RouteTable(), RecordingAuditSink())


def _login(kind: LoginKind = LoginKind.FORM) -> DeviceLogin:
    return DeviceLogin(kind, "admin", SECRET)


def test_the_browsers_authorization_is_dropped_only_in_sessions_with_a_credential() -> None:
    addon = _addon()
    injected = flow(headers={"authorization": "Basic Zm9vOmJhcg=="}, with_route=route(login=_login()))
    plain = flow(headers={"authorization": "Basic Zm9vOmJhcg=="}, with_route=route(session_id="other"))
    addon.request(injected)
    addon.request(plain)
    assert "authorization" not in injected.request.headers
    assert plain.request.headers["authorization"] == "Basic Zm9vOmJhcg=="


async def test_device_cookies_go_to_the_jar_and_come_back_on_requests_never_to_the_browser() -> None:
    addon = _addon()
    r = route(login=_login())
    answered = flow(with_route=r, response=response(headers={"content-type": "text/html",
                                                              "set-cookie": "ewssid=abc123; Path=/; HttpOnly"}))
    await addon.response(answered)
    assert answered.response is not None and "set-cookie" not in answered.response.headers
    later = flow(headers={"cookie": "theme=dark"}, with_route=r)
    addon.request(later)
    assert later.request.headers["cookie"] == "theme=dark; ewssid=abc123"


async def test_the_secret_is_masked_in_bodies_and_headers_in_every_encoding() -> None:
    addon = _addon()
    body = (b"<p>raw p&ss w<rd</p><p>html p&amp;ss w&lt;rd</p><a href='/x?pw=p%26ss%20w%3Crd'>"
            b"<a href='/y?pw=p%26ss+w%3Crd'>")
    answered = flow(with_route=route(login=_login()),
                    response=response(content=body, headers={"content-type": "text/plain", "x-echo": SECRET}))
    await addon.response(answered)
    assert answered.response is not None
    out = answered.response.content or b""
    assert all(form not in out for form in secret_forms(SECRET)) and out.count(MASK) == 4
    assert SECRET not in str(answered.response.headers)


def test_pre_filled_password_inputs_lose_their_value_other_inputs_keep_theirs() -> None:
    page = (b"<input name=location value='Room 1'><INPUT TYPE=\"password\" name=pw value=\"x y\" id=p>"
            b"<input type='password' value=abc>")
    assert blank_password_inputs(page) == (b"<input name=location value='Room 1'>"
                                           b"<INPUT TYPE=\"password\" name=pw id=p><input type='password'>")
    assert mask_secrets(b"nothing here", secret_forms(SECRET)) == b"nothing here"


async def test_sessions_without_a_credential_are_left_alone() -> None:
    addon = _addon()
    answered = flow(with_route=route(), response=response(
        content=b"<input type=password value=pw>", headers={"content-type": "text/html", "set-cookie": "a=b"}))
    await addon.response(answered)
    assert answered.response is not None and answered.response.headers["set-cookie"] == "a=b"
    assert answered.response.content == b"<input type=password value=pw>"


async def test_a_dropped_login_takes_the_device_cookie_jar_with_it_at_once() -> None:
    """Forbid/erase (issue 19 follow-up, item 3): the route loses its login, the jar goes at once;
    the same credential allowed again starts from an empty jar."""
    table = RouteTable()
    addon = InjectCredentials(table, RecordingAuditSink())
    r = route(login=_login(), customer_id="cust-a")
    table.add(r)
    answered = flow(with_route=r, response=response(headers={"set-cookie": "ewssid=abc123; Path=/"}))
    await addon.response(answered)
    assert table.drop_logins("cust-b") == [] and table.drop_logins("cust-a") == ["abc"]
    table.add(r)  # allowed again later in the same session
    later = flow(headers={"cookie": "theme=dark"}, with_route=r)
    addon.request(later)
    assert later.request.headers["cookie"] == "theme=dark"


def test_a_request_carries_the_secret_in_every_form_a_device_may_decode() -> None:
    from gateway.proxy.typed_secret import request_carries, text_carries

    pw = "admin-pass"
    carried = ["a admin-pass b", "ADMIN-PASS", "location=a+admin%2Dpass", "x=%61dmin-pass",
               '{"location": "\\u0061dmin-pass"}', "a &#97;dmin-pass", "location=admin-&field2=pass",
               '{"a": "admin", "b": "-pass"}']
    assert all(text_carries(t, pw) for t in carried), [t for t in carried if not text_carries(t, pw)]
    assert not any(text_carries(t, pw) for t in ["admin-pas", "admin pass", "location=admin-pa&x=zz", "pass=admin-", ""])
    assert request_carries(flow("POST", "/settings", content=b"location=a+ADMIN-PASS").request, pw)
    assert request_carries(flow(path="/x?q=admin%2dpass").request, pw)
    assert request_carries(flow(headers={"cookie": "n=admin-pass"}).request, pw)
    assert not request_carries(flow("POST", "/settings", content=b"location=Room+1").request, pw)
