"""URL-bearing headers through the real proxy: towards the device its own address, towards the
browser the session host (Host, Origin, Referer; Location is in test_browser, Set-Cookie in
test_rewriter and test_session_lifecycle)."""

from __future__ import annotations

import pytest

from lab.ews import EwsLab, EwsServer

PRINTER = "brother_hl5370dw"


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


async def test_host_origin_and_referer_reach_the_device_as_its_own_address(session_client, ews):
    c = await session_client(ews)
    await c.request("GET", "/settings?x=1")  # a page of this session: a Referer may name it
    r = await c.request("POST", "/headers", headers={"origin": c.origin, "referer": f"{c.origin}/settings?x=1"})
    assert r.status_code == 200
    assert ews.state.echoed == {
        "Host": ews.origin.split("//", 1)[1],
        "Origin": ews.origin,
        "Referer": f"{ews.origin}/settings?x=1",
    }
    assert r.json()["Origin"] == c.origin  # and the echo comes back in session terms
    # a page the session never requested is only the origin (a Referer is user data otherwise)
    r = await c.request("POST", "/headers", headers={"origin": c.origin, "referer": f"{c.origin}/settings?x=2"})
    assert r.status_code == 200 and ews.state.echoed["Referer"] == f"{ews.origin}/"


async def test_content_location_refresh_and_link_name_the_session_host(session_client, ews):
    c = await session_client(ews)
    r = await c.request("GET", "/headers")
    assert r.headers["content-location"] == f"{c.origin}/headers"
    assert r.headers["refresh"] == f"30; url={c.origin}/status"
    assert r.headers["link"] == f"<{c.origin}/style.css>; rel=preload; as=style"
    raw_headers = "\n".join(f"{k}: {v}" for k, v in r.headers.multi_items())
    assert ews.host not in raw_headers and ews.host not in r.text
