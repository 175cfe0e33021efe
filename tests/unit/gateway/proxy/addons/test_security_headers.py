"""SecurityHeaders alone: the device's own policy headers are replaced by the proxy's fixed set."""

from gateway.proxy.addons.security_headers import SecurityHeaders
from gateway.proxy.deps import PublicAddress
from tests.unit.gateway.proxy.addons.flows import HOST, flow, response, route


def _answered(**headers: str):  # type: ignore[no-untyped-def]
    return flow(response=response(headers={"content-type": "text/html", **headers}), with_route=route())


def test_a_csp_naming_the_session_host_and_fixed_headers_are_set() -> None:
    f = _answered(**{"content-security-policy": "default-src *", "x-frame-options": "ALLOWALL"})
    SecurityHeaders(PublicAddress("http", 8480)).response(f)
    assert f.response is not None
    headers = f.response.headers
    assert headers.get_all("content-security-policy") == [headers["content-security-policy"]]
    assert f"ws://{HOST}:8480" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "SAMEORIGIN" and headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in headers


def test_hsts_only_over_https() -> None:
    f = _answered()
    SecurityHeaders(PublicAddress("https", 443)).response(f)
    assert f.response is not None and "strict-transport-security" in f.response.headers
