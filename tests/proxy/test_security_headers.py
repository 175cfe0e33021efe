"""Security headers towards the technician: the device's own are replaced, and Chromium
really refuses to load anything from another origin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from lab.ews import EwsLab, EwsServer
from lab.sites import serve
from tests.proxy.conftest import launch

PRINTER = "jetdirect_m130nw"


@pytest.fixture
def ews(ews_lab: EwsLab) -> EwsServer:
    return ews_lab[PRINTER]


class ThirdParty:
    """Another origin on loopback (a vendor's analytics or help site): counts what it is asked for."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.origin = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if request.path.endswith(".js"):
            return web.Response(text="document.getElementById('ext-script').textContent='loaded';",
                                content_type="application/javascript")
        return web.Response(body=b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", content_type="image/gif")


@pytest.fixture
async def third_party() -> AsyncIterator[ThirdParty]:
    tp = ThirdParty()
    app = web.Application()
    app.router.add_get("/{tail:.*}", tp.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = await serve(runner)
    tp.origin = f"http://127.0.0.1:{port}"
    yield tp
    await runner.cleanup()


async def test_device_headers_are_replaced_by_the_proxy_policy(session_client, ews):
    client = await session_client(ews)
    r = await client.request("GET", "/external")
    assert r.status_code == 200
    assert r.headers.get_list("cache-control") == ["no-store"]
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers.get_list("referrer-policy") == ["same-origin"]
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers.get_list("content-security-policy")
    assert len(csp) == 1 and "default-src 'self'" in csp[0] and "default-src *" not in csp[0]
    assert f"ws://{client.netloc}" in csp[0]  # the session's own WebSocket, nothing else
    assert "strict-transport-security" not in r.headers  # plain http session hosts


@pytest.mark.browser
async def test_chromium_loads_nothing_from_another_origin_through_the_proxy(page, harness, ews, third_party, browser):
    # the same page straight from the device loads the other origin's script and image ...
    direct = await browser.new_context()
    try:
        direct_page = await direct.new_page()
        await direct_page.goto(f"{ews.origin}/external?src={third_party.origin}")
        await direct_page.wait_for_function("document.getElementById('ext-script').textContent === 'loaded'")
    finally:
        await direct.close()
    assert {"/track.js", "/pixel.png"} <= set(third_party.hits)
    third_party.hits.clear()
    # ... through the proxy the browser refuses both before sending a request
    route = harness.open_session(ews)
    origin = await launch(page, harness, route)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(f"{origin}/external?src={third_party.origin}")
    await page.wait_for_load_state("networkidle")
    assert await page.text_content("#ext-script") == "not loaded"
    assert await page.evaluate("document.getElementById('ext-img').naturalWidth") == 0
    assert third_party.hits == []
    assert violations, "Chromium reported no CSP violation"
