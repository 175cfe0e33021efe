"""RequestLineGuard alone: only origin-form requests with unambiguous framing reach a device."""

from gateway.proxy.addons.request_line import RequestLineGuard
from gateway.proxy.deps import PublicAddress
from tests.unit.gateway.proxy.addons.flows import HOST, decision, flow

GUARD = RequestLineGuard(PublicAddress("http", 80))


def _rule(f) -> str | None:  # type: ignore[no-untyped-def]
    found = decision(f)
    return found.rule if found else None


def test_origin_form_passes() -> None:
    f = flow(path="/index.html")
    GUARD.requestheaders(f)
    assert f.response is None


def test_absolute_form_naming_the_session_host_becomes_origin_form() -> None:
    f = flow(path="/index.html")
    f.request.authority = HOST
    GUARD.requestheaders(f)
    assert f.response is None and f.request.authority == ""


def test_absolute_form_naming_another_server_is_refused() -> None:
    f = flow(path="/")
    f.request.authority = "127.0.0.1:5432"
    GUARD.requestheaders(f)
    assert f.response is not None and _rule(f) == "request.absolute_form"


def test_ambiguous_framing_and_connect_are_refused() -> None:
    two_lengths = flow("POST", "/", headers={"content-length": "1"})
    two_lengths.request.headers.add("content-length", "2")
    smuggle = flow("POST", "/", headers={"content-length": "3", "transfer-encoding": "chunked"})
    connect = flow("CONNECT", "/")
    for f, rule in ((two_lengths, "request.framing"), (smuggle, "request.framing"), (connect, "request.connect")):
        GUARD.requestheaders(f)
        assert f.response is not None and _rule(f) == rule
