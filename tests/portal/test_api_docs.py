"""/api/docs is Swagger UI served by the portal itself: it renders in Chromium with every
request other than the portal's own refused (no CDN)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.portal.conftest import Portal
from tests.portal.test_browser_dwa import browser  # noqa: F401  (the shared Chromium fixture)

pytestmark = pytest.mark.browser


async def test_api_docs_render_offline(browser: Any, portal: Portal) -> None:  # noqa: F811
    context = await browser.new_context()
    foreign: list[str] = []

    async def only_portal(route: Any) -> None:
        if route.request.url.startswith(portal.url):
            await route.continue_()
        else:
            foreign.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_portal)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        resp = await page.goto(portal.url + "/api/docs")
        assert resp.status == 200
        await page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
        assert "printgate portal" in await page.inner_text(".swagger-ui .info .title")
        assert await page.locator(".opblock").count() > 5  # the operations are listed
        assert foreign == []
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        await context.close()
