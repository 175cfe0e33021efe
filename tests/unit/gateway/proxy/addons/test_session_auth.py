"""SessionAuth alone: a one-time launch token becomes the session cookie; without it nothing passes."""

from gateway.proxy.addons.session_auth import COOKIE_KEY, PREFIX, SessionAuth, cookie_name
from gateway.proxy.decision import ROUTE_KEY
from tests.unit.gateway.proxy.addons.flows import HOST, deps, flow, route


async def _through(auth: SessionAuth, f) -> None:  # type: ignore[no-untyped-def]
    await auth.requestheaders(f)
    await auth.request(f)


async def test_a_launch_token_sets_the_cookie_and_only_once() -> None:
    d = deps()
    d.routes.add(route(session_id="abc", host=HOST))
    auth = SessionAuth(d)
    token = d.routes.issue_launch_token("abc")
    first = flow(path=f"{PREFIX}launch?token={token}")
    await _through(auth, first)
    assert first.response is not None and first.response.status_code == 200
    set_cookie = first.response.headers["set-cookie"]
    assert set_cookie.startswith(cookie_name("http") + "=") and "HttpOnly" in set_cookie
    again = flow(path=f"{PREFIX}launch?token={token}")
    await _through(auth, again)
    assert again.response is not None and again.response.status_code == 403


async def test_the_cookie_lets_requests_through_and_is_not_passed_to_the_device() -> None:
    d = deps()
    d.routes.add(route(session_id="abc", host=HOST))
    auth = SessionAuth(d)
    launched = flow(path=f"{PREFIX}launch?token={d.routes.issue_launch_token('abc')}")
    await _through(auth, launched)
    assert launched.response is not None
    cookie = launched.response.headers["set-cookie"].split(";", 1)[0]
    f = flow(path="/status", headers={"cookie": f"{cookie}; lang=en"})
    await _through(auth, f)
    assert f.response is None and f.metadata[ROUTE_KEY].session_id == "abc"
    assert isinstance(f.metadata[COOKIE_KEY], str)
    assert cookie_name("http") not in f.request.headers.get("cookie", "")


async def test_no_cookie_an_unknown_host_or_another_domain_is_refused() -> None:
    d = deps()
    d.routes.add(route(session_id="abc", host=HOST))
    auth = SessionAuth(d)
    no_cookie = flow(path="/status")
    other = flow(path="/status")
    other.request.headers["host"] = "s-zzz.dwa.localhost"
    foreign = flow(path="/status")
    foreign.request.headers["host"] = "printer.example.com"
    for f in (no_cookie, other, foreign):
        await _through(auth, f)
        assert f.response is not None and f.response.status_code >= 400
