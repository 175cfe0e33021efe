"""The portal has an icon (newcomer nit: every page's /favicon.ico was a 404 in the console)."""

from __future__ import annotations

import httpx

from tests.portal.conftest import Portal


async def test_pages_name_an_icon_and_favicon_ico_is_served(portal: Portal) -> None:
    async with httpx.AsyncClient(base_url=portal.url, timeout=10) as c:
        login = await c.get("/login")
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login.text
        for path in ("/favicon.ico", "/static/favicon.svg"):
            r = await c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml"), path
            assert r.content.startswith(b"<svg")
        assert "no-store" not in (await c.get("/favicon.ico")).headers["cache-control"]
